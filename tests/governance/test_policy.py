"""A node's policy: parsed from TOML with errors naming the key, and each rule refusing exactly
what it should, with a code that says nothing of the policy's contents."""

from __future__ import annotations

import datetime
import pickle
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError, PolicyRefusalError
from sovereign_ai.governance import (
    CoordinatorIdentity,
    JobTerms,
    NodePolicy,
    Output,
    RefusalCode,
    TaskRequest,
    check_coordinator,
    check_job,
    check_task,
    normalise_fingerprint,
    release,
)

DOCS = Path(__file__).parents[2] / "docs" / "node-policy.md"
PIN = "ab" * 32
OTHER = "cd" * 32
TERMS = JobTerms(
    model="mlp",
    model_parameters=1000,
    rounds=10,
    secure_aggregation=True,
    privacy_mode="distributed",
    min_nodes=5,
)
UPDATE = TaskRequest(
    round_number=1, output=Output.UPDATE, is_masked=True, cohort_size=5, privacy_mode="distributed"
)


def policy(**settings: Any) -> NodePolicy:
    return NodePolicy.parse(settings, source="policy.toml")


def refusal(check: Any, *args: Any, **kwargs: Any) -> PolicyRefusalError:
    with pytest.raises(PolicyRefusalError) as caught:
        check(*args, **kwargs)
    return caught.value


# Parsing ------------------------------------------------------------------------------------------
def test_an_empty_policy_refuses_nothing() -> None:
    empty = NodePolicy.parse({}, source="policy.toml")
    assert empty == NodePolicy()
    bare = JobTerms(model="anything")
    check_coordinator(empty, None)
    check_job(empty, bare)
    check_task(empty, bare, TaskRequest(round_number=10_000, output=Output.UPDATE))
    metrics = {"loss": 0.3, "accuracy": 0.9}
    assert release(empty, Output.EVALUATION, rows=0, metrics=metrics) == metrics
    assert release(empty, Output.UPDATE, rows=1, metrics={"train_loss": 1.0}) == {"train_loss": 1.0}


def test_the_example_policy_of_the_docs_parses() -> None:
    page = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", page, flags=re.DOTALL)
    examples = [b for b in blocks if "require_secure_aggregation" in b]
    assert examples, "docs/node-policy.md shows no example policy.toml"
    for block in examples:
        parsed = NodePolicy.parse(tomllib.loads(block), source="docs")
        assert parsed.require_secure_aggregation is True
        assert parsed.summary()


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"max_round": 3}, "unknown key 'max_round' (did you mean 'max_rounds'?)"),
        ({"require_secagg": True}, "unknown key 'require_secagg'"),
        ({"outputs": {"trian": True}}, "unknown key 'outputs.trian' (did you mean 'train'?)"),
        ({"min_cohort": "5"}, "'min_cohort' must be an integer; got '5'"),
        ({"max_rounds": 10.0}, "'max_rounds' must be an integer; got 10.0"),
        ({"require_secure_aggregation": "yes"}, "'require_secure_aggregation' must be true or"),
        ({"max_epsilon_per_job": "3"}, "'max_epsilon_per_job' must be a number"),
        ({"max_epsilon_per_job": 0}, "'max_epsilon_per_job' must be greater than 0"),
        ({"min_cohort": 0}, "'min_cohort' must be greater than or equal to 1"),
        ({"allowed_models": "mlp"}, "'allowed_models' must be a list"),
        ({"allowed_models": ["m l p"]}, "'allowed_models[0]' must be a model name"),
        ({"required_privacy_modes": ["dp"]}, "'required_privacy_modes[0]' must be 'none'"),
        ({"coordinator_jurisdictions": ["de"]}, "'coordinator_jurisdictions[0]' must be a two"),
        ({"jurisdiction": "Germany"}, "'jurisdiction' must be a two-letter code"),
        ({"allowed_coordinators": ["abc"]}, "'allowed_coordinators[0]' must be a certificate's"),
        ({"outputs": True}, "'outputs' must be a table"),
        ({"outputs": {"evaluate": 3}}, "'outputs.evaluate' must be true, false or a list"),
        ({"outputs": {"evaluate": ["accuracy", 3]}}, "'outputs.evaluate[1]' must be text"),
        ({"outputs": {"statistics": 1}}, "'outputs.statistics' must be true or false"),
    ],
)
def test_a_bad_key_or_value_is_refused_naming_the_key(document: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        NodePolicy.parse(document, source="'kit/policy.toml'")
    assert named in str(caught.value)
    assert "'kit/policy.toml'" in str(caught.value)


def test_every_problem_of_a_file_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        NodePolicy.parse({"min_cohort": "5", "max_rondus": 3}, source="policy.toml")
    assert "'min_cohort'" in str(caught.value)
    assert "'max_rondus'" in str(caught.value)


def test_a_toml_date_is_refused_not_read_as_text() -> None:
    with pytest.raises(ConfigError, match="not a policy setting"):
        NodePolicy.parse({"jurisdiction": datetime.date(2024, 1, 1)}, source="policy.toml")


def test_the_parsed_policy_cannot_be_changed() -> None:
    parsed = policy(min_cohort=3)
    with pytest.raises(ValueError, match="frozen"):
        parsed.min_cohort = 1


@pytest.mark.parametrize(
    "written",
    [
        PIN,
        PIN.upper(),
        ":".join(PIN[i : i + 2].upper() for i in range(0, 64, 2)),
        "sha256 Fingerprint=" + ":".join(PIN[i : i + 2].upper() for i in range(0, 64, 2)),
    ],
)
def test_fingerprints_are_read_as_openssl_prints_them_or_as_plain_hex(written: str) -> None:
    assert normalise_fingerprint(written) == PIN
    assert policy(allowed_coordinators=[written]).allowed_coordinators == (PIN,)


# The coordinator ----------------------------------------------------------------------------------
def test_a_policy_naming_coordinators_refuses_an_unverified_one() -> None:
    for rules in ({"allowed_coordinators": [PIN]}, {"coordinator_jurisdictions": ["DE"]}):
        error = refusal(check_coordinator, policy(**rules), None)
        assert error.code == RefusalCode.COORDINATOR_UNVERIFIED


def test_only_a_pinned_coordinator_certificate_is_accepted() -> None:
    pinned = policy(allowed_coordinators=[PIN, "ef" * 32])
    check_coordinator(pinned, CoordinatorIdentity("coordinator", PIN))
    error = refusal(check_coordinator, pinned, CoordinatorIdentity("coordinator", OTHER))
    assert error.code == RefusalCode.COORDINATOR_NOT_ALLOWED
    assert OTHER in error.detail


@pytest.mark.parametrize(
    ("certified", "is_accepted"), [("DE", True), ("EU", True), ("US", False), (None, False)]
)
def test_the_coordinators_certified_jurisdiction_must_be_listed(
    certified: str | None, is_accepted: bool
) -> None:
    rules = policy(coordinator_jurisdictions=["DE", "EU"])
    coordinator = CoordinatorIdentity("coordinator", PIN, jurisdiction=certified)
    if is_accepted:
        check_coordinator(rules, coordinator)
        return
    error = refusal(check_coordinator, rules, coordinator)
    assert error.code == RefusalCode.COORDINATOR_JURISDICTION


# The job ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rules", "terms", "code"),
    [
        ({"allowed_models": ["logreg"]}, {}, RefusalCode.MODEL_NOT_ALLOWED),
        ({"max_parameters": 999}, {}, RefusalCode.MODEL_TOO_LARGE),
        ({"max_rounds": 9}, {}, RefusalCode.TOO_MANY_ROUNDS),
        ({"require_secure_aggregation": True}, {"secure_aggregation": False}, "secure_agg"),
        ({"required_privacy_modes": ["dpsgd"]}, {}, RefusalCode.PRIVACY_MODE_NOT_ALLOWED),
        ({"required_privacy_modes": ["central"]}, {"privacy_mode": "none"}, "privacy_mode"),
        ({"max_epsilon_per_job": 10.0}, {"privacy_mode": "none"}, RefusalCode.EPSILON_OVER_LIMIT),
        ({"min_cohort": 6}, {}, RefusalCode.COHORT_TOO_SMALL),
        ({"max_parameters": 10**6}, {"model_parameters": None}, RefusalCode.TERMS_MISSING),
        ({"max_rounds": 50}, {"rounds": None}, RefusalCode.TERMS_MISSING),
        ({"require_secure_aggregation": True}, {"secure_aggregation": None}, "terms_missing"),
        ({"max_epsilon_per_job": 1.0}, {"privacy_mode": None}, RefusalCode.TERMS_MISSING),
        ({"min_cohort": 2}, {"min_nodes": None}, RefusalCode.TERMS_MISSING),
    ],
)
def test_each_job_rule_refuses_a_job_that_breaks_it(
    rules: dict[str, Any], terms: dict[str, Any], code: str
) -> None:
    error = refusal(check_job, policy(**rules), JobTerms(**{**vars(TERMS), **terms}))
    assert code in error.code


def test_a_job_meeting_every_rule_is_accepted() -> None:
    strict = policy(
        allowed_models=["mlp", "logreg"],
        max_parameters=1000,
        max_rounds=10,
        require_secure_aggregation=True,
        required_privacy_modes=["distributed", "dpsgd"],
        max_epsilon_per_job=5.0,
        min_cohort=5,
    )
    check_job(strict, TERMS)


def test_what_goes_back_is_the_code_never_the_policys_contents() -> None:
    strict = policy(allowed_models=["secret-model-a", "secret-model-b"])
    error = refusal(check_job, strict, TERMS)
    assert str(error) == "refused by its policy (policy.model_not_allowed)"
    assert "secret-model-a" in error.detail  # for the node's own log only
    assert "secret" not in str(error) and "secret" not in repr(error.args)
    copy = pickle.loads(pickle.dumps(error))  # the process transport carries it across processes
    assert (copy.code, copy.detail, str(copy)) == (error.code, error.detail, str(error))


# Each task ----------------------------------------------------------------------------------------
def test_a_task_beyond_max_rounds_is_refused() -> None:
    rules = policy(max_rounds=10)
    check_task(rules, TERMS, UPDATE)
    late = TaskRequest(
        round_number=11, output=Output.UPDATE, is_masked=True, privacy_mode="distributed"
    )
    assert refusal(check_task, rules, TERMS, late).code == RefusalCode.TOO_MANY_ROUNDS
    resumed = JobTerms(**{**vars(TERMS), "rounds": 20})  # resumed with more rounds than allowed
    assert refusal(check_task, rules, resumed, UPDATE).code == RefusalCode.TOO_MANY_ROUNDS


@pytest.mark.parametrize("output", [Output.UPDATE, Output.STATISTICS])
def test_an_unmasked_update_or_statistics_is_refused_when_secure_aggregation_is_required(
    output: Output,
) -> None:
    rules = policy(require_secure_aggregation=True)
    plain = TaskRequest(round_number=1, output=output, privacy_mode="distributed")
    assert refusal(check_task, rules, TERMS, plain).code == RefusalCode.SECURE_AGGREGATION_REQUIRED
    check_task(rules, TERMS, TaskRequest(round_number=1, output=output, is_masked=True,
                                          privacy_mode="distributed"))  # fmt: skip
    evaluation = TaskRequest(round_number=1, output=Output.EVALUATION)
    check_task(rules, TERMS, evaluation)  # metrics are never masked: allowed


def test_a_job_that_declared_secure_aggregation_cannot_send_a_plain_update() -> None:
    plain = TaskRequest(round_number=2, output=Output.UPDATE, privacy_mode="distributed")
    assert refusal(check_task, NodePolicy(), TERMS, plain).code == RefusalCode.TERMS_CHANGED


def test_a_job_that_declared_a_privacy_mode_cannot_ask_for_an_update_in_another() -> None:
    switched = TaskRequest(round_number=2, output=Output.UPDATE, is_masked=True)
    assert refusal(check_task, NodePolicy(), TERMS, switched).code == RefusalCode.TERMS_CHANGED


@pytest.mark.parametrize(
    ("outputs", "output"),
    [
        ({"train": False}, Output.UPDATE),
        ({"statistics": False}, Output.STATISTICS),
        ({"evaluate": False}, Output.EVALUATION),
        ({"evaluate": []}, Output.EVALUATION),
    ],
)
def test_an_output_the_policy_does_not_let_leave_is_refused(
    outputs: dict[str, Any], output: Output
) -> None:
    rules = policy(outputs=outputs)
    request = TaskRequest(round_number=1, output=output, is_masked=True, privacy_mode="distributed")
    assert refusal(check_task, rules, TERMS, request).code == RefusalCode.OUTPUT_NOT_ALLOWED
    check_task(policy(), TERMS, request)


def test_key_stages_carry_nothing_of_the_data_and_pass_the_output_rules() -> None:
    closed = policy(outputs={"train": False, "statistics": False, "evaluate": False})
    check_task(closed, TERMS, TaskRequest(round_number=1, output=None))


def test_a_secure_sum_over_fewer_nodes_than_min_cohort_is_refused() -> None:
    rules = policy(min_cohort=5)
    small = TaskRequest(round_number=1, output=None, cohort_size=4)
    assert refusal(check_task, rules, TERMS, small).code == RefusalCode.COHORT_TOO_SMALL


def test_an_update_over_the_epsilon_limit_or_without_a_computed_epsilon_is_refused() -> None:
    rules = policy(max_epsilon_per_job=2.0)
    within = TaskRequest(**{**vars(UPDATE), "epsilon": 1.99})
    check_task(rules, TERMS, within)
    over = TaskRequest(**{**vars(UPDATE), "epsilon": 2.01})
    assert refusal(check_task, rules, TERMS, over).code == RefusalCode.EPSILON_OVER_LIMIT
    unknown = TaskRequest(**{**vars(UPDATE), "epsilon": None})
    assert refusal(check_task, rules, TERMS, unknown).code == RefusalCode.TERMS_MISSING
    nan = TaskRequest(**{**vars(UPDATE), "epsilon": float("nan")})
    assert refusal(check_task, rules, TERMS, nan).code == RefusalCode.EPSILON_OVER_LIMIT


def test_a_model_grown_past_max_parameters_in_a_task_is_refused() -> None:
    rules = policy(max_parameters=1000)
    grown = TaskRequest(**{**vars(UPDATE), "model_parameters": 1001})
    assert refusal(check_task, rules, TERMS, grown).code == RefusalCode.MODEL_TOO_LARGE


# The answer ---------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(minimum=st.integers(0, 10_000), rows=st.integers(0, 10_000))
def test_statistics_and_metrics_leave_only_over_at_least_min_rows(minimum: int, rows: int) -> None:
    rules = policy(min_rows_per_statistic=minimum)
    for output in (Output.STATISTICS, Output.EVALUATION):
        if rows >= minimum:
            release(rules, output, rows=rows, metrics={})
        else:
            error = refusal(release, rules, output, rows=rows, metrics={})
            assert error.code == RefusalCode.TOO_FEW_ROWS
    release(rules, Output.UPDATE, rows=rows, metrics={})  # updates are not statistics


def test_only_the_allowed_evaluation_metrics_leave() -> None:
    metrics = {"loss": 0.4, "accuracy": 0.8}
    assert release(policy(outputs={"evaluate": ["accuracy"]}), Output.EVALUATION, rows=9,
                   metrics=metrics) == {"accuracy": 0.8}  # fmt: skip
    only_unknown = policy(outputs={"evaluate": ["auc"]})
    error = refusal(release, only_unknown, Output.EVALUATION, rows=9, metrics=metrics)
    assert error.code == RefusalCode.OUTPUT_NOT_ALLOWED


def test_training_metrics_can_be_kept_home_while_the_update_leaves() -> None:
    rules = policy(outputs={"train_metrics": False})
    assert release(rules, Output.UPDATE, rows=9, metrics={"train_loss": 0.1}) == {}


# Thresholds, by property ------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 1000), value=st.integers(1, 1000))
def test_round_cohort_and_size_limits_hold_exactly_at_their_bound(limit: int, value: int) -> None:
    cases = [
        (policy(max_rounds=limit), JobTerms(model="m", rounds=value), value <= limit),
        (policy(min_cohort=limit), JobTerms(model="m", min_nodes=value), value >= limit),
        (policy(max_parameters=limit), JobTerms(model="m", model_parameters=value), value <= limit),
    ]
    for rules, terms, is_accepted in cases:
        if is_accepted:
            check_job(rules, terms)
        else:
            refusal(check_job, rules, terms)


@settings(max_examples=60, deadline=None)
@given(
    limit=st.floats(0.01, 100, allow_nan=False),
    epsilon=st.floats(0, 200, allow_nan=False) | st.just(float("inf")),
)
def test_the_epsilon_limit_holds_exactly_at_its_bound(limit: float, epsilon: float) -> None:
    rules = policy(max_epsilon_per_job=limit)
    request = TaskRequest(**{**vars(UPDATE), "epsilon": epsilon})
    if epsilon <= limit:
        check_task(rules, TERMS, request)
    else:
        assert refusal(check_task, rules, TERMS, request).code == RefusalCode.EPSILON_OVER_LIMIT
