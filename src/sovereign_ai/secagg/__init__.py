"""The cryptographic building blocks of secure aggregation (SecAgg+).

Pure functions, one algorithm per module, each citing its source (Bonawitz et al., "Practical
Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017; Bell et al., "Secure
Single-Server Aggregation with (Poly)Logarithmic Overhead", CCS 2020). On them, the protocol's
two sides: :class:`NodeSession` (advertise keys → share keys → masked input → unmask) and
:class:`CoordinatorSession` (relay, then unmask the sum), with the communication graph and the
encodings of inputs into the ring.

======================  ==========================================================================
module                  what
======================  ==========================================================================
``key_agreement``       X25519 + HKDF-SHA256 pairwise keys bound to job, round, pair and purpose
``prg``                 AES-256-CTR mask generator: 256-bit seed → uniform vector modulo ``2**b``
``share_encryption``    AES-256-GCM for shares, bound to job, round, sender and recipient
``shamir``              Shamir secret sharing of 32-byte secrets over GF(2**521 - 1)
``modular``             ``uint64`` vector arithmetic modulo ``2**b`` (``1 <= b <= 64``)
``quantisation``        clipping, stochastic rounding, weighting, dequantisation, overflow check
``encoding``            an update or exact statistics into the ring, and the sum back
``graph``               SecAgg+'s Harary graph; degree ``k`` and threshold ``t`` from ``n``
``adverts``             signed key advertisements bound to a session
``node_session``        a node's side of one session
``aggregation``         the coordinator's side: relaying, and unmasking with dropout recovery
======================  ==========================================================================

The sizes (``KEY_BYTES``, ``SEED_BYTES``, ``SECRET_BYTES``, ``SHARE_BYTES``, ...) and the field
prime are constants of their modules.
"""

from sovereign_ai.secagg.adverts import (
    AdvertSigner,
    AdvertVerifier,
    KeyAdvert,
    SessionId,
    self_mask_commitment,
)
from sovereign_ai.secagg.aggregation import CoordinatorSession
from sovereign_ai.secagg.encoding import (
    decode_exact_sum,
    decode_update_sum,
    encode_exact,
    encode_update,
    encoded_length,
    exact_length,
)
from sovereign_ai.secagg.graph import Neighbourhood, choose_neighbourhood, communication_graph
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
from sovereign_ai.secagg.node_session import (
    NodeSession,
    Reveal,
    SecretKind,
    check_threshold,
    pair_seed,
)
from sovereign_ai.secagg.prg import MaskSum, generate_mask
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
    "AdvertSigner",
    "AdvertVerifier",
    "CoordinatorSession",
    "KeyAdvert",
    "KeyPair",
    "KeyPurpose",
    "MaskSum",
    "Neighbourhood",
    "NodeSession",
    "PairContext",
    "Reveal",
    "SecretKind",
    "SessionId",
    "Share",
    "ShareBinding",
    "check_fits",
    "check_modulus_bits",
    "check_threshold",
    "choose_neighbourhood",
    "communication_graph",
    "decode_exact_sum",
    "decode_update_sum",
    "decrypt_share",
    "dequantise_sum",
    "derive_pair_key",
    "encode_exact",
    "encode_update",
    "encoded_length",
    "encrypt_share",
    "exact_length",
    "generate_mask",
    "modular_add",
    "modular_subtract",
    "modular_sum",
    "pair_seed",
    "quantisation_step",
    "quantise",
    "reconstruct_secret",
    "self_mask_commitment",
    "split_secret",
    "weight_quantised",
]
