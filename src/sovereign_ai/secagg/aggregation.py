"""The coordinator's side of one SecAgg+ session: relay keys and shares, then unmask the sum.

The coordinator never holds a secret of its own here. It routes each node's signed keys to the
node's neighbours (:meth:`CoordinatorSession.adverts_for`), routes each encrypted pair of shares to
its recipient (:meth:`CoordinatorSession.shares_for`), collects the masked inputs, tells every
survivor who survived and who dropped among its neighbours
(:meth:`CoordinatorSession.unmask_request`), and from the revealed shares rebuilds (Bonawitz et
al., CCS 2017, §4 round 4 "Unmasking"):

- every survivor's self-mask seed ``b`` — checked against the commitment that node signed —
  whose mask it subtracts, and
- every dropped node's mask private key ``s`` — checked against the public key that node signed —
  with which it recomputes and removes the pairwise masks its surviving neighbours added.

What is left is the sum of the survivors' encoded inputs modulo ``2**b``; no single input is ever
visible. Fewer than ``t`` revealed shares of any secret needed raises
:class:`~sovereign_ai.errors.BelowThresholdError` and nothing is returned (fail closed).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sovereign_ai.errors import BelowThresholdError, ConfigError, SecureAggregationError
from sovereign_ai.secagg.adverts import KeyAdvert, SessionId, self_mask_commitment
from sovereign_ai.secagg.graph import Neighbourhood
from sovereign_ai.secagg.key_agreement import KeyPair
from sovereign_ai.secagg.modular import check_modulus_bits
from sovereign_ai.secagg.node_session import Reveal, pair_seed
from sovereign_ai.secagg.prg import MaskSum
from sovereign_ai.secagg.shamir import Share, reconstruct_secret

__all__ = ["CoordinatorSession"]

_MAX_RECONSTRUCTION_TRIES = 64


def _is_committed_seed(session: SessionId, node: str, commitment: bytes, seed: bytes) -> bool:
    return self_mask_commitment(session, node_id=node, seed=seed) == commitment


def _is_key_of(public_key: bytes, private_bytes: bytes) -> bool:
    return KeyPair.from_private_bytes(private_bytes).public_key == public_key


class CoordinatorSession:
    """The coordinator's bookkeeping for one session; see the module docstring.

    Parameters
    ----------
    session
        The job, round and attempt.
    graph
        Each cohort node's neighbours (:func:`~sovereign_ai.secagg.graph.communication_graph`).
    neighbourhood
        The graph's degree and threshold ``t``.
    modulus_bits
        ``b`` of the ring of the masked inputs.
    length
        Elements of every encoded input.
    """

    def __init__(
        self,
        *,
        session: SessionId,
        graph: Mapping[str, Sequence[str]],
        neighbourhood: Neighbourhood,
        modulus_bits: int,
        length: int,
    ) -> None:
        check_modulus_bits(modulus_bits, owner="CoordinatorSession")
        if length < 1:
            raise ConfigError(
                f"The 'length' parameter of CoordinatorSession must be >= 1; got {length}."
            )
        self.session = session
        self.graph = {node: frozenset(peers) for node, peers in graph.items()}
        self.neighbourhood = neighbourhood
        self.modulus_bits = modulus_bits
        self.length = length
        self.adverts: dict[str, KeyAdvert] = {}  # U1
        self.sealed: dict[str, dict[str, bytes]] = {}  # U2: sender -> recipient -> shares
        self.masked: dict[str, NDArray[np.unsignedinteger[Any]]] = {}  # U3

    @property
    def threshold(self) -> int:
        """``t``: shares needed to rebuild one secret."""
        return self.neighbourhood.threshold

    # Stage 1 -> 2 -------------------------------------------------------------------------------
    def accept_advert(self, advert: KeyAdvert) -> None:
        """Keep a cohort node's advertisement (its signature is checked by its neighbours)."""
        if advert.node_id not in self.graph:
            raise SecureAggregationError(f"{advert.node_id!r} is not in this round's cohort.")
        self.adverts[advert.node_id] = advert

    def adverts_for(self, node: str) -> dict[str, KeyAdvert]:
        """The advertisements of ``node``'s neighbours that advertised."""
        return {
            peer: self.adverts[peer] for peer in sorted(self.graph[node]) if peer in self.adverts
        }

    # Stage 2 -> 3 -------------------------------------------------------------------------------
    def accept_shares(self, sender: str, sealed: Mapping[str, bytes]) -> None:
        """Keep a node's encrypted shares, addressed to neighbours that advertised keys.

        A node leaves out a neighbour whose advertisement did not verify; :meth:`close_shares`
        then keeps only pairs that sent each other shares.

        Raises
        ------
        SecureAggregationError
            If the sender did not advertise, or addressed shares to nodes it was not sent keys of.
        """
        if sender not in self.adverts:
            raise SecureAggregationError(f"{sender!r} sent shares without advertising keys.")
        stray = sorted(set(sealed) - set(self.adverts_for(sender)))
        if stray:
            raise SecureAggregationError(
                f"{sender!r} addressed shares to {stray[:5]}, which are not its neighbours that "
                "advertised keys."
            )
        self.sealed[sender] = dict(sealed)

    def close_shares(self) -> dict[str, str]:
        """End stage 2: keep nodes with at least ``t - 1`` neighbours they exchanged shares with.

        A pair masks with each other only if each sent the other its shares, so every share the
        coordinator relays is mutual. A node left with fewer than ``t`` holders (itself and such
        neighbours) could not be unmasked: it is dropped before its input is asked for, which may
        in turn drop others (repeated until none falls short).

        Returns
        -------
        dict
            Node id to why it was dropped.
        """
        dropped: dict[str, str] = {}
        while True:
            short = {
                node: len(self._mutual(node))
                for node in self.sealed
                if len(self._mutual(node)) + 1 < self.threshold
            }
            if not short:
                return dropped
            for node, count in short.items():
                del self.sealed[node]
                dropped[node] = (
                    f"only {count} of its neighbours exchanged secret shares with it (its keys may "
                    f"have been refused by them); {self.threshold - 1} are needed"
                )

    def _mutual(self, node: str) -> set[str]:
        """Neighbours that completed stage 2 and exchanged shares with ``node`` both ways."""
        return {
            peer
            for peer in self.sealed.get(node, {})
            if peer in self.sealed and node in self.sealed[peer]
        }

    def shares_for(self, recipient: str) -> dict[str, bytes]:
        """The encrypted shares addressed to ``recipient`` by its mutual neighbours."""
        return {
            sender: self.sealed[sender][recipient] for sender in sorted(self._mutual(recipient))
        }

    # Stage 3 -> 4 -------------------------------------------------------------------------------
    def accept_masked(self, node: str, masked: NDArray[np.unsignedinteger[Any]]) -> None:
        """Keep a node's masked input.

        Raises
        ------
        SecureAggregationError
            If the node did not send shares, or the vector has the wrong length or values.
        """
        if node not in self.sealed:
            raise SecureAggregationError(f"{node!r} sent a masked input without sharing keys.")
        vector = np.asarray(masked)
        if vector.shape != (self.length,) or not np.issubdtype(vector.dtype, np.unsignedinteger):
            raise SecureAggregationError(
                f"The masked input of {node!r} must be {self.length} unsigned integers; got "
                f"{vector.dtype} of shape {vector.shape}."
            )
        wider = np.dtype(vector.dtype).itemsize * 8 > self.modulus_bits
        if wider and int(vector.max()) >> self.modulus_bits:
            raise SecureAggregationError(
                f"The masked input of {node!r} has values outside the ring 2**{self.modulus_bits}."
            )
        self.masked[node] = vector

    @property
    def survivors(self) -> list[str]:
        """Nodes whose masked input arrived (``U3``), sorted."""
        return sorted(self.masked)

    @property
    def dropped(self) -> list[str]:
        """Nodes that sent shares but no masked input (``U2 \\ U3``), sorted."""
        return sorted(set(self.sealed) - set(self.masked))

    def unmask_request(self, node: str) -> tuple[list[str], list[str]]:
        """Whom ``node`` should reveal self-mask shares for, and mask-key shares for.

        Only the nodes whose shares ``node`` holds (neighbours that completed stage 2), and the
        node itself among the survivors.
        """
        holds = set(self.shares_for(node))
        return (
            sorted((holds & set(self.masked)) | {node}),
            sorted(holds & set(self.dropped)),
        )

    # Stage 4 ------------------------------------------------------------------------------------
    def unmask(self, reveals: Mapping[str, Reveal]) -> NDArray[np.uint64]:
        """The sum of the survivors' encoded inputs modulo ``2**b``.

        Parameters
        ----------
        reveals
            The shares each surviving node revealed.

        Returns
        -------
        numpy.ndarray
            ``(length,)`` uint64.

        Raises
        ------
        BelowThresholdError
            If fewer than ``t`` shares of a needed secret were revealed, or fewer than ``t``
            nodes survived: nothing is aggregated.
        SecureAggregationError
            If the shares of a secret are inconsistent, or a rebuilt mask key does not match the
            public key its node signed.
        """
        survivors = self.survivors
        if len(survivors) < self.threshold:
            raise BelowThresholdError(
                what="nodes that sent their masked input", available=len(survivors),
                threshold=self.threshold,
            )  # fmt: skip
        self_mask_shares: dict[str, list[Share]] = {}
        mask_key_shares: dict[str, list[Share]] = {}
        for reveal in reveals.values():
            for node, share in reveal.self_mask.items():
                self_mask_shares.setdefault(node, []).append(share)
            for node, share in reveal.mask_key.items():
                mask_key_shares.setdefault(node, []).append(share)
        total = MaskSum(self.length, modulus_bits=self.modulus_bits)
        for node in survivors:
            total.add_vector(self.masked[node])
            seed = self._rebuild(
                node,
                self_mask_shares.get(node, []),
                "self-mask seed",
                is_right=functools.partial(
                    _is_committed_seed, self.session, node, self.adverts[node].self_mask_commitment
                ),
            )
            total.add_mask(seed, sign=-1)
        alive = set(survivors)
        for node in self.dropped:
            public = self.adverts[node].mask_public_key
            key_bytes = self._rebuild(
                node,
                mask_key_shares.get(node, []),
                "mask key",
                is_right=functools.partial(_is_key_of, public),
            )
            keys = KeyPair.from_private_bytes(key_bytes)
            for peer in sorted(self._mutual(node) & alive):
                seed = pair_seed(
                    keys, self.adverts[peer].mask_public_key, session=self.session,
                    own_id=node, peer_id=peer,
                )  # fmt: skip
                # The peer added this mask if its id sorts first, else subtracted it: undo that.
                total.add_mask(seed, sign=-1 if peer < node else 1)
        return total.result()

    def _rebuild(
        self,
        node: str,
        revealed: Sequence[Share],
        what: str,
        *,
        is_right: Callable[[bytes], bool],
    ) -> bytes:
        """One secret from its revealed shares, checked by ``is_right`` against what the node
        signed; other ``t``-subsets are tried when a share was corrupted.

        The first ``t`` shares, then each set leaving one of them out (one corrupted share), then
        further combinations, up to ``_MAX_RECONSTRUCTION_TRIES``.
        """
        by_x = {share.x: share for share in revealed}
        shares = [by_x[x] for x in sorted(by_x)]
        t = self.threshold
        if len(shares) < t:
            raise BelowThresholdError(
                what=f"shares of node {node!r}'s {what}", available=len(shares), threshold=t
            )
        leave_one_out = ([s for s in shares if s is not out][:t] for out in shares[:t])
        candidates = itertools.chain([shares[:t]], leave_one_out, itertools.combinations(shares, t))
        for subset in itertools.islice(candidates, _MAX_RECONSTRUCTION_TRIES):
            if len(subset) < t:
                continue
            try:
                secret = reconstruct_secret(subset, threshold=t)
            except SecureAggregationError:  # inconsistent: a corrupted share among them
                continue
            if is_right(secret):
                return secret
        raise SecureAggregationError(
            f"No {t} of the {len(shares)} revealed shares of node {node!r}'s {what} rebuild the "
            "value it committed to: revealed shares were corrupted. Nothing is unmasked."
        )
