"""SecAgg+ end to end: exact sums despite dropouts at every stage, and every refusal fails closed.

Nodes and coordinator run in one process (no transport); the signatures and certificates are real
(one in-memory federation CA per module).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import (
    BelowThresholdError,
    ConfigError,
    SecureAggregationError,
    ShareAuthenticationError,
)
from sovereign_ai.pki.signing import IdentitySigner, NodeSignatureVerifier, ephemeral_federation
from sovereign_ai.secagg.adverts import KeyAdvert, SessionId
from sovereign_ai.secagg.aggregation import CoordinatorSession
from sovereign_ai.secagg.graph import Neighbourhood, choose_neighbourhood, communication_graph
from sovereign_ai.secagg.key_agreement import KeyPair
from sovereign_ai.secagg.node_session import NodeSession, Reveal, check_threshold
from sovereign_ai.secagg.shamir import FIELD_PRIME, Share, split_secret

NODE_IDS = tuple(f"node-{i:02d}" for i in range(12))
SESSION = SessionId("job-1", 3, 1)


class Federation(tuple[NodeSignatureVerifier, dict[str, IdentitySigner]]):
    """The verifier and the signers, with a short repr (hypothesis prints its arguments)."""

    def __repr__(self) -> str:
        return f"Federation({sorted(self[1])[0]}..{sorted(self[1])[-1]})"


@pytest.fixture(scope="module")
def federation() -> Federation:
    identities = ephemeral_federation("secagg-tests", NODE_IDS)
    return Federation((identities.verifier, identities.signers))


@pytest.fixture(scope="module")
def other_federation() -> Federation:
    """Same node names, another CA."""
    identities = ephemeral_federation("impostor", NODE_IDS)
    return Federation((identities.verifier, identities.signers))


@dataclasses.dataclass
class Round:
    """One session's nodes and coordinator, driven stage by stage."""

    nodes: dict[str, NodeSession]
    coordinator: CoordinatorSession
    verifier: NodeSignatureVerifier
    neighbourhood: Neighbourhood
    graph: dict[str, tuple[str, ...]]
    bits: int
    length: int

    def advertise(self, nodes: Sequence[str] | None = None) -> None:
        for node in self.nodes if nodes is None else nodes:
            self.coordinator.accept_advert(self.nodes[node].advertise())

    def share_keys(self, nodes: Sequence[str] | None = None) -> None:
        for node in self.nodes if nodes is None else nodes:
            sealed = self.nodes[node].share_keys(
                self.coordinator.adverts_for(node), verifier=self.verifier
            )
            self.coordinator.accept_shares(node, sealed)

    def mask(self, inputs: Mapping[str, np.ndarray]) -> None:
        for node, vector in inputs.items():
            self.nodes[node].receive_shares(self.coordinator.shares_for(node))
            self.coordinator.accept_masked(node, self.nodes[node].mask(vector))

    def reveal(self, nodes: Sequence[str] | None = None) -> dict[str, Reveal]:
        reveals = {}
        for node in self.coordinator.survivors if nodes is None else nodes:
            survivors, dropped = self.coordinator.unmask_request(node)
            reveals[node] = self.nodes[node].reveal(survivors=survivors, dropped=dropped)
        return reveals


def make_round(
    federation: Federation,
    node_ids: Sequence[str],
    *,
    neighbourhood: Neighbourhood | None = None,
    bits: int = 32,
    length: int = 8,
    seed: int = 0,
    session: SessionId = SESSION,
) -> Round:
    verifier, signers = federation
    chosen = neighbourhood or choose_neighbourhood(len(node_ids))
    graph = communication_graph(node_ids, degree=chosen.degree, rng=np.random.default_rng(seed))
    nodes = {
        node: NodeSession(
            node_id=node,
            session=session,
            neighbours=graph[node],
            threshold=chosen.threshold,
            modulus_bits=bits,
            signer=signers[node],
        )
        for node in node_ids
    }
    coordinator = CoordinatorSession(
        session=session, graph=graph, neighbourhood=chosen, modulus_bits=bits, length=length
    )
    return Round(nodes, coordinator, verifier, chosen, graph, bits, length)


def random_inputs(node_ids: Sequence[str], *, bits: int, length: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    return {
        node: np.array([rng.randrange(1 << bits) for _ in range(length)], dtype=np.uint64)
        for node in node_ids
    }


def plain_sum(inputs: Mapping[str, np.ndarray], nodes: Sequence[str], bits: int) -> list[int]:
    length = next(iter(inputs.values())).size
    return [sum(int(inputs[n][i]) for n in nodes) % (1 << bits) for i in range(length)]


def full_round(federation: Federation, node_ids: Sequence[str], **kwargs: object) -> Round:
    """A round up to the masked inputs of every node (no dropouts)."""
    rnd = make_round(federation, node_ids, **kwargs)  # type: ignore[arg-type]
    rnd.advertise()
    rnd.share_keys()
    return rnd


# The property: exact sums whatever drops out, or a BelowThresholdError and nothing ---------------


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    count = draw(st.integers(min_value=2, max_value=len(NODE_IDS)))
    node_ids = list(NODE_IDS[:count])
    degree = draw(st.sampled_from([*range(2, count - 1, 2), count - 1]))
    holders = degree + 1
    threshold = draw(st.integers(min_value=holders // 2 + 1, max_value=holders))
    # Where each node drops out: right after advertising ("advertise"; half of those never
    # advertise at all), after sharing keys ("share"), after sending its masked input, so during
    # unmasking ("mask"), after revealing ("reveal", too late to matter), or never.
    stages = draw(
        st.lists(
            st.sampled_from(["never", "never", "never", "advertise", "share", "mask", "reveal"]),
            min_size=count,
            max_size=count,
        )
    )
    bits = draw(st.integers(min_value=1, max_value=64))
    length = draw(st.integers(min_value=1, max_value=12))
    return {
        "node_ids": node_ids,
        "neighbourhood": Neighbourhood(nodes=count, degree=degree, threshold=threshold),
        "drops": dict(zip(node_ids, stages, strict=True)),
        "bits": bits,
        "length": length,
        "seed": draw(st.integers(0, 2**32)),
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=scenarios())
def test_the_unmasked_sum_is_the_survivors_sum_or_the_round_fails_closed(
    federation: Federation, case: dict
) -> None:
    node_ids, drops, bits, length = case["node_ids"], case["drops"], case["bits"], case["length"]
    rnd = make_round(
        federation,
        node_ids,
        neighbourhood=case["neighbourhood"],
        bits=bits,
        length=length,
        seed=case["seed"],
    )
    co, t = rnd.coordinator, rnd.neighbourhood.threshold
    inputs = random_inputs(node_ids, bits=bits, length=length, seed=case["seed"])
    refused: set[str] = set()  # nodes that refused a stage (BelowThresholdError): they drop out

    # An "advertise" drop shares no keys; half of those nodes do not even advertise.
    advertised = [n for n in node_ids if drops[n] != "advertise"]
    silent = [n for n in node_ids if drops[n] == "advertise"][::2]
    rnd.advertise([n for n in node_ids if n not in silent])
    for node in advertised:
        try:
            rnd.share_keys([node])
        except BelowThresholdError:
            refused.add(node)
    for node in node_ids:
        if node in co.sealed and drops[node] != "share":
            try:
                rnd.mask({node: inputs[node]})
            except BelowThresholdError:
                refused.add(node)
    revealers = [n for n in co.survivors if drops[n] != "mask"]
    reveals: dict[str, Reveal] = {}
    for node in revealers:
        try:
            reveals.update(rnd.reveal([node]))
        except BelowThresholdError:
            refused.add(node)

    # An independent oracle: the round can complete iff at least t nodes survived and every secret
    # the coordinator needs has at least t revealed shares.
    survivors, dropped = co.survivors, co.dropped

    def holders_of(owner: str) -> set[str]:
        return {owner} | {h for h in co.sealed[owner] if h in co.sealed}

    enough = len(survivors) >= t and all(
        len(holders_of(owner) & set(reveals)) >= t for owner in [*survivors, *dropped]
    )
    if enough:
        total = co.unmask(reveals)
        assert total.dtype == np.uint64 and total.shape == (length,)
        assert [int(x) for x in total] == plain_sum(inputs, survivors, bits)
        assert set(survivors) >= {n for n in node_ids if drops[n] in ("never", "mask")} - refused
    else:
        with pytest.raises(BelowThresholdError, match="threshold is"):
            co.unmask(reveals)


@pytest.mark.parametrize("count", [3, 5, 9])
def test_a_round_without_dropouts_sums_exactly(federation: Federation, count: int) -> None:
    node_ids = NODE_IDS[:count]
    rnd = full_round(federation, node_ids, bits=64, length=50)
    inputs = random_inputs(node_ids, bits=64, length=50, seed=count)
    rnd.mask(inputs)
    total = rnd.coordinator.unmask(rnd.reveal())
    assert [int(x) for x in total] == plain_sum(inputs, node_ids, 64)


def test_a_sparse_graph_with_dropouts_sums_exactly(federation: Federation) -> None:
    node_ids = NODE_IDS
    chosen = Neighbourhood(nodes=12, degree=6, threshold=5)
    rnd = full_round(federation, node_ids, neighbourhood=chosen, bits=20, length=30, seed=4)
    assert not chosen.is_complete and all(len(p) == 6 for p in rnd.graph.values())
    inputs = random_inputs(node_ids, bits=20, length=30, seed=4)
    rnd.mask({n: inputs[n] for n in node_ids if n not in ("node-03", "node-07")})
    assert rnd.coordinator.dropped == ["node-03", "node-07"]
    total = rnd.coordinator.unmask(rnd.reveal())
    survivors = [n for n in node_ids if n not in ("node-03", "node-07")]
    assert [int(x) for x in total] == plain_sum(inputs, survivors, 20)


def test_a_node_that_masked_then_never_revealed_is_still_summed(federation: Federation) -> None:
    node_ids = NODE_IDS[:6]
    rnd = full_round(federation, node_ids, length=10)
    inputs = random_inputs(node_ids, bits=32, length=10, seed=1)
    rnd.mask(inputs)
    reveals = rnd.reveal([n for n in node_ids if n != "node-02"])  # node-02 is gone now
    total = rnd.coordinator.unmask(reveals)
    assert [int(x) for x in total] == plain_sum(inputs, node_ids, 32)


def test_too_few_survivors_raise_and_the_nodes_reveal_nothing(federation: Federation) -> None:
    node_ids = NODE_IDS[:5]  # complete graph, t = 3
    rnd = full_round(federation, node_ids)
    inputs = random_inputs(node_ids, bits=32, length=8)
    rnd.mask({n: inputs[n] for n in node_ids[:2]})  # three drop after sharing keys
    assert rnd.neighbourhood.threshold == 3
    with pytest.raises(BelowThresholdError, match=r"surviving holders .* threshold is 3"):
        rnd.reveal(["node-00"])
    with pytest.raises(BelowThresholdError, match="nodes that sent their masked input"):
        rnd.coordinator.unmask({})


def test_too_few_reveals_raise_in_the_coordinator(federation: Federation) -> None:
    node_ids = NODE_IDS[:5]
    rnd = full_round(federation, node_ids)
    rnd.mask(random_inputs(node_ids, bits=32, length=8))
    reveals = rnd.reveal(node_ids[:2])
    with pytest.raises(BelowThresholdError, match=r"shares of node .* threshold is 3"):
        rnd.coordinator.unmask(reveals)


def test_too_few_adverts_or_shares_raise_in_the_node(federation: Federation) -> None:
    node_ids = NODE_IDS[:5]
    rnd = make_round(federation, node_ids)
    rnd.advertise(node_ids[:2])
    with pytest.raises(BelowThresholdError, match="neighbours that advertised keys"):
        rnd.share_keys(["node-00"])
    rnd = make_round(federation, node_ids)
    rnd.advertise()
    rnd.share_keys(node_ids[:2])
    with pytest.raises(BelowThresholdError, match="that shared their secrets"):
        rnd.mask(random_inputs(["node-00"], bits=32, length=8))


# Masked vectors look uniform ---------------------------------------------------------------------


def chi_square(counts: np.ndarray) -> float:
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


def test_a_masked_zero_input_looks_uniform(federation: Federation) -> None:
    node_ids = NODE_IDS[:3]
    length = 8192
    rnd = full_round(federation, node_ids, bits=64, length=length)
    rnd.nodes["node-00"].receive_shares(rnd.coordinator.shares_for("node-00"))
    masked = rnd.nodes["node-00"].mask(np.zeros(length, dtype=np.uint64))
    # Byte histogram: 65536 bytes in 256 bins, 255 degrees of freedom (mean 255, sd 22.6); the
    # bound is about 8 standard deviations above the mean.
    byte_counts = np.bincount(masked.view(np.uint8), minlength=256)
    assert chi_square(byte_counts) < 440
    # Top 4 bits of every element: 16 bins, 15 degrees of freedom (mean 15, sd 5.5).
    top_counts = np.bincount((masked >> np.uint64(60)).astype(np.int64), minlength=16)
    assert chi_square(top_counts) < 70
    # And the chi-square statistic does flag a biased vector (the test has power).
    biased = np.bincount(np.zeros(length, np.uint64).view(np.uint8), minlength=256)
    assert chi_square(biased) > 440


def test_a_masked_input_with_a_small_ring_is_uniform_over_it(federation: Federation) -> None:
    node_ids = NODE_IDS[:3]
    length = 4096
    rnd = full_round(federation, node_ids, bits=5, length=length)
    rnd.nodes["node-01"].receive_shares(rnd.coordinator.shares_for("node-01"))
    masked = rnd.nodes["node-01"].mask(np.full(length, 31, dtype=np.uint64))
    assert int(masked.max()) < 32
    counts = np.bincount(masked.astype(np.int64), minlength=32)
    assert counts.size == 32
    assert chi_square(counts) < 110  # 31 degrees of freedom: mean 31, sd 7.9


# Never both secrets of one node -----------------------------------------------------------------


def masked_round(federation: Federation, count: int = 5) -> tuple[Round, dict]:
    node_ids = NODE_IDS[:count]
    rnd = full_round(federation, node_ids)
    inputs = random_inputs(node_ids, bits=32, length=8)
    rnd.mask(inputs)
    return rnd, inputs


def test_a_node_reveals_only_one_secret_per_peer(federation: Federation) -> None:
    rnd, _ = masked_round(federation)
    node = rnd.nodes["node-00"]
    everyone = sorted(rnd.nodes)
    first = node.reveal(survivors=everyone, dropped=[])
    assert set(first.self_mask) == set(everyone) and not first.mask_key
    # The same request again is answered the same way ...
    assert node.reveal(survivors=everyone, dropped=[]) == first
    # ... but not the other secret of a peer whose self-mask share went out.
    with pytest.raises(SecureAggregationError, match="other secret of \\['node-03'\\]"):
        node.reveal(survivors=[p for p in everyone if p != "node-03"], dropped=["node-03"])


def test_a_node_reveals_no_self_mask_share_after_a_mask_key_share(federation: Federation) -> None:
    rnd, _ = masked_round(federation)
    node = rnd.nodes["node-01"]
    alive = ["node-00", "node-01", "node-02", "node-03"]
    assert set(node.reveal(survivors=alive, dropped=["node-04"]).mask_key) == {"node-04"}
    with pytest.raises(SecureAggregationError, match="other secret of \\['node-04'\\]"):
        node.reveal(survivors=[*alive, "node-04"], dropped=[])


def test_both_lists_at_once_are_refused(federation: Federation) -> None:
    rnd, _ = masked_round(federation)
    everyone = sorted(rnd.nodes)
    with pytest.raises(SecureAggregationError, match="listed both as survived and dropped"):
        rnd.nodes["node-00"].reveal(survivors=everyone, dropped=["node-02"])
    # Nothing was revealed by the refused request: a consistent one still works.
    assert rnd.nodes["node-00"].reveal(survivors=everyone, dropped=[]).self_mask


@pytest.mark.parametrize(
    ("survivors", "dropped", "match"),
    [
        (["node-01", "node-02", "node-03"], [], "this node is not among the survivors"),
        (["node-00", "node-01", "node-02"], ["node-00"], "listed as dropped"),
        (["node-00", "node-01", "node-02", "node-11"], [], "holds no shares of \\['node-11'\\]"),
    ],
)
def test_inconsistent_unmask_requests_are_refused(
    federation: Federation, survivors: list[str], dropped: list[str], match: str
) -> None:
    rnd, _ = masked_round(federation)
    with pytest.raises(SecureAggregationError, match=match):
        rnd.nodes["node-00"].reveal(survivors=survivors, dropped=dropped)


# Substituted, altered, replayed and foreign keys -------------------------------------------------


def adverts_with(rnd: Round, node: str, peer: str, advert: KeyAdvert) -> dict[str, KeyAdvert]:
    adverts = rnd.coordinator.adverts_for(node)
    adverts[peer] = advert
    return adverts


def test_an_advert_signed_by_another_node_is_refused(federation: Federation) -> None:
    _, signers = federation
    rnd = make_round(federation, NODE_IDS[:4])
    rnd.advertise()
    # The relay makes keys of its own for node-01 and has node-02's identity sign them.
    cipher, mask = KeyPair.generate().public_key, KeyPair.generate().public_key
    commitment = bytes(32)
    message = KeyAdvert.signed_message(SESSION, "node-01", cipher, mask, commitment)
    forged = KeyAdvert(
        node_id="node-01",
        cipher_public_key=cipher,
        mask_public_key=mask,
        self_mask_commitment=commitment,
        certificate=signers["node-02"].certificate,
        signature=signers["node-02"].sign(message),
    )
    assert_refused_peer(rnd, forged, match="signed by node 'node-02'")


def assert_refused_peer(rnd: Round, advert: KeyAdvert, *, match: str) -> None:
    """node-00 leaves node-01, whose relayed advert is ``advert``, out of its shares, saying why."""
    node = rnd.nodes["node-00"]
    sealed = node.share_keys(adverts_with(rnd, "node-00", "node-01", advert), verifier=rnd.verifier)
    assert "node-01" not in sealed
    assert set(sealed) == set(rnd.coordinator.adverts_for("node-00")) - {"node-01"}
    assert re.search(match, node.rejected["node-01"]), node.rejected


def test_another_nodes_advert_relayed_under_a_peers_name_is_refused(
    federation: Federation,
) -> None:
    rnd = make_round(federation, NODE_IDS[:4])
    rnd.advertise()
    theirs = rnd.coordinator.adverts["node-02"]
    with pytest.raises(SecureAggregationError, match=r"relayed as 'node-01'.* names 'node-02'"):
        rnd.nodes["node-00"].share_keys(
            adverts_with(rnd, "node-00", "node-01", theirs), verifier=rnd.verifier
        )
    relabelled = dataclasses.replace(theirs, node_id="node-01")
    assert_refused_peer(rnd, relabelled, match="signed by node 'node-02'")


@pytest.mark.parametrize("field", ["cipher_public_key", "mask_public_key"])
def test_an_advert_with_altered_keys_is_refused(federation: Federation, field: str) -> None:
    rnd = make_round(federation, NODE_IDS[:4])
    rnd.advertise()
    altered = dataclasses.replace(
        rnd.coordinator.adverts["node-01"], **{field: KeyPair.generate().public_key}
    )
    assert_refused_peer(rnd, altered, match="does not verify")


@pytest.mark.parametrize(
    "other_session",
    [SessionId("job-1", 3, 2), SessionId("job-1", 2, 1), SessionId("job-2", 3, 1)],
    ids=["other-attempt", "other-round", "other-job"],
)
def test_an_advert_replayed_from_another_session_is_refused(
    federation: Federation, other_session: SessionId
) -> None:
    rnd = make_round(federation, NODE_IDS[:4])
    rnd.advertise()
    old = make_round(federation, NODE_IDS[:4], session=other_session)
    replayed = old.nodes["node-01"].advertise()
    assert_refused_peer(rnd, replayed, match="replayed from another round")


def test_an_advert_certified_by_another_ca_is_refused(
    federation: Federation, other_federation: Federation
) -> None:
    rnd = make_round(federation, NODE_IDS[:4])
    rnd.advertise()
    impostor = make_round(other_federation, NODE_IDS[:4]).nodes["node-01"].advertise()
    assert_refused_peer(rnd, impostor, match="certificate that is refused")


def test_adverts_of_non_neighbours_are_refused(federation: Federation) -> None:
    chosen = Neighbourhood(nodes=8, degree=2, threshold=2)
    rnd = make_round(federation, NODE_IDS[:8], neighbourhood=chosen, seed=1)
    rnd.advertise()
    stranger = next(n for n in NODE_IDS[:8] if n not in rnd.graph["node-00"] and n != "node-00")
    adverts = rnd.coordinator.adverts_for("node-00")
    adverts[stranger] = rnd.coordinator.adverts[stranger]
    with pytest.raises(SecureAggregationError, match="not among its neighbours"):
        rnd.nodes["node-00"].share_keys(adverts, verifier=rnd.verifier)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("cipher_public_key", b"\x01" * 31, "cipher_public_key .* must be 32 bytes"),
        ("mask_public_key", b"", "mask_public_key .* must be 32 bytes"),
        ("certificate", b"", "certificate .* must be 1 to"),
        ("signature", b"\x00" * 513, "signature .* must be 1 to"),
    ],
)
def test_malformed_adverts_are_refused(
    federation: Federation, field: str, value: bytes, match: str
) -> None:
    rnd = make_round(federation, NODE_IDS[:3])
    advert = rnd.nodes["node-00"].advertise()
    with pytest.raises(SecureAggregationError, match=match):
        dataclasses.replace(advert, **{field: value})


# Encrypted shares ---------------------------------------------------------------------------------


def test_a_tampered_share_fails_authentication(federation: Federation) -> None:
    rnd = full_round(federation, NODE_IDS[:4])
    sealed = rnd.coordinator.shares_for("node-00")
    for position in (0, 20, -1):  # nonce, ciphertext, tag
        tampered = dict(sealed)
        message = bytearray(sealed["node-02"])
        message[position] ^= 0x01
        tampered["node-02"] = bytes(message)
        with pytest.raises(ShareAuthenticationError, match="from 'node-02' to 'node-00'"):
            rnd.nodes["node-00"].receive_shares(tampered)
    truncated = {**sealed, "node-02": sealed["node-02"][:20]}
    with pytest.raises(ShareAuthenticationError, match="truncated"):
        rnd.nodes["node-00"].receive_shares(truncated)


def test_a_share_routed_to_the_wrong_recipient_fails_authentication(
    federation: Federation,
) -> None:
    rnd = full_round(federation, NODE_IDS[:4])
    # node-02's shares meant for node-01, delivered to node-00 as if meant for it.
    misrouted = dict(rnd.coordinator.shares_for("node-00"))
    misrouted["node-02"] = rnd.coordinator.sealed["node-02"]["node-01"]
    with pytest.raises(ShareAuthenticationError, match="failed authentication"):
        rnd.nodes["node-00"].receive_shares(misrouted)
    # node-01's shares meant for node-00, presented as coming from node-02.
    swapped = dict(rnd.coordinator.shares_for("node-00"))
    swapped["node-02"] = swapped["node-01"]
    with pytest.raises(ShareAuthenticationError, match="failed authentication"):
        rnd.nodes["node-00"].receive_shares(swapped)


def test_shares_from_a_node_that_did_not_advertise_are_refused(federation: Federation) -> None:
    rnd = make_round(federation, NODE_IDS[:4])
    rnd.advertise(NODE_IDS[:3])
    rnd.share_keys(NODE_IDS[:3])
    sealed = dict(rnd.coordinator.shares_for("node-00"))
    sealed["node-03"] = sealed["node-01"]
    with pytest.raises(SecureAggregationError, match="did not advertise keys to it"):
        rnd.nodes["node-00"].receive_shares(sealed)


def test_the_coordinator_refuses_misaddressed_or_unannounced_shares(
    federation: Federation,
) -> None:
    rnd = make_round(federation, NODE_IDS[:4])
    rnd.advertise(NODE_IDS[:3])
    sealed = rnd.nodes["node-00"].share_keys(
        rnd.coordinator.adverts_for("node-00"), verifier=rnd.verifier
    )
    with pytest.raises(SecureAggregationError, match="addressed shares to"):
        rnd.coordinator.accept_shares("node-00", {**sealed, "node-03": b"x" * 40})
    with pytest.raises(SecureAggregationError, match="without advertising keys"):
        rnd.coordinator.accept_shares("node-03", {})
    with pytest.raises(SecureAggregationError, match="without sharing keys"):
        rnd.coordinator.accept_masked("node-01", np.zeros(8, np.uint64))


@pytest.mark.parametrize(
    ("vector", "match"),
    [
        (np.zeros(7, np.uint64), "must be 8 unsigned integers"),
        (np.zeros(8, np.int64), "must be 8 unsigned integers"),
        (np.full(8, 1 << 32, np.uint64), "outside the ring 2\\*\\*32"),
    ],
)
def test_the_coordinator_refuses_malformed_masked_inputs(
    federation: Federation, vector: np.ndarray, match: str
) -> None:
    rnd = full_round(federation, NODE_IDS[:3])
    with pytest.raises(SecureAggregationError, match=match):
        rnd.coordinator.accept_masked("node-00", vector)


# Corrupted revealed shares: recovered from the others, or refused; never a wrong sum -------------


def corrupt(share: Share, seed: int = 0) -> Share:
    """The share with a uniformly random value (what a garbled or random share looks like)."""
    return Share(x=share.x, y=random.Random(seed).randrange(FIELD_PRIME))


@pytest.mark.parametrize("owner", ["node-00", "node-02", "node-04"])
def test_a_corrupted_self_mask_share_is_outvoted_by_the_others(
    federation: Federation, owner: str
) -> None:
    rnd, inputs = masked_round(federation)  # 5 holders, t = 3: 10 subsets to try
    reveals = rnd.reveal()
    for seed, revealer in enumerate(sorted(reveals)):
        good = reveals[revealer].self_mask[owner]
        reveals[revealer].self_mask[owner] = corrupt(good, seed)
        total = rnd.coordinator.unmask(reveals)
        assert [int(x) for x in total] == plain_sum(inputs, sorted(rnd.nodes), 32)
        reveals[revealer].self_mask[owner] = good


def test_a_corrupted_mask_key_share_is_outvoted_by_the_others(federation: Federation) -> None:
    node_ids = NODE_IDS[:5]
    rnd = full_round(federation, node_ids)
    inputs = random_inputs(node_ids, bits=32, length=8, seed=2)
    rnd.mask({n: inputs[n] for n in node_ids if n != "node-01"})
    reveals = rnd.reveal()
    assert all(set(r.mask_key) == {"node-01"} for r in reveals.values())
    reveals["node-00"].mask_key["node-01"] = corrupt(reveals["node-00"].mask_key["node-01"])
    total = rnd.coordinator.unmask(reveals)
    survivors = [n for n in node_ids if n != "node-01"]
    assert [int(x) for x in total] == plain_sum(inputs, survivors, 32)


def test_a_corrupted_share_among_exactly_t_is_refused(federation: Federation) -> None:
    rnd, _ = masked_round(federation)
    reveals = rnd.reveal(["node-00", "node-01", "node-02"])  # exactly t = 3 reveals
    reveals["node-01"].self_mask["node-00"] = corrupt(reveals["node-01"].self_mask["node-00"])
    with pytest.raises(SecureAggregationError, match=r"node 'node-00'.*committed to"):
        rnd.coordinator.unmask(reveals)


def test_a_wrong_mask_key_is_refused_against_the_signed_public_key(
    federation: Federation,
) -> None:
    node_ids = NODE_IDS[:5]
    rnd = full_round(federation, node_ids)
    rnd.mask(random_inputs([n for n in node_ids if n != "node-01"], bits=32, length=8))
    reveals = rnd.reveal(["node-00", "node-02", "node-03"])
    # Shares that interpolate to *a* 32-byte key, only not node-01's: t shares of another secret.
    other = split_secret(KeyPair.generate().private_bytes(), threshold=3, share_count=5)
    for reveal in reveals.values():
        x = reveal.mask_key["node-01"].x
        reveal.mask_key["node-01"] = other[x - 1]
    with pytest.raises(SecureAggregationError, match="rebuild the value it committed to"):
        rnd.coordinator.unmask(reveals)


def test_a_bit_flip_in_a_revealed_self_mask_share_never_gives_a_wrong_sum(
    federation: Federation,
) -> None:
    rnd, inputs = masked_round(federation)
    reveals = rnd.reveal()
    share = reveals["node-01"].self_mask["node-00"]
    reveals["node-01"].self_mask["node-00"] = Share(x=share.x, y=share.y ^ 1)
    try:
        total = rnd.coordinator.unmask(reveals)
    except SecureAggregationError:
        return  # refusing is fine
    assert [int(x) for x in total] == plain_sum(inputs, sorted(rnd.nodes), 32)


# Stage order -------------------------------------------------------------------------------------


def test_stages_out_of_order_are_refused(federation: Federation) -> None:
    rnd = make_round(federation, NODE_IDS[:3])
    node = rnd.nodes["node-00"]
    zeros = np.zeros(8, np.uint64)
    with pytest.raises(SecureAggregationError, match=r"cannot share keys now.* step created"):
        node.share_keys({}, verifier=rnd.verifier)
    with pytest.raises(SecureAggregationError, match="cannot mask its input now"):
        node.mask(zeros)
    with pytest.raises(SecureAggregationError, match="cannot reveal shares now"):
        node.reveal(survivors=["node-00"], dropped=[])
    rnd.advertise()
    with pytest.raises(SecureAggregationError, match=r"cannot advertise keys now.* advertised"):
        node.advertise()
    with pytest.raises(SecureAggregationError, match="cannot receive shares now"):
        node.receive_shares({})
    with pytest.raises(SecureAggregationError, match="cannot mask its input now"):
        node.mask(zeros)
    rnd.share_keys()
    with pytest.raises(SecureAggregationError, match=r"cannot share keys now.* step shared"):
        node.share_keys(rnd.coordinator.adverts_for("node-00"), verifier=rnd.verifier)
    with pytest.raises(SecureAggregationError, match="cannot reveal shares now"):
        node.reveal(survivors=sorted(rnd.nodes), dropped=[])
    node.receive_shares(rnd.coordinator.shares_for("node-00"))
    node.mask(zeros)
    with pytest.raises(SecureAggregationError, match=r"cannot mask its input now.* masked"):
        node.mask(zeros)
    with pytest.raises(SecureAggregationError, match="cannot receive shares now"):
        node.receive_shares(rnd.coordinator.shares_for("node-00"))


def test_masking_before_receiving_the_shares_is_refused(federation: Federation) -> None:
    rnd = full_round(federation, NODE_IDS[:3])
    with pytest.raises(SecureAggregationError, match="cannot mask its input now"):
        rnd.nodes["node-00"].mask(np.zeros(8, np.uint64))


@pytest.mark.parametrize(
    ("vector", "match"),
    [
        (np.zeros(8, np.int64), "1-D uint64 vector"),
        (np.zeros((2, 4), np.uint64), "1-D uint64 vector"),
        (np.full(8, 1 << 32, np.uint64), "values of 32 bits or more"),
    ],
)
def test_malformed_inputs_are_not_masked(
    federation: Federation, vector: np.ndarray, match: str
) -> None:
    rnd = full_round(federation, NODE_IDS[:3])
    node = rnd.nodes["node-00"]
    node.receive_shares(rnd.coordinator.shares_for("node-00"))
    with pytest.raises(ConfigError, match=match):
        node.mask(vector)


# Thresholds and neighbourhoods --------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "holders"), [(2, 4), (1, 3), (3, 6), (6, 5), (0, 1)])
def test_a_threshold_that_is_not_a_majority_is_refused(
    federation: Federation, threshold: int, holders: int
) -> None:
    with pytest.raises(ConfigError, match="must be a majority of the"):
        check_threshold(threshold, holders, owner="test")
    _, signers = federation
    if holders >= 2:
        with pytest.raises(ConfigError, match="'threshold' parameter of NodeSession"):
            NodeSession(
                node_id="node-00",
                session=SESSION,
                neighbours=NODE_IDS[1:holders],
                threshold=threshold,
                modulus_bits=32,
                signer=signers["node-00"],
            )


def test_majority_thresholds_are_accepted() -> None:
    for holders in range(1, 20):
        for threshold in range(holders // 2 + 1, holders + 1):
            check_threshold(threshold, holders, owner="test")
    with pytest.raises(ConfigError, match="must be an integer"):
        check_threshold(2.0, 3, owner="test")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "neighbours",
    [[], ["node-00", "node-01"], ["node-01", "node-01"]],
    ids=["none", "self", "twice"],
)
def test_invalid_neighbourhoods_are_refused(federation: Federation, neighbours: list) -> None:
    _, signers = federation
    with pytest.raises(ConfigError, match="invalid neighbourhood"):
        NodeSession(
            node_id="node-00",
            session=SESSION,
            neighbours=neighbours,
            threshold=2,
            modulus_bits=32,
            signer=signers["node-00"],
        )


def test_invalid_ring_sizes_are_refused(federation: Federation) -> None:
    _, signers = federation
    with pytest.raises(ConfigError, match="'modulus_bits' parameter of NodeSession"):
        NodeSession(
            node_id="node-00",
            session=SESSION,
            neighbours=["node-01"],
            threshold=2,
            modulus_bits=65,
            signer=signers["node-00"],
        )
    with pytest.raises(ConfigError, match="'length' parameter of CoordinatorSession"):
        CoordinatorSession(
            session=SESSION,
            graph={},
            neighbourhood=Neighbourhood(2, 1, 2),
            modulus_bits=32,
            length=0,
        )


def test_adverts_from_outside_the_cohort_are_refused(federation: Federation) -> None:
    rnd = make_round(federation, NODE_IDS[:3])
    outsider = make_round(federation, NODE_IDS[3:6]).nodes["node-04"].advertise()
    with pytest.raises(SecureAggregationError, match="not in this round's cohort"):
        rnd.coordinator.accept_advert(outsider)
