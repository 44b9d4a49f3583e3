"""Secure rounds end to end over the in-memory transport: real nodes, real keys, real masks.

Five small synthetic sites, each enabled with ``enable_secure_aggregation`` and a throw-away
federation identity. The secure job's model is the plain job's within the quantisation error;
dropouts at every stage are recovered from while ``t`` holders remain and fail closed below it;
a hostile answer is that node's failure; the coordinator only ever sees masked integers.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, StageOutcome, Strategy, Task
from sovereign_ai.errors import (
    BelowThresholdError,
    ConfigError,
    InsufficientNodesError,
    NodeUnreachableError,
    SecureAggregationError,
)
from sovereign_ai.federation import (
    CheckpointStore,
    Coordinator,
    FederationHistory,
    InMemoryTransport,
    LocalData,
    Node,
    initial_parameters,
    parse_job_spec,
    stage_config,
)
from sovereign_ai.federation.job import SecureAggregationSection
from sovereign_ai.federation.secure_node import enable_secure_aggregation
from sovereign_ai.federation.secure_steps import SECURE_SUM_ID, summarise
from sovereign_ai.federation.secure_wire import advert_from_tensors
from sovereign_ai.pki.signing import FederationIdentities, ephemeral_federation
from sovereign_ai.secagg.quantisation import quantisation_step
from sovereign_ai.strategies import create_strategy

WIDTH, CLASSES = 4, 2
NAMES = tuple(f"site-{i}" for i in range(5))
JOB_ID = "secure-steps"
SPEC = parse_job_spec(
    {
        "job": {"name": JOB_ID, "rounds": 2, "seed": 3},
        "model": {"name": "logreg"},
        "strategy": {"name": "fedavg"},
        "train": {"learning_rate": 0.1},
    }
)
CONFIG = stage_config(SPEC, num_features=WIDTH, num_classes=CLASSES)
START = initial_parameters(SPEC, num_features=WIDTH, num_classes=CLASSES)

FINE = SecureAggregationSection(enabled=True, clipping_range=2.0, quantisation_bits=32)
"""A 64-bit modulus and a quantisation step below 1e-9: the secure model is the plain one."""
COARSE = SecureAggregationSection(enabled=True, quantisation_bits=16, modulus_bits=32)
"""The defaults on a 32-bit modulus: masked inputs travel as uint32."""

SECURE_STAGES = (
    Stage.SECAGG_ADVERTISE_KEYS,
    Stage.SECAGG_SHARE_KEYS,
    Stage.SECAGG_MASKED_INPUT,
    Stage.SECAGG_UNMASK,
)
FLOAT32_EPS = 4 * float(np.finfo(np.float32).eps)  # the aggregate is cast to float32


def test_five_sites_make_a_complete_graph_tolerating_two_dropouts() -> None:
    """What the dropout tests below rely on: n = 5, k = 4, t = 3."""
    summary = summarise(FINE, len(NAMES))
    assert (summary.neighbours, summary.threshold, summary.tolerated_dropouts) == (4, 3, 2)
    assert (summary.modulus_bits, summarise(COARSE, len(NAMES)).modulus_bits) == (64, 32)


# Sites, wrappers and the job ---------------------------------------------------------------------
def local_data(index: int) -> LocalData:
    rng = np.random.default_rng(index)
    rows = 18 + 3 * index
    features = (rng.standard_normal((rows, WIDTH)) * 3.0 + 5.0).astype(np.float32)
    labels = (features[:, 0] + rng.standard_normal(rows) > 5.0).astype(np.int64)
    return LocalData(features, labels, features[:5], labels[:5])


@pytest.fixture(scope="module")
def identities() -> FederationIdentities:
    return ephemeral_federation(JOB_ID, NAMES)


def sites(identities: FederationIdentities | None, names: Iterable[str] = NAMES) -> list[Node]:
    """Fresh nodes (no secure sessions yet); secure when given identities."""
    nodes = [Node(name, data=local_data(NAMES.index(name))) for name in names]
    if identities is not None:
        for node in nodes:
            enable_secure_aggregation(
                node, signer=identities.signers[node.node_id], verifier=identities.verifier
            )
    return nodes


When = Callable[[Task], bool]


def always(task: Task) -> bool:
    return True


def in_round_1(task: Task) -> bool:
    return task.round_number == 1


def in_round_2(task: Task) -> bool:
    return task.round_number == 2


def first_attempt(task: Task) -> bool:
    return task.config.get("secagg_attempt") == 1


@dataclass
class Dropout:
    """A node that drops out (its task fails in the transport) at ``stage`` when ``when``."""

    node: Node
    stage: Stage
    when: When = always

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def handle(self, task: Task) -> Result:
        if task.stage is self.stage and self.when(task):
            raise NodeUnreachableError(f"{self.node_id} dropped out at {task.stage.value}")
        return self.node.handle(task)


@dataclass
class Hostile:
    """A node that answers honestly, then rewrites its answer of ``stage``."""

    node: Node
    stage: Stage
    rewrite: Callable[[Result], Result]

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def handle(self, task: Task) -> Result:
        result = self.node.handle(task)
        return self.rewrite(result) if task.stage is self.stage else result


@dataclass
class Recording:
    """A transport that keeps every task and every answer that reached the coordinator."""

    inner: InMemoryTransport
    tasks: list[Task] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)

    def available_nodes(self) -> list[str]:
        return self.inner.available_nodes()

    def wait_for_nodes(self, count: int, *, timeout_s: float) -> list[str]:
        return self.inner.wait_for_nodes(count, timeout_s=timeout_s)

    def run_stage(self, tasks: Sequence[Task], *, timeout_s: float) -> StageOutcome:
        self.tasks.extend(tasks)
        outcome = self.inner.run_stage(tasks, timeout_s=timeout_s)
        self.results.extend(outcome.results)
        return outcome

    def close(self) -> None:
        self.inner.close()

    def sent(self, stage: Stage, node_id: str | None = None) -> list[Task]:
        return [t for t in self.tasks if t.stage is stage and node_id in (None, t.node_id)]


@dataclass
class Attempts:
    """An observer that keeps the failed attempts."""

    failed: list[tuple[int, int, str]] = field(default_factory=list)

    def on_attempt_failed(self, round_number: int, attempt: int, reason: str) -> None:
        self.failed.append((round_number, attempt, reason))


def wrap(nodes: list[Node], wrappers: Mapping[str, Callable[[Node], object]]) -> list[object]:
    return [wrappers[n.node_id](n) if n.node_id in wrappers else n for n in nodes]


def coordinator(
    handlers: Sequence[object],
    *,
    secure: SecureAggregationSection | None,
    strategy: str | Strategy = "fedavg",
    transport: object | None = None,
    **options: object,
) -> Coordinator:
    settings: dict[str, object] = {
        "job_id": JOB_ID,
        "strategy": create_strategy(strategy) if isinstance(strategy, str) else strategy,
        "transport": transport or InMemoryTransport(handlers),  # type: ignore[arg-type]
        "initial_parameters": START,
        "rounds": 2,
        "seed": 3,
        "stage_config": CONFIG,
        "round_timeout_s": 60.0,  # nodes answer at once: never reached unless hung
        "secure_aggregation": secure,
    }
    settings.update(options)
    return Coordinator(**settings)  # type: ignore[arg-type]


def run(handlers: Sequence[object], **options: object) -> FederationHistory:
    job = coordinator(handlers, **options)
    try:
        return job.run()
    finally:
        job.transport.close()


@functools.cache
def plain_model(
    names: tuple[str, ...] = NAMES,
    *,
    rounds: int = 2,
    strategy: str = "fedavg",
    standardize: bool = False,
) -> Parameters:
    """The plain job's model on the nodes ``names`` (deterministic, so computed once)."""
    history = run(
        sites(None, names),
        secure=None,
        strategy=strategy,
        rounds=rounds,
        standardize_features=standardize,
    )
    assert history.parameters is not None
    return history.parameters


def assert_close_to_plain(
    model: Parameters | None,
    plain: Parameters,
    section: SecureAggregationSection,
    *,
    rounds: int,
) -> None:
    """Within the quantisation error: below one step per round, from either end of a round's
    training (the start it was given, the update it sent), plus float32 rounding."""
    assert model is not None
    step = quantisation_step(
        clipping_range=section.clipping_range, quantisation_bits=section.quantisation_bits
    )
    assert set(model) == set(plain)
    for name in plain:
        float32_rounding = FLOAT32_EPS * float(np.max(np.abs(plain[name])))
        np.testing.assert_allclose(
            model[name], plain[name], rtol=0, atol=2 * rounds * step + float32_rounding,
            err_msg=name,
        )  # fmt: skip


def without(*names: str) -> tuple[str, ...]:
    return tuple(n for n in NAMES if n not in names)


# The model: the plain one within the quantisation error -----------------------------------------
@pytest.mark.parametrize("section", [FINE, COARSE], ids=["q32-b64", "q16-b32"])
def test_secure_fedavg_gives_the_plain_model_within_the_quantisation_error(
    identities: FederationIdentities, section: SecureAggregationSection
) -> None:
    history = run(sites(identities), secure=section)
    assert_close_to_plain(history.parameters, plain_model(), section, rounds=2)
    for report in history.rounds:
        assert report.answered == list(NAMES)
        assert report.failures == {}
        assert report.metrics["train_nodes"] == len(NAMES)
        assert "federated_loss" in report.metrics  # evaluation runs as in a plain round


def test_the_fine_secure_model_differs_from_the_plain_one_only_by_float32_rounding(
    identities: FederationIdentities,
) -> None:
    history = run(sites(identities), secure=FINE)
    assert history.parameters is not None
    plain = plain_model()
    for name in plain:
        np.testing.assert_allclose(history.parameters[name], plain[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("strategy", ["fedavgm", "fedadam"])
def test_server_optimisers_run_on_the_secure_sum(
    identities: FederationIdentities, strategy: str
) -> None:
    history = run(sites(identities), secure=FINE, strategy=strategy)
    assert history.parameters is not None
    assert all(np.isfinite(t).all() for t in history.parameters.values())
    assert [r.answered for r in history.rounds] == [list(NAMES)] * 2
    plain = plain_model(strategy=strategy)
    for name in plain:  # the server optimiser sees the mean update up to ~1e-9
        np.testing.assert_allclose(history.parameters[name], plain[name], rtol=1e-5, atol=1e-6)
    assert any(not np.array_equal(history.parameters[n], START[n]) for n in START)


def test_secure_feature_statistics_give_the_plain_mean_and_deviation(
    identities: FederationIdentities,
) -> None:
    history = run(sites(identities), secure=FINE, standardize_features=True)
    plain = plain_model(standardize=True)
    assert history.parameters is not None
    for name in ("input_mean", "input_std"):
        np.testing.assert_allclose(history.parameters[name], plain[name], rtol=1e-6, atol=0)
    assert not np.allclose(plain["input_std"], 1.0)  # the data are not standardised already
    assert_close_to_plain(history.parameters, plain, FINE, rounds=2)


def starting_model(handlers: Sequence[object], folder: Path, **options: object) -> Parameters:
    """Round 0's durable model when round 1 then fails closed: the scaling, nothing trained."""
    with CheckpointStore(folder) as store:
        job = coordinator(
            handlers, store=store, standardize_features=True, max_round_attempts=1, **options
        )
        try:
            with pytest.raises((BelowThresholdError, InsufficientNodesError)):
                job.run()
        finally:
            job.transport.close()
        latest = store.latest()
    assert latest is not None and latest.round_number == 0
    return latest.parameters


def test_the_secure_starting_model_is_scaled_as_the_plain_one(
    identities: FederationIdentities, tmp_path: Path
) -> None:
    """Exact fixed-point sums: only the float32 cast of the mean and deviation remains."""
    secure_sites = wrap(
        sites(identities),
        {n: (lambda n: Dropout(n, Stage.SECAGG_ADVERTISE_KEYS, in_round_1)) for n in NAMES[:3]},
    )
    plain_sites = wrap(
        sites(None), {n: (lambda n: Dropout(n, Stage.TRAIN, in_round_1)) for n in NAMES[:4]}
    )
    secure = starting_model(secure_sites, tmp_path / "secure", secure=COARSE)
    plain = starting_model(plain_sites, tmp_path / "plain", secure=None)
    for name in ("input_mean", "input_std"):
        np.testing.assert_allclose(secure[name], plain[name], rtol=1e-6, atol=0, err_msg=name)
    assert not np.allclose(plain["input_mean"], START["input_mean"])
    for name in ("body.linear.weight", "body.linear.bias"):
        np.testing.assert_array_equal(secure[name], START[name])


def test_secure_statistics_without_a_dropped_site_are_the_survivors_statistics(
    identities: FederationIdentities,
) -> None:
    dropped = wrap(
        sites(identities),
        {"site-1": lambda n: Dropout(n, Stage.SECAGG_MASKED_INPUT, lambda t: t.round_number == 0)},
    )
    history = run(dropped, secure=FINE, standardize_features=True, rounds=1)
    assert history.parameters is not None
    survivors = plain_model(without("site-1"), rounds=1, standardize=True)
    for name in ("input_mean", "input_std"):
        np.testing.assert_allclose(history.parameters[name], survivors[name], rtol=1e-6, atol=0)


# Dropouts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", SECURE_STAGES, ids=[s.value for s in SECURE_STAGES])
def test_a_site_dropping_out_at_any_stage_leaves_the_round_to_the_others(
    identities: FederationIdentities, stage: Stage
) -> None:
    nodes = wrap(sites(identities), {"site-2": lambda n: Dropout(n, stage)})
    history = run(nodes, secure=FINE, rounds=1)
    report = history.rounds[0]
    assert report.attempts == 1
    assert "dropped out" in report.failures["site-2"]
    if stage is Stage.SECAGG_UNMASK:
        # Its masked input arrived: its update is in the sum; only its reveal is missing.
        assert report.answered == list(NAMES)
        expected = plain_model(rounds=1)
    else:
        assert report.answered == list(without("site-2"))
        expected = plain_model(without("site-2"), rounds=1)
    assert report.metrics["train_nodes"] == len(report.answered)
    assert_close_to_plain(history.parameters, expected, FINE, rounds=1)


def test_two_dropouts_at_different_stages_are_tolerated(
    identities: FederationIdentities,
) -> None:
    nodes = wrap(
        sites(identities),
        {
            "site-0": lambda n: Dropout(n, Stage.SECAGG_SHARE_KEYS),
            "site-3": lambda n: Dropout(n, Stage.SECAGG_MASKED_INPUT),
        },
    )
    history = run(nodes, secure=FINE, rounds=1)
    assert history.rounds[0].answered == list(without("site-0", "site-3"))
    assert_close_to_plain(
        history.parameters, plain_model(without("site-0", "site-3"), rounds=1), FINE, rounds=1
    )


@pytest.mark.parametrize("stage", SECURE_STAGES, ids=[s.value for s in SECURE_STAGES])
def test_below_threshold_the_round_is_retried_then_the_job_fails_closed(
    identities: FederationIdentities, stage: Stage, tmp_path: Path
) -> None:
    nodes = wrap(
        sites(identities),
        {name: (lambda n: Dropout(n, stage, in_round_2)) for name in NAMES[:3]},
    )
    observer = Attempts()
    with CheckpointStore(tmp_path) as store:
        job = coordinator(nodes, secure=FINE, store=store, observer=observer, max_round_attempts=2)
        try:
            with pytest.raises(BelowThresholdError, match="threshold is 3"):
                job.run()
        finally:
            job.transport.close()
        latest = store.latest()
    assert latest is not None and latest.round_number == 1  # round 2 adopted nothing
    assert [(r, a) for r, a, _ in observer.failed] == [(2, 1), (2, 2)]
    assert all("threshold is 3" in reason for _, _, reason in observer.failed)


def test_fewer_survivors_than_the_strategy_minimum_fail_the_job_closed(
    identities: FederationIdentities,
) -> None:
    nodes = wrap(
        sites(identities),
        {name: (lambda n: Dropout(n, Stage.SECAGG_MASKED_INPUT)) for name in NAMES[:2]},
    )
    observer = Attempts()
    with pytest.raises(InsufficientNodesError, match="needs at least 4") as caught:
        run(
            nodes,
            secure=FINE,
            strategy=create_strategy("fedavg", min_train_nodes=4),
            observer=observer,
            max_round_attempts=2,
        )
    assert caught.value.stage == Stage.SECAGG_MASKED_INPUT.value
    assert caught.value.missing == list(NAMES[:2])
    assert len(observer.failed) == 2


# Retries -----------------------------------------------------------------------------------------
def test_a_retried_round_runs_a_new_session_with_fresh_keys(
    identities: FederationIdentities,
) -> None:
    nodes = sites(identities)
    handlers = wrap(
        nodes,
        {
            name: (lambda n: Dropout(n, Stage.SECAGG_MASKED_INPUT, first_attempt))
            for name in NAMES[:3]
        },
    )
    transport = Recording(InMemoryTransport(handlers))
    history = run(handlers, secure=FINE, rounds=1, transport=transport)
    report = history.rounds[0]
    assert (report.attempts, report.answered) == (2, list(NAMES))
    assert_close_to_plain(history.parameters, plain_model(rounds=1), FINE, rounds=1)

    for stage in SECURE_STAGES:
        attempts = sorted({t.config["secagg_attempt"] for t in transport.sent(stage)})
        assert attempts == ([1, 2] if stage is not Stage.SECAGG_UNMASK else [2])
    adverts: dict[tuple[str, int], bytes] = {}
    for result, task in zip(
        [r for r in transport.results if r.stage is Stage.SECAGG_ADVERTISE_KEYS],
        [t for t in transport.sent(Stage.SECAGG_ADVERTISE_KEYS)],
        strict=True,
    ):
        advert = advert_from_tensors(result.node_id, result.parameters)
        adverts[(result.node_id, int(task.config["secagg_attempt"]))] = advert.mask_public_key
    for name in NAMES:
        assert adverts[(name, 1)] != adverts[(name, 2)]  # fresh keys for the new session

    # The node holds only the new session: the old attempt's tasks are refused.
    stale = transport.sent(Stage.SECAGG_SHARE_KEYS, "site-4")[0]
    assert stale.config["secagg_attempt"] == 1
    with pytest.raises(SecureAggregationError, match="round 1 attempt 1"):
        nodes[4].handle(stale)


# Hostile answers ---------------------------------------------------------------------------------
def _tensors(result: Result, tensors: Mapping[str, object]) -> Result:
    return dataclasses.replace(result, parameters=Parameters.typed(tensors))  # type: ignore[arg-type]


def _masked(result: Result) -> np.ndarray:
    return np.asarray(result.parameters["masked"])


def _outside_ring(masked: np.ndarray) -> np.ndarray:
    wide = masked.astype(np.uint64)
    wide[0] = 2**32  # COARSE's modulus is 2**32
    return wide


HOSTILE: dict[str, tuple[Stage, Callable[[Result], Result], str]] = {
    "masked-too-short": (
        Stage.SECAGG_MASKED_INPUT,
        lambda r: _tensors(r, {"masked": _masked(r)[:-1]}),
        "must be .* unsigned integers",
    ),
    "masked-too-long": (
        Stage.SECAGG_MASKED_INPUT,
        lambda r: _tensors(r, {"masked": np.append(_masked(r), _masked(r)[:1])}),
        "must be .* unsigned integers",
    ),
    "masked-int64": (
        Stage.SECAGG_MASKED_INPUT,
        lambda r: _tensors(r, {"masked": _masked(r).astype(np.int64)}),
        "uint32 or uint64",
    ),
    "masked-float": (
        Stage.SECAGG_MASKED_INPUT,
        lambda r: _tensors(r, {"masked": _masked(r).astype(np.float32)}),
        "uint32 or uint64",
    ),
    "masked-2d": (
        Stage.SECAGG_MASKED_INPUT,
        lambda r: _tensors(r, {"masked": _masked(r).reshape(1, -1)}),
        "1-D",
    ),
    "masked-outside-ring": (
        Stage.SECAGG_MASKED_INPUT,
        lambda r: _tensors(r, {"masked": _outside_ring(_masked(r))}),
        "outside the ring 2\\*\\*32",
    ),
    "masked-extra-tensor": (
        Stage.SECAGG_MASKED_INPUT,
        lambda r: _tensors(r, {"masked": _masked(r), "num_examples": np.array([40], np.int64)}),
        "one tensor 'masked'",
    ),
    "masked-plus-update": (
        Stage.SECAGG_MASKED_INPUT,
        lambda r: _tensors(r, {**dict(START), "masked": _masked(r)}),
        "one tensor 'masked'",
    ),
    "advert-short-key": (
        Stage.SECAGG_ADVERTISE_KEYS,
        lambda r: _tensors(r, {**dict(r.parameters), "mask_public_key": np.zeros(31, np.uint8)}),
        "mask_public_key .* must be 32 bytes",
    ),
    "advert-missing-field": (
        Stage.SECAGG_ADVERTISE_KEYS,
        lambda r: _tensors(r, {k: v for k, v in r.parameters.items() if k != "signature"}),
        "lacks 'signature'",
    ),
    "shares-to-a-stranger": (
        Stage.SECAGG_SHARE_KEYS,
        lambda r: _tensors(r, {**dict(r.parameters), "share/site-9": np.zeros(90, np.uint8)}),
        "addressed shares to",
    ),
    "shares-to-itself": (
        Stage.SECAGG_SHARE_KEYS,
        lambda r: _tensors(
            r,
            {("share/site-2" if k == "share/site-0" else k): v for k, v in r.parameters.items()},
        ),
        "addressed shares to",
    ),
    "shares-not-bytes": (
        Stage.SECAGG_SHARE_KEYS,
        lambda r: _tensors(r, {k: v.astype(np.int64) for k, v in r.parameters.items()}),
        "Unexpected tensor 'share/",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_answer_is_refused_as_that_nodes_failure_and_the_round_goes_on(
    identities: FederationIdentities, case: str
) -> None:
    stage, rewrite, problem = HOSTILE[case]
    nodes = wrap(sites(identities), {"site-2": lambda n: Hostile(n, stage, rewrite)})
    history = run(nodes, secure=COARSE, rounds=1)
    report = history.rounds[0]
    assert report.attempts == 1
    assert report.answered == list(without("site-2"))
    assert report.failures["site-2"].startswith("answer refused: ")  # an InvalidAnswerError
    assert re.search(problem, report.failures["site-2"])
    assert set(report.failures) == {"site-2"}
    assert_close_to_plain(
        history.parameters, plain_model(without("site-2"), rounds=1), COARSE, rounds=1
    )


def test_a_hostile_reveal_is_refused_and_the_others_shares_suffice(
    identities: FederationIdentities,
) -> None:
    def rename(result: Result) -> Result:
        return _tensors(result, {f"other/{k}": v for k, v in result.parameters.items()})

    nodes = wrap(sites(identities), {"site-2": lambda n: Hostile(n, Stage.SECAGG_UNMASK, rename)})
    history = run(nodes, secure=COARSE, rounds=1)
    report = history.rounds[0]
    assert report.failures["site-2"].startswith("answer refused: Unexpected tensor 'other/")
    assert report.answered == list(NAMES)  # its masked input is in the sum
    assert_close_to_plain(history.parameters, plain_model(rounds=1), COARSE, rounds=1)


# The coordinator sees only masked integers ----------------------------------------------------
@pytest.mark.parametrize(
    ("section", "dtype"), [(FINE, np.uint64), (COARSE, np.uint32)], ids=["b64", "b32"]
)
def test_the_coordinator_never_receives_a_float_update_or_a_count(
    identities: FederationIdentities, section: SecureAggregationSection, dtype: type
) -> None:
    transport = Recording(InMemoryTransport(sites(identities)))
    history = run([], secure=section, transport=transport, standardize_features=True)
    assert len(history.rounds) == 2
    stages = {r.stage for r in transport.results}
    assert Stage.TRAIN not in stages and Stage.STATISTICS not in stages
    masked = [r for r in transport.results if r.stage is Stage.SECAGG_MASKED_INPUT]
    assert len(masked) == 3 * len(NAMES)  # statistics, round 1, round 2
    for result in masked:
        assert list(result.parameters) == ["masked"]
        assert result.parameters["masked"].dtype == dtype
        assert result.parameters["masked"].ndim == 1
        assert (result.num_examples, dict(result.metrics), result.contributors) == (0, {}, 1)
    for result in transport.results:
        if result.stage in SECURE_STAGES and result.stage is not Stage.SECAGG_MASKED_INPUT:
            assert result.num_examples == 0 and not result.metrics
            assert all(t.dtype == np.uint8 for t in result.parameters.values()), result.stage
    assert all(r.node_id != SECURE_SUM_ID for r in transport.results)
    # Nodes are sent the model only with the masked-input task (the one that trains).
    for task in transport.tasks:
        if task.stage in (Stage.SECAGG_ADVERTISE_KEYS, Stage.SECAGG_UNMASK):
            assert len(task.parameters) == 0


# Configuration ------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["krum", "multikrum", "fedmedian", "fedtrimmedavg", "bulyan"])
def test_a_strategy_needing_individual_updates_is_refused_at_construction(
    strategy: str,
) -> None:
    with pytest.raises(ConfigError, match="secure aggregation"):
        coordinator([], secure=COARSE, strategy=strategy)


def test_a_disabled_section_runs_the_plain_workflow() -> None:
    job = coordinator(sites(None), secure=SecureAggregationSection(enabled=False), strategy="krum")
    job.transport.close()
    assert job.secure_aggregation is None
    assert [type(step).__name__ for step in job.workflow] == ["TrainStep", "EvaluateStep"]


# Known source bugs (strict xfails: they pass once the bug is fixed) ------------------------------
def _bad_signature(result: Result) -> Result:
    tensors = dict(result.parameters)
    signature = tensors["signature"].copy()
    signature[-1] ^= 1
    return _tensors(result, {**tensors, "signature": signature})


def test_an_advert_with_a_bad_signature_is_that_nodes_failure(
    identities: FederationIdentities,
) -> None:
    nodes = wrap(
        sites(identities),
        {"site-2": lambda n: Hostile(n, Stage.SECAGG_ADVERTISE_KEYS, _bad_signature)},
    )
    history = run(nodes, secure=COARSE, rounds=1, max_round_attempts=2)
    assert history.rounds[0].answered == list(without("site-2"))
    assert set(history.rounds[0].failures) == {"site-2"}


def test_secure_statistics_refuse_a_model_without_input_scaling_tensors(
    identities: FederationIdentities,
) -> None:
    bare = Parameters({k: v for k, v in START.items() if not k.startswith("input_")})
    with pytest.raises(ConfigError, match="needs a model with 'input_mean'"):
        run(
            sites(identities),
            secure=COARSE,
            rounds=1,
            standardize_features=True,
            initial_parameters=bare,
        )
