"""A node's side of secure aggregation, driven task by task: what it refuses, and what it leaves.

Three nodes with throw-away federation identities run the four stages by hand (the coordinator's
routing done here with the wire helpers); each test then sends one node a task it must refuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pytest

from sovereign_ai.core import ConfigValue, Parameters, Result, Stage, Task
from sovereign_ai.errors import ConfigError, SecureAggregationError
from sovereign_ai.federation import LocalData, Node, initial_parameters, parse_job_spec
from sovereign_ai.federation import stage_config as job_stage_config
from sovereign_ai.federation.secure_node import enable_secure_aggregation
from sovereign_ai.federation.secure_wire import (
    advert_from_tensors,
    adverts_to_tensors,
    sealed_from_tensors,
    with_shares,
)
from sovereign_ai.pki.signing import FederationIdentities, ephemeral_federation
from sovereign_ai.secagg.adverts import KeyAdvert

WIDTH, CLASSES = 4, 2
JOB_ID = "secure-node"
NAMES = ("site-a", "site-b", "site-c")
SPEC = parse_job_spec(
    {
        "job": {"name": JOB_ID, "rounds": 1, "seed": 3},
        "model": {"name": "logreg"},
        "strategy": {"name": "fedavg"},
    }
)
CONFIG = job_stage_config(SPEC, num_features=WIDTH, num_classes=CLASSES)
START = initial_parameters(SPEC, num_features=WIDTH, num_classes=CLASSES)
MASKING = {
    "secagg_input": Stage.TRAIN.value,
    "secagg_cohort_size": len(NAMES),
    "secagg_clipping_range": 2.0,
    "secagg_quantisation_bits": 16,
    "secagg_max_weight": 1024,
}


@pytest.fixture(scope="module")
def identities() -> FederationIdentities:
    return ephemeral_federation(JOB_ID, NAMES)


def plain_site(name: str) -> Node:
    rng = np.random.default_rng(NAMES.index(name))
    features = rng.standard_normal((16, WIDTH)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    return Node(name, data=LocalData(features, labels, features[:4], labels[:4]))


def secure_site(name: str, identities: FederationIdentities) -> Node:
    node = plain_site(name)
    enable_secure_aggregation(node, signer=identities.signers[name], verifier=identities.verifier)
    return node


def others(name: str) -> list[str]:
    return [n for n in NAMES if n != name]


def task(
    stage: Stage,
    node: str,
    *,
    attempt: int = 1,
    parameters: Parameters | None = None,
    round_number: int = 1,
    **settings: ConfigValue,
) -> Task:
    config = {**CONFIG, "seed": 11, "secagg_attempt": attempt, **settings}
    return Task(JOB_ID, round_number, stage, node, parameters or Parameters({}), config)  # type: ignore[arg-type]


def advertise_task(node: str, *, round_number: int = 1, **settings: ConfigValue) -> Task:
    options: dict[str, ConfigValue] = {
        "secagg_neighbours": json.dumps(others(node)),
        "secagg_threshold": 2,
        "secagg_modulus_bits": 32,
        **settings,
    }
    return task(Stage.SECAGG_ADVERTISE_KEYS, node, round_number=round_number, **options)


class Federation:
    """Three secure nodes and the messages the coordinator would route between them."""

    def __init__(self, identities: FederationIdentities) -> None:
        self.nodes = {name: secure_site(name, identities) for name in NAMES}
        self.adverts: dict[str, KeyAdvert] = {}
        self.sealed: dict[str, dict[str, bytes]] = {}
        self.masked: dict[str, Result] = {}

    def advertise(self) -> Federation:
        for name, node in self.nodes.items():
            answer = node.handle(advertise_task(name))
            self.adverts[name] = advert_from_tensors(name, answer.parameters)
        return self

    def share_keys(self) -> Federation:
        for name, node in self.nodes.items():
            relayed = adverts_to_tensors({p: self.adverts[p] for p in others(name)})
            answer = node.handle(task(Stage.SECAGG_SHARE_KEYS, name, parameters=relayed))
            self.sealed[name] = sealed_from_tensors(answer.parameters)
        return self

    def masked_input_task(self, name: str, **settings: ConfigValue) -> Task:
        shares = {sender: self.sealed[sender][name] for sender in others(name)}
        return task(
            Stage.SECAGG_MASKED_INPUT,
            name,
            parameters=with_shares(START, shares),
            **{**MASKING, **settings},
        )

    def mask(self) -> Federation:
        for name, node in self.nodes.items():
            self.masked[name] = node.handle(self.masked_input_task(name))
        return self


def unmask_task(name: str, *, survivors: list[str], dropped: list[str]) -> Task:
    return task(
        Stage.SECAGG_UNMASK,
        name,
        secagg_survivors=json.dumps(survivors),
        secagg_dropped=json.dumps(dropped),
    )


# The answers of a proper run ----------------------------------------------------------------------
def test_a_masked_input_leaves_as_one_masked_integer_vector_without_count_or_metrics(
    identities: FederationIdentities,
) -> None:
    federation = Federation(identities).advertise().share_keys().mask()
    for name, answer in federation.masked.items():
        assert (answer.node_id, answer.stage) == (name, Stage.SECAGG_MASKED_INPUT)
        assert list(answer.parameters) == ["masked"]
        assert answer.parameters["masked"].dtype == np.uint32  # a 2**32 modulus
        assert answer.parameters["masked"].shape == (START.num_scalars + 1,)  # and the weight
        assert (answer.num_examples, dict(answer.metrics)) == (0, {})
    reveal = federation.nodes["site-a"].handle(
        unmask_task("site-a", survivors=list(NAMES), dropped=[])
    )
    assert sorted(reveal.parameters) == [f"self-mask/{n}" for n in NAMES]


# Refusals -----------------------------------------------------------------------------------------
def test_a_masked_input_before_keys_were_advertised_is_refused(
    identities: FederationIdentities,
) -> None:
    node = secure_site("site-a", identities)
    masked = task(Stage.SECAGG_MASKED_INPUT, "site-a", parameters=START, **MASKING)
    with pytest.raises(SecureAggregationError, match="keys must be advertised first"):
        node.handle(masked)


@pytest.mark.parametrize("stage", [Stage.SECAGG_SHARE_KEYS, Stage.SECAGG_UNMASK])
def test_later_stages_before_keys_were_advertised_are_refused(
    identities: FederationIdentities, stage: Stage
) -> None:
    node = secure_site("site-a", identities)
    with pytest.raises(SecureAggregationError, match="keys must be advertised first"):
        node.handle(task(stage, "site-a", secagg_survivors="[]", secagg_dropped="[]"))


def test_a_masked_input_before_the_shares_were_made_is_refused(
    identities: FederationIdentities,
) -> None:
    federation = Federation(identities).advertise()
    early = task(Stage.SECAGG_MASKED_INPUT, "site-a", parameters=START, **MASKING)
    with pytest.raises(SecureAggregationError, match="cannot receive shares now"):
        federation.nodes["site-a"].handle(early)


def test_a_masked_input_of_a_stage_that_cannot_be_summed_is_refused(
    identities: FederationIdentities,
) -> None:
    federation = Federation(identities).advertise().share_keys()
    evaluate = federation.masked_input_task("site-a", secagg_input=Stage.EVALUATE.value)
    with pytest.raises(SecureAggregationError, match="'evaluate' cannot be summed securely"):
        federation.nodes["site-a"].handle(evaluate)


def test_a_masked_input_of_an_unknown_stage_is_refused_as_a_secure_aggregation_error(
    identities: FederationIdentities,
) -> None:
    federation = Federation(identities).advertise().share_keys()
    unknown = federation.masked_input_task("site-a", secagg_input="gossip")
    with pytest.raises(SecureAggregationError, match="gossip"):
        federation.nodes["site-a"].handle(unknown)


def test_a_neighbourhood_naming_the_node_itself_is_refused(
    identities: FederationIdentities,
) -> None:
    node = secure_site("site-a", identities)
    with pytest.raises(ConfigError, match="invalid neighbourhood"):
        node.handle(advertise_task("site-a", secagg_neighbours=json.dumps(list(NAMES))))


@pytest.mark.parametrize(
    ("neighbours", "problem"),
    [
        (json.dumps(["site-b", "site-b"]), "must list distinct node ids"),
        (json.dumps(["site-b", ""]), "must list distinct node ids"),
        (json.dumps({"site-b": 1}), "must list distinct node ids"),
        ("site-b,site-c", "lacks a valid 'secagg_neighbours'"),
        (json.dumps([]), "invalid neighbourhood"),
    ],
)
def test_a_malformed_neighbour_list_is_refused(
    identities: FederationIdentities, neighbours: str, problem: str
) -> None:
    node = secure_site("site-a", identities)
    with pytest.raises((ConfigError, SecureAggregationError), match=problem):
        node.handle(advertise_task("site-a", secagg_neighbours=neighbours))


@pytest.mark.parametrize("threshold", [1, 0, 4])
def test_a_threshold_that_is_not_a_majority_of_the_holders_is_refused(
    identities: FederationIdentities, threshold: int
) -> None:
    node = secure_site("site-a", identities)
    with pytest.raises(ConfigError, match=r"must be a majority of the 3 holders.*\[2, 3\]"):
        node.handle(advertise_task("site-a", secagg_threshold=threshold))


@pytest.mark.parametrize(
    ("key", "value"),
    [("secagg_threshold", "2"), ("secagg_modulus_bits", 32.0), ("secagg_attempt", True)],
)
def test_a_setting_that_is_not_an_integer_is_refused(
    identities: FederationIdentities, key: str, value: ConfigValue
) -> None:
    node = secure_site("site-a", identities)
    with pytest.raises(SecureAggregationError, match=f"'{key}' setting must be an integer"):
        node.handle(advertise_task("site-a", **{key: value}))


def test_relayed_keys_of_a_node_that_is_not_a_neighbour_are_refused(
    identities: FederationIdentities,
) -> None:
    federation = Federation(identities).advertise()
    node = federation.nodes["site-a"]
    node.handle(advertise_task("site-a", secagg_neighbours=json.dumps(["site-b"]), attempt=2))
    relayed = adverts_to_tensors({p: federation.adverts[p] for p in others("site-a")})
    with pytest.raises(SecureAggregationError, match="not among its neighbours"):
        node.handle(task(Stage.SECAGG_SHARE_KEYS, "site-a", attempt=2, parameters=relayed))


def test_asking_to_unmask_again_with_survivor_and_dropout_swapped_is_refused(
    identities: FederationIdentities,
) -> None:
    federation = Federation(identities).advertise().share_keys().mask()
    node = federation.nodes["site-a"]
    node.handle(unmask_task("site-a", survivors=list(NAMES), dropped=[]))
    flipped = unmask_task("site-a", survivors=["site-a", "site-b"], dropped=["site-c"])
    with pytest.raises(SecureAggregationError, match=r"other secret of \['site-c'\]"):
        node.handle(flipped)
    # Asking the same again is harmless: the same shares, nothing more.
    again = node.handle(unmask_task("site-a", survivors=list(NAMES), dropped=[]))
    assert sorted(again.parameters) == [f"self-mask/{n}" for n in NAMES]


@pytest.mark.parametrize(
    ("survivors", "dropped", "problem"),
    [
        (["site-b", "site-c"], [], "this node is not among the survivors"),
        (["site-a", "site-b"], ["site-b"], "listed both as survived and dropped"),
        (["site-a", "site-b", "site-x"], [], r"holds no shares of \['site-x'\]"),
    ],
)
def test_an_unmask_request_that_does_not_fit_is_refused(
    identities: FederationIdentities, survivors: list[str], dropped: list[str], problem: str
) -> None:
    federation = Federation(identities).advertise().share_keys().mask()
    with pytest.raises(SecureAggregationError, match=problem):
        federation.nodes["site-a"].handle(
            unmask_task("site-a", survivors=survivors, dropped=dropped)
        )


def test_a_new_advertisement_replaces_the_session_of_the_earlier_attempt(
    identities: FederationIdentities,
) -> None:
    federation = Federation(identities).advertise()
    node = federation.nodes["site-a"]
    retry = node.handle(advertise_task("site-a", attempt=2))
    assert advert_from_tensors("site-a", retry.parameters) != federation.adverts["site-a"]
    relayed = adverts_to_tensors({p: federation.adverts[p] for p in others("site-a")})
    with pytest.raises(SecureAggregationError, match="round 1 attempt 1"):
        node.handle(task(Stage.SECAGG_SHARE_KEYS, "site-a", attempt=1, parameters=relayed))


def test_the_next_round_replaces_the_session_of_the_last(
    identities: FederationIdentities,
) -> None:
    federation = Federation(identities).advertise()
    node = federation.nodes["site-a"]
    node.handle(advertise_task("site-a", round_number=2))
    relayed = adverts_to_tensors({p: federation.adverts[p] for p in others("site-a")})
    with pytest.raises(SecureAggregationError, match="no secure-aggregation session for round 1"):
        node.handle(task(Stage.SECAGG_SHARE_KEYS, "site-a", parameters=relayed))


def test_a_node_without_secure_aggregation_refuses_its_stages_and_settings() -> None:
    node = plain_site("site-a")
    with pytest.raises(ConfigError, match="does not handle stage 'secagg-advertise-keys'"):
        node.handle(advertise_task("site-a"))
    with pytest.raises(ConfigError, match="does not understand the task setting"):
        node.handle(task(Stage.TRAIN, "site-a", parameters=START))


def test_secure_aggregation_is_enabled_once(identities: FederationIdentities) -> None:
    node = secure_site("site-a", identities)
    with pytest.raises(ConfigError, match="already handles stage 'secagg-advertise-keys'"):
        enable_secure_aggregation(
            node, signer=identities.signers["site-a"], verifier=identities.verifier
        )


# The egress masking slot --------------------------------------------------------------------------
def _answers(node: Node) -> Mapping[Stage, Result]:
    plain = {**CONFIG, "seed": 11}
    return {
        stage: node.handle(Task(JOB_ID, 1, stage, node.node_id, START, plain))  # type: ignore[arg-type]
        for stage in (Stage.STATISTICS, Stage.TRAIN, Stage.EVALUATE)
    }


def test_the_masking_slot_leaves_the_answers_of_other_stages_untouched(
    identities: FederationIdentities,
) -> None:
    secure = secure_site("site-b", identities)
    assert secure.egress.installed == ("masking",)
    # A live session does not change that: only masked-input answers are masked.
    secure.handle(advertise_task("site-b"))
    for stage, answer in _answers(secure).items():
        expected = _answers(plain_site("site-b"))[stage]
        assert answer.stage is stage
        assert answer.num_examples == expected.num_examples > 0
        assert dict(answer.metrics) == pytest.approx(dict(expected.metrics))
        assert answer.parameters == expected.parameters
        assert all(t.dtype != np.uint32 for t in answer.parameters.values())
