"""A node's side of one SecAgg+ session: keys, shares, the masked input, and what it reveals.

The four stages (Bonawitz et al., CCS 2017, §4, Figure 4; Bell et al., CCS 2020, with the sparse
graph of :mod:`sovereign_ai.secagg.graph`):

1. :meth:`NodeSession.advertise` — two fresh X25519 key pairs and a commitment to the self-mask
   seed ``b`` (drawn now), signed (:mod:`.adverts`).
2. :meth:`NodeSession.share_keys` — check every neighbour's advertisement against the federation
   CA, split the self-mask seed ``b`` and the mask private key ``s`` into ``t``-of-
   ``h`` Shamir shares (``h``: the neighbours that advertised, and the node itself), and encrypt
   each neighbour's pair of shares to it.
3. :meth:`NodeSession.receive_shares` then :meth:`NodeSession.mask` — keep the shares the
   neighbours sent, and add to the encoded input the self mask ``PRG(b)`` and, for every
   neighbour ``j`` that sent shares, ``+PRG(s_ij)`` if this node's id sorts first, else
   ``-PRG(s_ij)`` (double masking). The masked input is made once per session.
4. :meth:`NodeSession.reveal` — for each neighbour the coordinator says survived, its share of
   ``b``; for each it says dropped, its share of ``s``; never both for one neighbour, whatever the
   coordinator asks and however often, and nothing if fewer than ``t`` holders survived.

Every method checks the session's stage order and raises
:class:`~sovereign_ai.errors.SecureAggregationError` (or :class:`BelowThresholdError`) rather
than go on in an unsafe state (fail closed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from sovereign_ai.errors import BelowThresholdError, ConfigError, SecureAggregationError
from sovereign_ai.secagg.adverts import (
    AdvertSigner,
    AdvertVerifier,
    KeyAdvert,
    SessionId,
    self_mask_commitment,
)
from sovereign_ai.secagg.key_agreement import KeyPair, KeyPurpose, PairContext, derive_pair_key
from sovereign_ai.secagg.modular import check_modulus_bits
from sovereign_ai.secagg.prg import SEED_BYTES, MaskSum
from sovereign_ai.secagg.shamir import SHARE_BYTES, Share, split_secret
from sovereign_ai.secagg.share_encryption import ShareBinding, decrypt_share, encrypt_share

__all__ = ["NodeSession", "Reveal", "SecretKind", "check_threshold", "pair_seed"]


class SecretKind(Enum):
    """The two secrets whose shares a node may reveal for a neighbour (one of them, never both)."""

    SELF_MASK = "self-mask"
    """The seed ``b`` of the neighbour's self mask: revealed when the neighbour survived."""
    MASK_KEY = "mask-key"
    """The neighbour's mask private key ``s``: revealed when it dropped after sharing."""


class _Step(Enum):
    CREATED = 0
    ADVERTISED = 1
    SHARED = 2
    RECEIVED = 3
    MASKED = 4


@dataclass(frozen=True)
class Reveal:
    """The shares one node reveals in the unmask stage.

    Parameters
    ----------
    self_mask
        Neighbour id (or the node's own) to its share of that node's self-mask seed.
    mask_key
        Neighbour id to its share of that neighbour's mask private key.
    """

    self_mask: dict[str, Share] = field(default_factory=dict)
    mask_key: dict[str, Share] = field(default_factory=dict)


def check_threshold(threshold: int, holders: int, *, owner: str) -> None:
    """Raise unless ``holders / 2 < threshold <= holders`` (a majority of a secret's holders).

    Raises
    ------
    ConfigError
        Naming ``owner`` and the allowed range.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise ConfigError(
            f"The 'threshold' parameter of {owner} must be an integer; got {threshold!r}."
        )
    if not holders // 2 + 1 <= threshold <= holders:
        raise ConfigError(
            f"The 'threshold' parameter of {owner} must be a majority of the {holders} holders of "
            f"a node's shares, in [{holders // 2 + 1}, {holders}]; got {threshold} instead. A "
            "lower threshold would let a coordinator that lies about who dropped out rebuild "
            "both secrets of one node and read its input."
        )


def pair_seed(
    private: KeyPair,
    peer_public_key: bytes,
    *,
    session: SessionId,
    own_id: str,
    peer_id: str,
) -> bytes:
    """The seed of the pairwise mask ``PRG(s_ij)`` that ``own_id`` and ``peer_id`` both derive.

    The node whose id sorts first adds the mask, the other subtracts it, so the pair's masks
    cancel in the sum.
    """
    return derive_pair_key(
        private,
        peer_public_key,
        context=PairContext(
            job_id=session.label,
            round_number=session.round_number,
            node_a=own_id,
            node_b=peer_id,
            purpose=KeyPurpose.MASK,
        ),
    )


class NodeSession:
    """One node's state for one SecAgg+ session; see the module docstring for the stages.

    Parameters
    ----------
    node_id
        This node.
    session
        The job, round and attempt.
    neighbours
        The node's neighbours in the round's communication graph (as the coordinator sent them).
    threshold
        ``t``; must be a majority of ``len(neighbours) + 1`` holders.
    modulus_bits
        ``b`` of the ring ``Z_{2**b}`` of the masked input.
    signer
        Signs the advertisement with the node's federation identity.

    Raises
    ------
    ConfigError
        If the neighbours include the node itself or repeat, or the threshold is not a majority.
    """

    def __init__(
        self,
        *,
        node_id: str,
        session: SessionId,
        neighbours: Sequence[str],
        threshold: int,
        modulus_bits: int,
        signer: AdvertSigner,
    ) -> None:
        if node_id in neighbours or len(set(neighbours)) != len(neighbours) or not neighbours:
            raise ConfigError(
                f"Node {node_id!r} was given an invalid neighbourhood {sorted(neighbours)[:5]}: "
                "it must name at least one other node, once each, and not the node itself."
            )
        check_threshold(threshold, len(neighbours) + 1, owner="NodeSession")
        check_modulus_bits(modulus_bits, owner="NodeSession")
        self.node_id = node_id
        self.session = session
        self.neighbours = frozenset(neighbours)
        self.threshold = threshold
        self.modulus_bits = modulus_bits
        self._signer = signer
        self._step = _Step.CREATED
        self._cipher_keys = KeyPair.generate()
        self._mask_keys = KeyPair.generate()
        self._self_mask_seed = os.urandom(SEED_BYTES)
        self._adverts: dict[str, KeyAdvert] = {}  # neighbours that advertised, verified
        self._own_shares: tuple[Share, Share] | None = None  # (b share, s share) it keeps
        self._held: dict[str, tuple[Share, Share]] = {}  # peer -> its (b share, s share)
        self._revealed: dict[str, SecretKind] = {}
        self.rejected: dict[str, str] = {}
        """Neighbours whose advertisements did not verify, and why (they get no shares)."""

    # Stage 1 ------------------------------------------------------------------------------------
    def advertise(self) -> KeyAdvert:
        """The node's signed public keys for this session."""
        self._expect(_Step.CREATED, "advertise keys")
        cipher_public = self._cipher_keys.public_key
        mask_public = self._mask_keys.public_key
        commitment = self_mask_commitment(
            self.session, node_id=self.node_id, seed=self._self_mask_seed
        )
        message = KeyAdvert.signed_message(
            self.session, self.node_id, cipher_public, mask_public, commitment
        )
        self._step = _Step.ADVERTISED
        return KeyAdvert(
            node_id=self.node_id,
            cipher_public_key=cipher_public,
            mask_public_key=mask_public,
            self_mask_commitment=commitment,
            certificate=self._signer.certificate,
            signature=self._signer.sign(message),
        )

    # Stage 2 ------------------------------------------------------------------------------------
    def share_keys(
        self, adverts: Mapping[str, KeyAdvert], *, verifier: AdvertVerifier
    ) -> dict[str, bytes]:
        """Verify the neighbours' advertisements and encrypt to each its shares of both secrets.

        Parameters
        ----------
        adverts
            Neighbour id to its advertisement, as relayed by the coordinator.
        verifier
            Checks each advertisement's certificate and signature.

        Returns
        -------
        dict
            Neighbour id to the encrypted pair of shares meant for it: every neighbour whose
            advertisement verifies. One that does not (altered, substituted, signed by another
            identity) gets nothing and is never masked with; :attr:`rejected` says why.

        Raises
        ------
        SecureAggregationError
            If an advertisement is not from a neighbour or is mislabelled (the coordinator's own
            doing: the round is refused).
        BelowThresholdError
            If fewer than ``t`` holders (neighbours whose keys verify, and this node) remain.
        """
        self._expect(_Step.ADVERTISED, "share keys")
        strangers = sorted(set(adverts) - self.neighbours)
        if strangers:
            raise SecureAggregationError(
                f"Node {self.node_id!r} was relayed keys of {strangers[:5]}, which are not among "
                "its neighbours this round; refusing the round."
            )
        verified: dict[str, KeyAdvert] = {}
        for peer, advert in adverts.items():
            if advert.node_id != peer:
                raise SecureAggregationError(
                    f"The advertisement relayed as {peer!r}'s names {advert.node_id!r}."
                )
            try:
                advert.verify(self.session, verifier)
            except SecureAggregationError as exc:
                self.rejected[peer] = str(exc)
                continue
            verified[peer] = advert
        adverts = verified
        holders = sorted({*adverts, self.node_id})
        if len(holders) < self.threshold:
            raise BelowThresholdError(
                what=f"holders of node {self.node_id!r}'s shares (neighbours that advertised keys"
                " and itself)",
                available=len(holders),
                threshold=self.threshold,
            )
        b_shares = split_secret(
            self._self_mask_seed, threshold=self.threshold, share_count=len(holders)
        )
        s_shares = split_secret(
            self._mask_keys.private_bytes(), threshold=self.threshold, share_count=len(holders)
        )
        sealed: dict[str, bytes] = {}
        for holder, b_share, s_share in zip(holders, b_shares, s_shares, strict=True):
            if holder == self.node_id:
                self._own_shares = (b_share, s_share)
                continue
            key = self._cipher_key(adverts[holder].cipher_public_key, holder)
            plaintext = b_share.to_bytes() + s_share.to_bytes()
            binding = ShareBinding(
                self.session.label, self.session.round_number, self.node_id, holder
            )
            sealed[holder] = encrypt_share(key, plaintext, binding=binding)
        self._adverts = dict(adverts)
        self._step = _Step.SHARED
        return sealed

    # Stage 3 ------------------------------------------------------------------------------------
    def receive_shares(self, sealed: Mapping[str, bytes]) -> None:
        """Decrypt and keep the shares the neighbours that reached stage 2 sent this node.

        The senders are the neighbours this node masks its input with.

        Raises
        ------
        SecureAggregationError
            If a sender did not advertise keys this session, or the shares are malformed.
        ShareAuthenticationError
            If a share was altered, replayed or misaddressed.
        BelowThresholdError
            If fewer than ``t`` holders (senders and this node) remain.
        """
        self._expect(_Step.SHARED, "receive shares")
        unknown = sorted(set(sealed) - set(self._adverts))
        if unknown:
            raise SecureAggregationError(
                f"Node {self.node_id!r} was relayed shares from {unknown[:5]}, which did not "
                "advertise keys to it this round; refusing the round."
            )
        if len(sealed) + 1 < self.threshold:
            raise BelowThresholdError(
                what=f"neighbours of node {self.node_id!r} that shared their secrets (and itself)",
                available=len(sealed) + 1,
                threshold=self.threshold,
            )
        held: dict[str, tuple[Share, Share]] = {}
        for sender, message in sealed.items():
            key = self._cipher_key(self._adverts[sender].cipher_public_key, sender)
            binding = ShareBinding(
                self.session.label, self.session.round_number, sender, self.node_id
            )
            plaintext = decrypt_share(key, message, binding=binding)
            if len(plaintext) != 2 * SHARE_BYTES:
                raise SecureAggregationError(
                    f"The shares from {sender!r} are {len(plaintext)} bytes; expected "
                    f"{2 * SHARE_BYTES}."
                )
            held[sender] = (
                Share.from_bytes(plaintext[:SHARE_BYTES]),
                Share.from_bytes(plaintext[SHARE_BYTES:]),
            )
        self._held = held
        self._step = _Step.RECEIVED

    def mask(self, encoded: NDArray[np.uint64]) -> NDArray[np.uint64]:
        """Add the self mask and the pairwise masks to the encoded input, modulo ``2**b``.

        May be called once per session: a second masked input under the same masks but over
        other neighbours would reveal their difference.

        Raises
        ------
        SecureAggregationError
            If the shares were not received first, or the input was already masked.
        ConfigError
            If ``encoded`` is not a one-dimensional ``uint64`` vector below ``2**b``.
        """
        self._expect(_Step.RECEIVED, "mask its input")
        if encoded.dtype != np.uint64 or encoded.ndim != 1:
            raise ConfigError(
                f"The input to mask must be a 1-D uint64 vector; got {encoded.dtype} of shape "
                f"{encoded.shape}."
            )
        if encoded.size and int(encoded.max()) >> self.modulus_bits:
            raise ConfigError(f"The input to mask has values of {self.modulus_bits} bits or more.")
        masked = MaskSum(encoded.size, modulus_bits=self.modulus_bits)
        masked.add_vector(encoded)
        masked.add_mask(self._self_mask_seed)
        for peer in sorted(self._held):
            seed = pair_seed(
                self._mask_keys,
                self._adverts[peer].mask_public_key,
                session=self.session,
                own_id=self.node_id,
                peer_id=peer,
            )
            masked.add_mask(seed, sign=1 if self.node_id < peer else -1)
        self._step = _Step.MASKED
        return masked.result()

    # Stage 4 ------------------------------------------------------------------------------------
    def reveal(self, *, survivors: Sequence[str], dropped: Sequence[str]) -> Reveal:
        """The shares to reveal, given whose masked input the coordinator received.

        Parameters
        ----------
        survivors
            Nodes whose masked input arrived (this node among them): their self-mask shares.
        dropped
            Neighbours that sent shares but no masked input: their mask-key shares.

        Raises
        ------
        SecureAggregationError
            If the lists overlap, name a node this node holds no shares of, omit this node from
            the survivors, or ask for the other secret of a neighbour whose secret was revealed
            before (never both secrets of one node).
        BelowThresholdError
            If fewer than ``t`` holders survived among this node's: reconstruction would need
            shares that do not exist, and the node reveals nothing.
        """
        self._expect(_Step.MASKED, "reveal shares")
        alive, gone = set(survivors), set(dropped)
        held = set(self._held)
        problems = []
        if alive & gone:
            problems.append(f"listed both as survived and dropped: {sorted(alive & gone)[:5]}")
        if self.node_id not in alive:
            problems.append("this node is not among the survivors although it sent its input")
        if self.node_id in gone:
            problems.append("this node is listed as dropped")
        unknown = sorted((alive | gone) - held - {self.node_id})
        if unknown:
            problems.append(f"this node holds no shares of {unknown[:5]}")
        if problems:
            raise SecureAggregationError(
                f"Node {self.node_id!r} refuses to reveal shares: " + "; ".join(problems) + "."
            )
        wanted = {peer: SecretKind.SELF_MASK for peer in alive}
        wanted.update({peer: SecretKind.MASK_KEY for peer in gone})
        both = sorted(p for p, kind in wanted.items() if self._revealed.get(p, kind) is not kind)
        if both:
            raise SecureAggregationError(
                f"Node {self.node_id!r} refuses to reveal shares: the coordinator asks for the "
                f"other secret of {both[:5]}, whose shares it revealed before. Revealing both the "
                "self-mask and the mask-key share of one node would expose its input."
            )
        surviving_holders = len((alive & held) | {self.node_id})
        if surviving_holders < self.threshold:
            raise BelowThresholdError(
                what=f"surviving holders of the shares node {self.node_id!r} keeps",
                available=surviving_holders,
                threshold=self.threshold,
            )
        if self._own_shares is None:  # pragma: no cover - set together with _step
            raise SecureAggregationError("The node's own shares are missing.")
        self._revealed.update(wanted)
        reveal = Reveal()
        for peer, kind in wanted.items():
            b_share, s_share = self._own_shares if peer == self.node_id else self._held[peer]
            if kind is SecretKind.SELF_MASK:
                reveal.self_mask[peer] = b_share
            else:
                reveal.mask_key[peer] = s_share
        return reveal

    # Helpers ------------------------------------------------------------------------------------
    def _expect(self, step: _Step, doing: str) -> None:
        if self._step is not step:
            raise SecureAggregationError(
                f"Node {self.node_id!r} cannot {doing} now: its secure-aggregation session for "
                f"round {self.session.round_number} is at step {self._step.name.lower()}. Stages "
                "arrived out of order; refusing."
            )

    def _cipher_key(self, peer_public_key: bytes, peer_id: str) -> bytes:
        return derive_pair_key(
            self._cipher_keys,
            peer_public_key,
            context=PairContext(
                job_id=self.session.label,
                round_number=self.session.round_number,
                node_a=self.node_id,
                node_b=peer_id,
                purpose=KeyPurpose.SHARE_ENCRYPTION,
            ),
        )
