"""Adaptive clipping in a DP job (Andrew et al. 2021): the job section, the node's bit and its
noise split, the coordinator's clip, secure aggregation, resume, and hostile bits."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.errors import AggregationError, CheckpointError, ConfigError
from sovereign_ai.federation import InMemoryTransport, parse_job_spec, run_simulation
from sovereign_ai.federation.checkpoint import CheckpointStore
from sovereign_ai.federation.coordinator import Coordinator
from sovereign_ai.federation.job import PrivacySection, SecureAggregationSection
from sovereign_ai.federation.node import LocalData, Node
from sovereign_ai.federation.private_node import (
    UNCLIPPED_REPORT,
    enable_differential_privacy,
    report_scale,
)
from sovereign_ai.federation.private_strategy import DifferentiallyPrivate
from sovereign_ai.federation.simulation import prepare_simulation
from sovereign_ai.privacy import AdaptiveClip, PrivacyLedger, l2_norm
from sovereign_ai.strategies import FedAdam, FedAvg

JOB = """
[job]
name = "adaptive"
rounds = 2
seed = 3

[model]
name = "logreg"

[strategy]
name = "fedavg"
fraction_train = 1.0
min_train_nodes = 2

[coordinator]
standardize_features = false

[data]
dataset = "iris"
partition = "iid"
nodes = 20

[privacy]
mode = "central"
noise_multiplier = 1.0
clip = 0.1
clipping = "adaptive"
count_noise = 1.0
"""


def job(*, secure: bool = False, minimum: int = 2, **privacy: Any) -> dict[str, Any]:
    document = tomllib.loads(JOB)
    document["strategy"]["min_train_nodes"] = minimum
    document["privacy"].update(privacy)
    for key, value in list(document["privacy"].items()):
        if value is None:
            del document["privacy"][key]
    if secure:
        document["secure_aggregation"] = {"enabled": True}
    return document


class Silent:
    """A noise source that draws zeros, so that a test can check the clip exactly."""

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: Any = None) -> Any:
        return 0.0 if size is None else np.zeros(size)


@pytest.fixture
def silent_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("private_strategy", "private_node"):
        monkeypatch.setattr(f"sovereign_ai.federation.{module}.noise_generator", Silent)


def next_clip(clip: float, *, within: int, answered: int, expected: float) -> float:
    """Algorithm 1 without noise: the clip after a round where ``within`` of ``answered`` fit."""
    fraction = min(1.0, max(0.0, (within - answered / 2) / expected + 0.5))
    return float(np.float32(clip * math.exp(-0.2 * (fraction - 0.5))))


# The job section --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"mode": "local"}, "mode 'local'.*would leave it without noise"),
        ({"mode": "none", "noise_multiplier": None}, "needs mode 'central' or 'distributed'"),
        ({"clipping": "fixed", "count_noise": None, "target_quantile": 0.9}, "only applies"),
        ({"clipping": "fixed"}, "'count_noise' only applies with clipping = 'adaptive'"),
        ({"clipping": "sometimes"}, "clipping"),
        ({"target_quantile": 1.0}, "target_quantile"),
        ({"clip_learning_rate": 0.0}, "clip_learning_rate"),
        ({"count_noise": 0.5}, "count_noise = 0.5 leaves nothing of noise_multiplier = 1"),
        ({"count_noise": -1.0}, "count_noise"),
    ],
)
def test_invalid_adaptive_clipping_settings_are_refused(
    changes: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_job_spec(job(**changes))


FIXED = """
[job]
name = "private"
rounds = 4
seed = 2
[model]
name = "logreg"
[strategy]
name = "fedavg"
fraction_train = 0.5
min_train_nodes = 2
[coordinator]
standardize_features = false
[data]
dataset = "iris"
partition = "iid"
nodes = 8
[privacy]
mode = "central"
target_epsilon = 3.0
clip = 0.1
"""


def test_the_digest_of_a_job_with_a_fixed_clip_is_what_it_was_before_adaptive_clipping() -> None:
    # tests/federation/test_private.py's job: its digests computed before these keys existed.
    document = tomllib.loads(FIXED)
    fixed = parse_job_spec(document)
    assert fixed.digest == "4dc1f6ee4cf347a2ac0a2bc5adee8e565ca753c971bf9ba7c07437148b77e8f0"
    document["privacy"] = {**document["privacy"], "mode": "distributed"}
    document["secure_aggregation"] = {"enabled": True}
    distributed = parse_job_spec(document)
    assert distributed.digest == "8dc4bcb78a539b47aec85b0b9090a6da607f96015daba1574e7f368f850dbb52"

    adaptive = parse_job_spec(job())
    assert len({adaptive.digest, parse_job_spec(job(target_quantile=0.7)).digest}) == 2
    assert parse_job_spec(job(clipping="fixed", count_noise=None)).digest != adaptive.digest


def test_a_count_noise_too_small_for_the_calibrated_noise_is_refused_before_any_round() -> None:
    section = PrivacySection(
        mode="central", target_epsilon=0.5, clipping="adaptive", count_noise=0.2
    )  # ε = 0.5 over 50 rounds needs z > 0.4
    with pytest.raises(ConfigError, match=r"count_noise = 0.2 leaves nothing .* Set \[privacy\]"):
        DifferentiallyPrivate(FedAvg(min_train_nodes=1), section=section, rounds=50)


def test_a_default_count_noise_too_small_for_the_cohort_says_what_to_set() -> None:
    section = PrivacySection(mode="central", noise_multiplier=1.0, clipping="adaptive")
    strategy = DifferentiallyPrivate(FedAvg(min_train_nodes=1), section=section, rounds=3)
    model = Parameters({"w": np.zeros(2)})
    with pytest.raises(ConfigError, match=r"expected cohort 8 / 20\) = 0.4 leaves nothing"):
        strategy.configure_train(
            round_number=1, parameters=model, nodes=[f"n{i}" for i in range(8)],
            rng=np.random.default_rng(0),
        )  # fmt: skip
    instructions = strategy.configure_train(
        round_number=1, parameters=model, nodes=[f"n{i}" for i in range(100)],
        rng=np.random.default_rng(0),
    )  # fmt: skip
    assert {i.config["dp_count_noise"] for i in instructions} == {5.0}  # the paper's m / 20


# The node ---------------------------------------------------------------------------------------
def site(name: str, ledger: PrivacyLedger, *, rows: int = 4) -> Node:
    rng = np.random.default_rng(len(name))
    features = rng.normal(0, 1, (rows, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    node = Node(name, data=LocalData(features, labels, features[:2], labels[:2]))
    ledger.set_budget(name, max_epsilon=1e6, delta=1e-5)
    enable_differential_privacy(node, ledger=ledger, dataset=name)
    return node


def dp_task(round_number: int = 1, *, stage: Stage = Stage.TRAIN, **settings: Any) -> Task:
    config = {
        "dp_mode": "central", "dp_clip": 1.0, "dp_noise_multiplier": 1.0,
        "dp_sampling_rate": 1.0, "dp_min_contributors": 2, "dp_rounds": 100,
        "dp_count_noise": 1.0, **settings,
    }  # fmt: skip
    return Task("job", round_number, stage, "a", Parameters({}), config)


def raw_update(vector: np.ndarray, *, stage: Stage = Stage.TRAIN) -> Result:
    return Result("job", 1, stage, "a", 40, Parameters({"w": vector}), {"x": 1})


@pytest.mark.parametrize(("norm", "bit"), [(0.5, 0.5), (1.0, 0.5), (2.0, -0.5)])
def test_the_node_reports_its_bit_of_the_update_before_clipping(
    tmp_path: Path, norm: float, bit: float
) -> None:
    node = site("a", PrivacyLedger(tmp_path / "ledger.sqlite"))
    sent = node.egress(dp_task(), raw_update(np.array([0.0, norm])))
    assert list(sent.parameters) == ["w", UNCLIPPED_REPORT]
    assert float(sent.parameters[UNCLIPPED_REPORT][0]) == bit
    assert l2_norm(sent.parameters["w"]) == pytest.approx(min(norm, 1.0))
    assert (sent.num_examples, sent.metrics) == (1, {})


def test_the_node_splits_the_noise_multiplier_and_accounts_one_event_of_the_total(
    tmp_path: Path,
) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    node = site("a", ledger)
    # σ_b = 0.75 with z = 1: z_Δ = (1 - 1/2.25)^(-1/2) = 1.34, so the split is visible.
    settings = {"dp_mode": "distributed", "dp_count_noise": 0.75, "dp_min_contributors": 4}
    z_delta = AdaptiveClip(clip=1.0, count_noise_std=0.75).update_noise_multiplier(1.0)
    assert z_delta == pytest.approx(1.3416, abs=1e-4)
    sent = node.egress(dp_task(**settings), raw_update(np.zeros(40_000)))
    assert np.std(sent.parameters["w"]) == pytest.approx(z_delta * 1.0 / 2, rel=0.02)

    bits = [
        float(node.egress(dp_task(**settings), raw_update(np.zeros(3))).parameters[
            UNCLIPPED_REPORT
        ][0])
        for _ in range(3000)
    ]  # fmt: skip
    assert np.mean(bits) == pytest.approx(0.5, abs=0.02)
    assert np.std(bits) == pytest.approx(0.75 / 2, rel=0.06)  # σ_b / sqrt(n_min)

    (entry,) = ledger.entries("a")  # one event, the job's 100 rounds reserved, of the total z
    assert (entry.event.noise_multiplier, entry.event.steps) == (1.0, 100)


def test_the_node_refuses_a_count_noise_that_would_leave_less_noise_than_accounted(
    tmp_path: Path,
) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    node = site("a", ledger)
    with pytest.raises(ConfigError, match="leaves nothing"):
        node.egress(dp_task(dp_count_noise=0.5), raw_update(np.ones(3)))
    with pytest.raises(ConfigError, match="out of range"):
        node.egress(dp_task(dp_count_noise=-1.0), raw_update(np.ones(3)))
    with pytest.raises(ConfigError, match="'local' mode"):
        node.egress(dp_task(dp_mode="local"), raw_update(np.ones(3)))
    assert ledger.entries("a") == []  # refused before anything was recorded


@pytest.mark.parametrize("mode", ["central", "distributed"])
def test_under_secure_aggregation_the_bit_is_scaled_into_the_quantisation_range(
    tmp_path: Path, mode: str, silent_noise: None
) -> None:
    node = site("a", PrivacyLedger(tmp_path / "ledger.sqlite"))
    task = dp_task(
        stage=Stage.SECAGG_MASKED_INPUT, dp_mode=mode, secagg_input="train",
        secagg_clipping_range=0.25,
    )  # fmt: skip
    sent = node.egress(task, raw_update(np.array([0.1, 0.0]), stage=task.stage))
    scale = report_scale(mode=mode, count_noise=1.0, minimum_contributors=2, clipping_range=0.25)
    # Its bound (1/2, plus six standard deviations of its noise share) is the range's edge.
    bound = 0.5 if mode == "central" else 0.5 + 6 * 1.0 / math.sqrt(2)
    assert scale == pytest.approx(0.25 / bound)
    assert float(sent.parameters[UNCLIPPED_REPORT][0]) == pytest.approx(0.5 * scale)


# The coordinator --------------------------------------------------------------------------------
MODEL = Parameters({"w": np.zeros(3)})


def adaptive_strategy(
    *, rounds: int = 10, section: SecureAggregationSection | None = None, **privacy: Any
) -> DifferentiallyPrivate:
    settings = PrivacySection(
        **{"mode": "central", "noise_multiplier": 1.0, "clip": 1.0, "clipping": "adaptive",
           "count_noise": 1.0, **privacy}
    )  # fmt: skip
    return DifferentiallyPrivate(
        FedAvg(min_train_nodes=1), section=settings, rounds=rounds, secure_aggregation=section
    )


def clip_after(strategy: DifferentiallyPrivate, bits: list[float]) -> float:
    nodes = [f"n{i}" for i in range(len(bits))]
    strategy.configure_train(
        round_number=1, parameters=MODEL, nodes=nodes, rng=np.random.default_rng(0)
    )
    results = [
        Result("job", 1, Stage.TRAIN, node, 1,
               Parameters({"w": np.full(3, 0.1), UNCLIPPED_REPORT: np.array([bit])}))
        for node, bit in zip(nodes, bits, strict=True)
    ]  # fmt: skip
    strategy.aggregate_train(round_number=1, parameters=MODEL, results=results)
    return strategy.clip


def test_a_hostile_bit_moves_the_clip_no_further_than_an_honest_one(silent_noise: None) -> None:
    honest = [0.5, -0.5, -0.5, 0.5, -0.5, -0.5, -0.5, 0.5, -0.5, -0.5]
    clips = {bit: clip_after(adaptive_strategy(), [*honest, bit]) for bit in (-1e9, -0.5, 0.5, 1e9)}
    assert clips[0.5] < clips[-0.5]  # one node's bit does move the clip ...
    assert clips[1e9] == clips[0.5]  # ... but no lie moves it further
    assert clips[-1e9] == clips[-0.5]
    assert clips[0.5] == next_clip(1.0, within=4, answered=11, expected=11)
    with pytest.raises(AggregationError, match="no finite adaptive-clipping bit"):
        clip_after(adaptive_strategy(), [*honest, math.nan])


def test_in_central_mode_the_coordinator_adds_the_count_noise_and_the_split_update_noise() -> None:
    # σ_b = 0.75 with z = 1: z_Δ = 1.34. Ten nodes, half within the clip: b̄ = 1/2 + N(0, σ_b²)/10.
    bits = [0.5, -0.5] * 5
    moves = [math.log(clip_after(adaptive_strategy(count_noise=0.75), bits)) for _ in range(600)]
    assert np.mean(moves) == pytest.approx(0.0, abs=0.003)
    assert np.std(moves) == pytest.approx(0.2 * 0.75 / 10, rel=0.1)  # η σ_b / m

    strategy = adaptive_strategy(count_noise=0.75, clip=2.0)
    model = Parameters({"w": np.zeros(20_000)})
    nodes = [f"n{i}" for i in range(10)]
    strategy.configure_train(
        round_number=1, parameters=model, nodes=nodes, rng=np.random.default_rng(0)
    )
    results = [
        Result("job", 1, Stage.TRAIN, node, 1,
               Parameters({"w": np.zeros(20_000), UNCLIPPED_REPORT: np.array([0.5])}))
        for node in nodes
    ]  # fmt: skip
    new = strategy.aggregate_train(round_number=1, parameters=model, results=results)
    z_delta = AdaptiveClip(clip=1.0, count_noise_std=0.75).update_noise_multiplier(1.0)
    assert np.std(new["w"]) == pytest.approx(z_delta * 2.0 / 10, rel=0.02)  # z_Δ C / m


def test_a_node_that_lies_about_its_bit_is_refused_and_the_round_goes_on(tmp_path: Path) -> None:
    from sovereign_ai.federation.assembly import initial_parameters, stage_config

    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    nodes = [site(name, ledger, rows=30) for name in ("a", "b", "c", "liar")]

    def lie(task: Task, result: Result) -> Result:
        if UNCLIPPED_REPORT not in result.parameters:
            return result
        tensors = {**result.parameters, UNCLIPPED_REPORT: np.array([1e9])}
        return dataclasses.replace(result, parameters=Parameters(tensors))

    nodes[-1].egress.install("audit", lie)  # after the privacy filter: what actually leaves
    spec = parse_job_spec(job())
    shape = {"num_features": 4, "num_classes": 2}
    history = Coordinator(
        job_id="adaptive-test", strategy=adaptive_strategy(), rounds=1,
        transport=InMemoryTransport(nodes, max_workers=1),
        initial_parameters=initial_parameters(spec, **shape),
        stage_config=stage_config(spec, **shape), evaluate_every=0,
    ).run()  # fmt: skip
    (report,) = history.rounds
    assert report.answered == ["a", "b", "c"]
    assert "reports 'dp_unclipped' = 1e+09" in report.failures["liar"]


def test_the_clip_settles_where_the_target_share_of_updates_fits(tmp_path: Path) -> None:
    # 100 nodes whose update norms are lognormal(0, 0.5), through the real privacy filter and
    # the real strategy, with real noise and the paper's defaults (σ_b = m / 20 = 5).
    rng = np.random.default_rng(7)
    node = site("a", PrivacyLedger(tmp_path / "ledger.sqlite"))  # answers for every node
    strategy = adaptive_strategy(rounds=150, clip=0.05, count_noise=None)
    names = [f"n{i:03d}" for i in range(100)]
    model = Parameters({"w": np.zeros(8)})
    clips, shares = [], []
    for round_number in range(1, 151):
        instructions = strategy.configure_train(
            round_number=round_number, parameters=model, nodes=names, rng=rng
        )
        results = []
        for instruction in instructions:
            direction = rng.normal(size=8)
            norm = rng.lognormal(0.0, 0.5)
            task = Task("job", round_number, Stage.TRAIN, instruction.node_id, model,
                        instruction.config)  # fmt: skip
            update = model.with_vector(direction / np.linalg.norm(direction) * norm)
            raw = Result("job", round_number, Stage.TRAIN, instruction.node_id, 10, update)
            results.append(node.egress(task, raw))
        shares.append(np.mean([float(r.parameters[UNCLIPPED_REPORT][0]) > 0 for r in results]))
        strategy.aggregate_train(round_number=round_number, parameters=model, results=results)
        clips.append(strategy.clip)
    assert clips[0] > 0.05  # every update was clipped: the clip grows
    settled = float(np.exp(np.mean(np.log(clips[-50:]))))
    assert settled == pytest.approx(1.0, rel=0.1)  # the median norm of lognormal(0, 0.5)
    assert np.mean(shares[-50:]) == pytest.approx(0.5, abs=0.05)


# In a simulated job -----------------------------------------------------------------------------
def record_rounds(nodes: list[Node]) -> dict[int, list[tuple[float, float]]]:
    """Install a policy filter on each node that records, per round, the clip it was sent and
    the norm of its update before the privacy filter."""
    seen: dict[int, list[tuple[float, float]]] = defaultdict(list)

    def policy(task: Task, result: Result) -> Result:
        is_train = task.stage is Stage.TRAIN or task.config.get("secagg_input") == "train"
        if is_train and "dp_clip" in task.config:
            clip = float(task.config["dp_clip"])  # type: ignore[arg-type]
            seen[task.round_number].append((clip, l2_norm(result.parameters.flatten())))
        return result

    for node in nodes:
        node.egress.install("policy", policy)
    return seen


def final_clip(state_dir: Path) -> float:
    store = CheckpointStore(state_dir)
    try:
        latest = store.latest()
        assert latest is not None
        return float(latest.strategy_state["adaptive_clip"][0])
    finally:
        store.close()


@pytest.mark.parametrize(
    ("mode", "secure"), [("central", False), ("central", True), ("distributed", True)]
)
def test_the_clip_follows_the_bits_of_a_simulated_job_exactly(
    tmp_path: Path, mode: str, secure: bool, silent_noise: None
) -> None:
    # Noise drawn as zeros: the clip each round must be Algorithm 1's for the nodes' true bits,
    # which the nodes' policy slot sees before the privacy filter. Under secure aggregation the
    # coordinator sees only the sum, quantised: it must still recover the count.
    spec = parse_job_spec(job(mode=mode, secure=secure, clip=0.2))
    setup = prepare_simulation(spec)
    seen = record_rounds(setup.nodes)
    history, _ = run_simulation(spec, state_dir=tmp_path, setup=setup)
    assert [len(r.answered) for r in history.rounds] == [20, 20]
    clips = [seen[1][0][0], seen[2][0][0], final_clip(tmp_path)]
    assert clips[0] == pytest.approx(0.2)
    for round_number in (1, 2):
        sent = {clip for clip, _ in seen[round_number]}
        assert sent == {clips[round_number - 1]}
        within = sum(norm <= clips[round_number - 1] for _, norm in seen[round_number])
        assert 0 < within < 20  # the clamp does not hide the count
        expected = next_clip(clips[round_number - 1], within=within, answered=20, expected=20)
        assert clips[round_number] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(("mode", "secure"), [("central", False), ("distributed", True)])
@pytest.mark.parametrize(("start", "grows"), [(1e-3, True), (100.0, False)])
def test_with_real_noise_the_clip_moves_towards_the_norms(
    tmp_path: Path, mode: str, secure: bool, start: float, grows: bool
) -> None:
    # n_min = 10 of 20: the summed shares of the count noise have σ_b sqrt(2), not sqrt(10).
    spec = parse_job_spec(
        job(mode=mode, secure=secure, minimum=10, clip=start, noise_multiplier=0.5)
    )
    history, setup = run_simulation(spec, state_dir=tmp_path)
    clip = final_clip(tmp_path)
    # Two rounds at most x/÷ exp(0.1) each; every update is clipped (or none is) at the start.
    assert (clip > start * 1.1) if grows else (clip < start / 1.1)
    for node in history.rounds[-1].answered:  # bits and updates cost the one z accounted
        assert {e.event.noise_multiplier for e in setup.ledgers[node].entries(node)} == {0.5}


def test_a_resumed_job_goes_on_from_the_clip_it_had_reached(tmp_path: Path) -> None:
    run_simulation(parse_job_spec(job(clip=1e-3)), state_dir=tmp_path)
    reached = final_clip(tmp_path)
    assert reached > 1e-3

    longer = job(clip=1e-3)
    longer["job"]["rounds"] = 3  # operational: the same job, resumed
    spec = parse_job_spec(longer)
    setup = prepare_simulation(spec)
    seen = record_rounds(setup.nodes)
    history, _ = run_simulation(spec, state_dir=tmp_path, resume=True, setup=setup)
    assert history.resumed_from == 2
    assert {clip for clip, _ in seen[3]} == {reached}


def test_the_clip_is_part_of_the_strategy_state(silent_noise: None) -> None:
    section = PrivacySection(
        mode="central", noise_multiplier=1.0, clip=1.0, clipping="adaptive", count_noise=1.0
    )
    strategy = DifferentiallyPrivate(FedAdam(min_train_nodes=1), section=section, rounds=5)
    clip_after(strategy, [-0.5, -0.5, 0.5])
    state = strategy.state_dict()
    assert sorted(state) == [
        "adaptive_clip", "inner.first_moment", "inner.second_moment", "inner.step"
    ]  # fmt: skip

    restored = DifferentiallyPrivate(FedAdam(min_train_nodes=1), section=section, rounds=5)
    restored.load_state_dict(state)
    assert restored.clip == strategy.clip != 1.0
    assert restored.state_dict().keys() == state.keys()
    for bad in (
        {k: v for k, v in state.items() if k != "adaptive_clip"},
        {**state, "adaptive_clip": np.array([-1.0], np.float32)},
        {**state, "stray": np.zeros(1, np.float32)},
    ):
        with pytest.raises(CheckpointError, match="adaptive clip"):
            restored.load_state_dict(bad)

    fixed = DifferentiallyPrivate(
        FedAdam(min_train_nodes=1), section=PrivacySection(mode="central", noise_multiplier=1.0),
        rounds=5,
    )  # fmt: skip
    assert fixed.state_dict() == {}  # a fixed clip keeps the inner state as it was


def secure_sum(mean_report: float, contributors: int = 2) -> Result:
    """The one result a secure round hands the strategy: mean update and mean (scaled) bit."""
    tensors = {"w": np.zeros(3), UNCLIPPED_REPORT: np.array([mean_report])}
    return Result(
        "job", 1, Stage.TRAIN, "secure-aggregate", contributors, Parameters(tensors),
        contributors=contributors,
    )  # fmt: skip


def test_a_secure_sum_is_scaled_back_and_in_central_mode_clamped_to_what_is_honest(
    silent_noise: None,
) -> None:
    with pytest.raises(ConfigError, match="secure_aggregation="):
        clip_after_secure(adaptive_strategy(), secure_sum(0.1))
    section = SecureAggregationSection(enabled=True, clipping_range=0.25)
    scale = report_scale(
        mode="central", count_noise=1.0, minimum_contributors=1, clipping_range=0.25
    )
    all_within = clip_after_secure(adaptive_strategy(section=section), secure_sum(0.5 * scale))
    assert all_within == next_clip(1.0, within=2, answered=2, expected=2)
    one_within = clip_after_secure(adaptive_strategy(section=section), secure_sum(0.0))
    assert one_within == next_clip(1.0, within=1, answered=2, expected=2)
    # A node that sent far more than its bit (masked, so only the sum shows it) moves the clip
    # no further than every survivor's honest "within" would.
    assert clip_after_secure(adaptive_strategy(section=section), secure_sum(1e6)) == all_within


def clip_after_secure(strategy: DifferentiallyPrivate, summed: Result) -> float:
    strategy.configure_train(
        round_number=1, parameters=MODEL, nodes=["a", "b"], rng=np.random.default_rng(0)
    )
    strategy.aggregate_train(round_number=1, parameters=MODEL, results=[summed])
    return strategy.clip
