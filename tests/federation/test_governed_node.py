"""A node held to its owner's policy: jobs judged at their first task, every task before its
handler and every answer before privacy; refusals that stick, and coordinators that cannot change
a job's terms half-way."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from sovereign_ai.core import ConfigValue, Parameters, Result, Stage, Task
from sovereign_ai.errors import ConfigError, PolicyRefusalError
from sovereign_ai.federation import (
    InMemoryTransport,
    LocalData,
    Node,
    build_coordinator,
    initial_parameters,
    parse_job_spec,
    stage_config,
)
from sovereign_ai.federation.governed_node import PolicyGuard, enable_policy
from sovereign_ai.federation.private_node import DP_SETTINGS
from sovereign_ai.federation.secure_node import enable_secure_aggregation
from sovereign_ai.governance import NodePolicy, RefusalCode
from sovereign_ai.pki import CertificateAuthority, Role, certificate_fingerprint
from sovereign_ai.pki.signing import ephemeral_federation
from sovereign_ai.privacy import PrivacyEvent, Sampler, epsilon_spent

WIDTH, CLASSES, ROWS = 4, 2, 40
NAMES = ("site-a", "site-b", "site-c")


def job(**sections: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "job": {"name": "governed", "rounds": 3, "seed": 5},
        "model": {"name": "logreg"},
        "strategy": {"name": "fedavg", "min_train_nodes": 2},
        "coordinator": {"standardize_features": False},
    }
    for name, section in sections.items():
        document[name] = {**document.get(name, {}), **section}
    return document


PLAIN = parse_job_spec(job())
CONFIG = stage_config(PLAIN, num_features=WIDTH, num_classes=CLASSES)
START = initial_parameters(PLAIN, num_features=WIDTH, num_classes=CLASSES)


def site(name: str = "site-a") -> Node:
    rng = np.random.default_rng(NAMES.index(name))
    features = rng.standard_normal((ROWS, WIDTH)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    return Node(name, data=LocalData(features, labels, features[:6], labels[:6]))


class Records(list[tuple[str, dict[str, object]]]):
    """What the node's audit hook heard."""

    def __call__(self, event: str, fields: dict[str, object]) -> None:
        self.append((event, fields))

    def events(self) -> list[str]:
        return [event for event, _ in self]


def governed(name: str = "site-a", **rules: Any) -> tuple[Node, PolicyGuard, Records]:
    node = site(name)
    records = Records()
    guard = enable_policy(node, NodePolicy.parse(rules, source="test"), record=records)
    return node, guard, records


def task(
    stage: Stage = Stage.TRAIN,
    *,
    round_number: int = 1,
    node: str = "site-a",
    parameters: Parameters | None = None,
    job_id: str = "job-1",
    **settings: ConfigValue,
) -> Task:
    config = {**CONFIG, "seed": 1, **settings}
    tensors = START if parameters is None else parameters
    return Task(job_id, round_number, stage, node, tensors, config)


def refused(node: Node, work: Task) -> PolicyRefusalError:
    with pytest.raises(PolicyRefusalError) as caught:
        node.handle(work)
    return caught.value


# Joining ------------------------------------------------------------------------------------------
def test_a_job_meeting_the_policy_is_joined_once_and_its_tasks_answered() -> None:
    node, _, records = governed(allowed_models=["logreg"], max_rounds=3, max_parameters=100)
    for round_number in (1, 2):
        answer = node.handle(task(round_number=round_number))
        assert answer.num_examples == ROWS
    node.handle(task(Stage.EVALUATE, round_number=2))
    assert records.events() == ["job_accepted"]
    _, fields = records[0]
    assert fields["job_id"] == "job-1" and fields["model"] == "logreg" and fields["rounds"] == 3


def test_a_refused_job_refuses_every_later_task_with_its_code_without_checking_again() -> None:
    node, guard, records = governed(require_secure_aggregation=True)
    first = refused(node, task(Stage.EVALUATE))  # not even metrics of a job it refused
    assert first.code == RefusalCode.SECURE_AGGREGATION_REQUIRED
    assert str(first) == "refused by its policy (policy.secure_aggregation_required)"
    guard.policy = NodePolicy()  # were it checked again, the job would now pass
    for stage in (Stage.TRAIN, Stage.STATISTICS, Stage.EVALUATE):
        assert refused(node, task(stage, round_number=2)).code == first.code
    assert records.events() == ["job_refused"] + ["task_refused"] * 4
    assert {fields["code"] for _, fields in records} == {"policy.secure_aggregation_required"}
    assert node.handle(task(job_id="job-2")).num_examples == ROWS  # another job is judged anew


def test_a_refused_task_costs_no_work() -> None:
    node, _, _ = governed(outputs={"train": False})
    calls: list[Task] = []
    plain = node.trainer
    node.trainer = lambda work, model, config: calls.append(work) or plain(work, model, config)
    assert refused(node, task()).code == RefusalCode.OUTPUT_NOT_ALLOWED
    assert calls == []
    node.handle(task(Stage.EVALUATE))  # an evaluation-only member still evaluates


def test_an_output_refusal_is_one_task_not_the_whole_job() -> None:
    node, _, records = governed(outputs={"statistics": False})
    assert refused(node, task(Stage.STATISTICS)).code == RefusalCode.OUTPUT_NOT_ALLOWED
    assert node.handle(task()).num_examples == ROWS
    assert records.events() == ["job_accepted", "task_refused"]


def test_a_policy_whose_audit_hook_fails_lets_nothing_leave() -> None:
    node = site()

    def broken(event: str, fields: dict[str, object]) -> None:
        raise OSError("audit log disk full")

    enable_policy(node, NodePolicy(), record=broken)
    with pytest.raises(OSError, match="disk full"):
        node.handle(task())


def test_the_policy_slot_can_be_filled_once() -> None:
    node, _, _ = governed()
    with pytest.raises(ConfigError, match="'policy' is already filled"):
        enable_policy(node, NodePolicy())


# The egress slot, before privacy ------------------------------------------------------------------
def test_the_policy_slot_runs_before_privacy_and_a_refusal_there_reaches_no_later_slot() -> None:
    node, _, _ = governed(min_rows_per_statistic=10, outputs={"evaluate": ["accuracy"]})
    seen: list[Result] = []

    def privacy(work: Task, result: Result) -> Result:
        seen.append(result)
        return result

    node.egress.install("privacy", privacy)
    assert node.egress.installed == ("policy", "privacy")
    answer = node.handle(task(Stage.STATISTICS))  # 40 rows: enough
    assert [r.stage for r in seen] == [Stage.STATISTICS] and answer.num_examples == ROWS
    refusal = refused(node, task(Stage.EVALUATE))  # 6 test rows: too few
    assert refusal.code == RefusalCode.TOO_FEW_ROWS
    assert len(seen) == 1, "the privacy slot saw an answer the policy refused"


def test_only_the_allowed_metrics_reach_the_privacy_slot_and_leave() -> None:
    node, _, _ = governed(outputs={"evaluate": ["accuracy"], "train_metrics": False})
    seen: list[dict[str, float]] = []
    node.egress.install("privacy", lambda work, result: seen.append(dict(result.metrics)) or result)
    assert set(node.handle(task(Stage.EVALUATE)).metrics) == {"accuracy"}
    assert node.handle(task()).metrics == {}
    assert seen == [{"accuracy": seen[0]["accuracy"]}, {}]


# A hostile coordinator ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"job_secure_aggregation": False}, RefusalCode.TERMS_CHANGED),
        ({"job_privacy_mode": "none"}, RefusalCode.TERMS_CHANGED),
        ({"job_min_nodes": 1}, RefusalCode.TERMS_CHANGED),
        ({"model_options": json.dumps({"hidden": [4096]}), "model": "mlp"}, "terms_changed"),
        ({"num_classes": 50}, RefusalCode.TERMS_CHANGED),
    ],
)
def test_a_job_cannot_change_its_terms_half_way(change: dict[str, ConfigValue], code: str) -> None:
    node, _, records = governed()
    secure = {"job_secure_aggregation": True, "job_privacy_mode": "central"}
    node.handle(task(Stage.EVALUATE, **secure))
    changed = task(Stage.EVALUATE, round_number=2, **{**secure, **change})
    assert code in refused(node, changed).code
    assert code in refused(node, task(Stage.EVALUATE, round_number=3, **secure)).code  # sticks
    assert records.events() == ["job_accepted", "job_refused", "task_refused", "task_refused"]


def test_a_plain_update_in_a_job_that_declared_secure_aggregation_is_refused() -> None:
    node, _, _ = governed(require_secure_aggregation=True)
    node.handle(task(Stage.EVALUATE, job_secure_aggregation=True))  # joined on those terms
    plain = task(round_number=2, job_secure_aggregation=True)  # ... then asked for an update
    assert refused(node, plain).code == RefusalCode.SECURE_AGGREGATION_REQUIRED
    later = task(Stage.EVALUATE, round_number=3, job_secure_aggregation=True)
    assert refused(node, later).code == RefusalCode.SECURE_AGGREGATION_REQUIRED


def test_rounds_beyond_max_rounds_are_refused_whatever_the_job_declared() -> None:
    node, _, _ = governed(max_rounds=3)
    node.handle(task(round_number=3))  # declares 3 rounds
    assert refused(node, task(round_number=4)).code == RefusalCode.TOO_MANY_ROUNDS
    resumed = task(Stage.EVALUATE, round_number=3, job_id="job-2")
    node.handle(resumed)
    grown = task(Stage.EVALUATE, round_number=3, job_id="job-2", job_rounds=10)
    assert refused(node, grown).code == RefusalCode.TOO_MANY_ROUNDS
    too_long = task(job_id="job-3", job_rounds=4)
    assert refused(node, too_long).code == RefusalCode.TOO_MANY_ROUNDS


def test_a_model_larger_than_max_parameters_is_refused_as_declared_and_as_sent() -> None:
    size = START.num_scalars  # logreg on 4 features, 2 classes: 10 weights
    node, _, _ = governed(max_parameters=size)
    node.handle(task())
    bigger = Parameters({**START, "extra": np.zeros(5, dtype=np.float32)})
    assert refused(node, task(round_number=2, parameters=bigger)).code == "policy.model_too_large"
    too_big, _, _ = governed(max_parameters=size - 1)
    assert refused(too_big, task(Stage.EVALUATE)).code == RefusalCode.MODEL_TOO_LARGE


def test_an_older_coordinator_that_declares_no_terms_is_refused_when_a_rule_needs_them() -> None:
    bare = {key: value for key, value in CONFIG.items() if not key.startswith("job_")}
    node, _, _ = governed(require_secure_aggregation=True)
    old = Task("job-1", 1, Stage.EVALUATE, "site-a", START, bare)
    assert refused(node, old).code == RefusalCode.TERMS_MISSING
    permissive, _, _ = governed()
    assert permissive.handle(Task("job-1", 1, Stage.EVALUATE, "site-a", START, bare)).metrics


# Secure aggregation's sums ------------------------------------------------------------------------
def secure_node(**rules: Any) -> Node:
    node, _, _ = governed(**rules)
    identities = ephemeral_federation("governed", NAMES)
    enable_secure_aggregation(
        node, signer=identities.signers["site-a"], verifier=identities.verifier
    )
    return node


def test_a_secure_sum_over_fewer_nodes_than_min_cohort_is_refused_before_masking() -> None:
    node = secure_node(min_cohort=2, require_secure_aggregation=True)
    masked = task(
        Stage.SECAGG_MASKED_INPUT,
        job_secure_aggregation=True,
        secagg_input="train",
        secagg_cohort_size=1,
        secagg_attempt=1,
    )
    # Refused by the policy before the stage's handler could say it has no session.
    assert refused(node, masked).code == RefusalCode.COHORT_TOO_SMALL


def test_an_unmasking_that_would_reveal_a_sum_of_too_few_nodes_is_refused() -> None:
    node = secure_node(min_cohort=2)
    unmask = task(
        Stage.SECAGG_UNMASK,
        job_secure_aggregation=True,
        secagg_survivors=json.dumps(["site-a"]),
        secagg_dropped=json.dumps(["site-b", "site-c"]),
        secagg_attempt=1,
    )
    assert refused(node, unmask).code == RefusalCode.COHORT_TOO_SMALL


# Differential privacy: the node's own ε -----------------------------------------------------------
def private_task(rounds: int, **settings: ConfigValue) -> Task:
    return task(
        job_privacy_mode=str(settings.get("dp_mode", "central")), dp_rounds=rounds, **settings
    )


def test_the_jobs_epsilon_is_computed_by_the_node_from_the_tasks_noise_settings() -> None:
    expected = epsilon_spent([PrivacyEvent(1.2, 0.5, 40, Sampler.POISSON)], delta=1e-5)
    noise = {"dp_mode": "central", "dp_noise_multiplier": 1.2, "dp_sampling_rate": 0.5,
             "dp_clip": 1.0, "dp_min_contributors": 2}  # fmt: skip
    strict, _, _ = governed(max_epsilon_per_job=expected * 0.99)
    strict.register_settings(DP_SETTINGS)
    refusal = refused(strict, private_task(40, **noise))
    assert refusal.code == RefusalCode.EPSILON_OVER_LIMIT
    assert f"ε = {expected:.3f}" in refusal.detail
    lenient, _, _ = governed(max_epsilon_per_job=expected * 1.01)
    lenient.register_settings(DP_SETTINGS)
    lenient.handle(private_task(40, **noise))
    # Less noise half-way: the whole job is counted at the lower noise, and refused.
    weaker = {**noise, "dp_noise_multiplier": 0.6}
    assert refused(lenient, private_task(40, **weaker)).code == RefusalCode.EPSILON_OVER_LIMIT


def test_a_dpsgd_target_is_measured_on_this_nodes_own_rows() -> None:
    target = {"dp_mode": "dpsgd", "dp_target_epsilon": 2.0, "dp_delta": 1e-5,
              "dp_accounting": "rdp", "dp_clip": 1.0}  # fmt: skip
    node, _, _ = governed(max_epsilon_per_job=2.0 * 1.01)
    node.register_settings(DP_SETTINGS)
    node.handle(private_task(3, **target))  # calibrated to 2.0 for its rows: within the limit
    tighter, _, _ = governed(max_epsilon_per_job=1.5)
    tighter.register_settings(DP_SETTINGS)
    assert refused(tighter, private_task(3, **target)).code == RefusalCode.EPSILON_OVER_LIMIT


def test_a_job_without_privacy_is_refused_by_an_epsilon_limit() -> None:
    node, _, _ = governed(max_epsilon_per_job=5.0)
    assert refused(node, task()).code == RefusalCode.EPSILON_OVER_LIMIT


# The coordinator's certificate --------------------------------------------------------------------
@pytest.fixture(scope="module")
def coordinator_certificate() -> bytes:
    ca = CertificateAuthority.create("governed", validity_days=30)
    issued = ca.issue(
        Role.COORDINATOR, "coordinator", validity_days=30, hosts=["localhost"], jurisdiction="DE"
    )
    from cryptography.hazmat.primitives import serialization

    return issued.certificate.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("rules", "code"),
    [
        ({"coordinator_jurisdictions": ["DE"]}, None),
        ({"coordinator_jurisdictions": ["FR", "CH"]}, RefusalCode.COORDINATOR_JURISDICTION),
        ({"allowed_coordinators": ["00" * 32]}, RefusalCode.COORDINATOR_NOT_ALLOWED),
        ({"allowed_coordinators": "pinned"}, None),
    ],
)
def test_the_coordinator_is_judged_on_its_verified_certificate(
    coordinator_certificate: bytes, rules: dict[str, Any], code: RefusalCode | None
) -> None:
    if rules.get("allowed_coordinators") == "pinned":
        rules = {"allowed_coordinators": [certificate_fingerprint(coordinator_certificate)]}
    node, guard, _ = governed(**rules)
    assert refused(node, task()).code == RefusalCode.COORDINATOR_UNVERIFIED  # no TLS: no identity
    guard.coordinator_verified("coordinator", coordinator_certificate)
    if code is None:
        assert node.handle(task(job_id="job-2")).num_examples == ROWS
    else:
        assert refused(node, task(job_id="job-2")).code == code


# A whole job, in memory ---------------------------------------------------------------------------
def test_a_refusing_node_never_stops_the_federation_and_the_coordinator_sees_only_its_code() -> (
    None
):
    nodes = [site(name) for name in NAMES]
    enable_policy(nodes[0], NodePolicy(require_secure_aggregation=True, allowed_models=("secret",)))
    with InMemoryTransport(nodes) as transport:
        coordinator = build_coordinator(
            PLAIN, transport=transport, num_features=WIDTH, num_classes=CLASSES
        )
        history = coordinator.run()
    assert len(history.rounds) == 3
    for report in history.rounds:
        assert sorted(report.answered) == ["site-b", "site-c"]
        assert report.failures == {"site-a": "refused by its policy (policy.model_not_allowed)"}
