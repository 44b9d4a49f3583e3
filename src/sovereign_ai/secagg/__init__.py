"""The cryptographic building blocks of secure aggregation (SecAgg+).

Pure functions, one algorithm per module, each citing its source (Bonawitz et al., "Practical
Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017; Bell et al., "Secure
Single-Server Aggregation with (Poly)Logarithmic Overhead", CCS 2020). The protocol's stages
(advertise keys → share keys → masked input → unmask) are built on these.

======================  ==========================================================================
module                  what
======================  ==========================================================================
``key_agreement``       X25519 + HKDF-SHA256 pairwise keys bound to job, round, pair and purpose
``prg``                 AES-256-CTR mask generator: 256-bit seed → uniform vector modulo ``2**b``
``share_encryption``    AES-256-GCM for shares, bound to job, round, sender and recipient
``shamir``              Shamir secret sharing of 32-byte secrets over GF(2**521 - 1)
``modular``             ``uint64`` vector arithmetic modulo ``2**b`` (``1 <= b <= 64``)
``quantisation``        clipping, stochastic rounding, weighting, dequantisation, overflow check
======================  ==========================================================================

The sizes (``KEY_BYTES``, ``SEED_BYTES``, ``SECRET_BYTES``, ``SHARE_BYTES``, ...) and the field
prime are constants of their modules.
"""

from sovereign_ai.secagg.key_agreement import (
    KeyPair,
    KeyPurpose,
    PairContext,
    derive_pair_key,
)
from sovereign_ai.secagg.modular import (
    check_modulus_bits,
    modular_add,
    modular_subtract,
    modular_sum,
)
from sovereign_ai.secagg.prg import generate_mask
from sovereign_ai.secagg.quantisation import (
    check_fits,
    dequantise_sum,
    quantisation_step,
    quantise,
    weight_quantised,
)
from sovereign_ai.secagg.shamir import (
    Share,
    reconstruct_secret,
    split_secret,
)
from sovereign_ai.secagg.share_encryption import ShareBinding, decrypt_share, encrypt_share

__all__ = [
    "KeyPair",
    "KeyPurpose",
    "PairContext",
    "Share",
    "ShareBinding",
    "check_fits",
    "check_modulus_bits",
    "decrypt_share",
    "dequantise_sum",
    "derive_pair_key",
    "encrypt_share",
    "generate_mask",
    "modular_add",
    "modular_subtract",
    "modular_sum",
    "quantisation_step",
    "quantise",
    "reconstruct_secret",
    "split_secret",
    "weight_quantised",
]
