"""A conformance suite for :class:`~sovereign_ai.core.Strategy` implementations.

Run it on your own strategy before giving it to a coordinator::

    from sovereign_ai.testing import check_strategy

    def test_my_strategy_conforms() -> None:
        check_strategy(lambda: MyStrategy(min_train_nodes=3))

Every check runs on fresh instances from the factory, on small seeded inputs, in well under a second
for the built-in strategies. All checks run; their failures are reported together in one
:class:`StrategyConformanceError`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import NoReturn

import numpy as np

from sovereign_ai.core import ConfigValue, NodeInstruction, Parameters, Result, Strategy
from sovereign_ai.errors import (
    ConfigError,
    FederationError,
    InsufficientNodesError,
    SerializationError,
    SovereignError,
)
from sovereign_ai.testing._strategy_inputs import (
    as_secure_sum,
    copy_parameters,
    evaluate_results,
    global_parameters,
    instruction_summary,
    node_names,
    train_results,
    with_same_weighted_sum,
)

__all__ = ["CONFORMANCE_CHECKS", "StrategyConformanceError", "check_strategy"]

StrategyFactory = Callable[[], Strategy]


class StrategyConformanceError(SovereignError, AssertionError):
    """A strategy failed one or more conformance checks.

    It is an ``AssertionError`` too, so test runners report it as a failed test, not a crash.

    Parameters
    ----------
    strategy_name
        The class name of the strategy checked.
    failures
        Check name to what went wrong, for every failed check.
    """

    def __init__(self, strategy_name: str, failures: Mapping[str, str]) -> None:
        self.strategy_name = strategy_name
        self.failures = dict(failures)
        lines = "\n".join(f"  - {name}: {reason}" for name, reason in self.failures.items())
        super().__init__(
            f"Strategy {strategy_name} failed {len(self.failures)} of "
            f"{len(CONFORMANCE_CHECKS)} conformance check(s):\n{lines}"
        )


class _CheckFailedError(Exception):
    """One check's failure; carries the reason."""


def _fail(reason: str) -> NoReturn:
    raise _CheckFailedError(reason)


def _round(strategy: Strategy, parameters: Parameters, *, round_number: int) -> Parameters:
    """One aggregate_train on ``n = max(min_train_nodes, 4)`` seeded updates."""
    count = max(strategy.min_train_nodes, 4)
    results = train_results(
        parameters=parameters, count=count, round_number=round_number, seed=round_number
    )
    return strategy.aggregate_train(
        round_number=round_number, parameters=parameters, results=results
    )


def _require_equal(left: Parameters, right: Parameters, what: str) -> None:
    if left.spec != right.spec or not np.array_equal(left.flatten(), right.flatten()):
        _fail(f"{what} differ (they must be bit-for-bit equal)")


# Checks ------------------------------------------------------------------------------------------
_FLAG_MEANING = (
    "True if aggregate_train needs each node's update, False if their example-weighted sum is "
    "enough: secure aggregation only gives the coordinator the sum"
)


def _check_protocol(factory: StrategyFactory) -> None:
    strategy = factory()
    if not isinstance(strategy, Strategy):
        members = [name for name in vars(Strategy) if not name.startswith("_")]
        missing = [name for name in members if not hasattr(strategy, name)]
        reason = f"{type(strategy).__name__} lacks some methods or properties of Strategy: "
        if "needs_individual_updates" in missing:
            reason += f"declare needs_individual_updates ({_FLAG_MEANING}); "
        _fail(reason + f"missing: {', '.join(missing)}")
    flag = strategy.needs_individual_updates
    if not isinstance(flag, bool):
        _fail(f"needs_individual_updates must be a bool, {_FLAG_MEANING}; got {flag!r}")
    for name, minimum in (("min_train_nodes", 1), ("min_evaluate_nodes", 0)):
        value = getattr(strategy, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            _fail(f"{name} must be an int >= {minimum}; got {value!r}")


def _check_instructions(
    instructions: object, nodes: list[str], *, hook: str, minimum: int, allow_empty: bool
) -> None:
    if not isinstance(instructions, list) or not all(
        isinstance(i, NodeInstruction) for i in instructions
    ):
        _fail(f"{hook} must return a list of NodeInstruction; got {instructions!r}")
    chosen = [i.node_id for i in instructions]
    if len(set(chosen)) != len(chosen):
        _fail(f"{hook} chose a node more than once: {chosen}")
    if not set(chosen) <= set(nodes):
        _fail(f"{hook} chose nodes that are not available: {sorted(set(chosen) - set(nodes))}")
    if not (allow_empty and not chosen) and len(chosen) < minimum:
        _fail(f"{hook} chose {len(chosen)} node(s), fewer than its minimum {minimum}")
    for instruction in instructions:
        for key, value in instruction.config.items():
            if not isinstance(key, str) or not isinstance(value, ConfigValue):
                _fail(f"{hook} config {key!r}={value!r} is not a str -> bool|int|float|str item")
            if isinstance(value, float) and not np.isfinite(value):
                _fail(f"{hook} config {key!r}={value!r} is not finite")


def _check_configure(factory: StrategyFactory, *, hook: str) -> None:
    probe = factory()
    minimum = probe.min_train_nodes if hook == "configure_train" else probe.min_evaluate_nodes
    nodes = node_names(max(2 * minimum, minimum + 5))
    parameters = global_parameters(seed=0)
    summaries = []
    for strategy in (probe, factory(), probe):  # fresh twice, then the same instance again
        given = list(nodes)
        instructions = getattr(strategy, hook)(
            round_number=1, parameters=parameters, nodes=given, rng=np.random.default_rng(7)
        )
        if given != nodes:
            _fail(f"{hook} changed the list of nodes it was given")
        _check_instructions(
            instructions, nodes, hook=hook, minimum=minimum, allow_empty=hook != "configure_train"
        )
        summaries.append(instruction_summary(instructions))
    if not summaries[0] == summaries[1] == summaries[2]:
        _fail(f"{hook} is not deterministic for the same rng seed: {summaries}")


def _check_configure_train(factory: StrategyFactory) -> None:
    _check_configure(factory, hook="configure_train")
    strategy = factory()
    too_few = node_names(strategy.min_train_nodes - 1)
    try:
        strategy.configure_train(
            round_number=1,
            parameters=global_parameters(seed=0),
            nodes=too_few,
            rng=np.random.default_rng(7),
        )
    except InsufficientNodesError:
        return
    _fail(f"configure_train with {len(too_few)} node(s) did not raise InsufficientNodesError")


def _check_configure_evaluate(factory: StrategyFactory) -> None:
    _check_configure(factory, hook="configure_evaluate")


def _check_aggregate_output(factory: StrategyFactory) -> None:
    parameters = global_parameters(seed=0)
    output = _round(factory(), parameters, round_number=1)
    if not isinstance(output, Parameters):
        _fail(f"aggregate_train must return Parameters; got {type(output).__name__}")
    if output.spec != parameters.spec:
        _fail(f"aggregate_train changed the spec from {parameters.spec} to {output.spec}")
    if not np.isfinite(output.flatten()).all():
        _fail("aggregate_train returned non-finite parameters from finite updates")


def _check_no_mutation(factory: StrategyFactory) -> None:
    strategy = factory()
    parameters = global_parameters(seed=0)
    count = max(strategy.min_train_nodes, 4)
    results = train_results(parameters=parameters, count=count, round_number=1, seed=1)
    given = list(results)
    before = copy_parameters(parameters)
    updates_before = [copy_parameters(r.parameters) for r in results]
    metrics_before = [dict(r.metrics) for r in results]
    strategy.aggregate_train(round_number=1, parameters=parameters, results=given)
    if [id(r) for r in given] != [id(r) for r in results]:
        _fail("aggregate_train reordered, added or removed items of the results list it was given")
    if parameters != before:
        _fail("aggregate_train changed the global parameters it was given")
    for result, update, metrics in zip(results, updates_before, metrics_before, strict=True):
        if result.parameters != update or dict(result.metrics) != metrics:
            _fail(f"aggregate_train changed the result of {result.node_id}")


def _check_deterministic(factory: StrategyFactory) -> None:
    first, second = factory(), factory()
    left, right = global_parameters(seed=0), global_parameters(seed=0)
    for round_number in (1, 2, 3):
        left = _round(first, left, round_number=round_number)
        right = _round(second, right, round_number=round_number)
        _require_equal(left, right, f"round {round_number} outputs of two fresh instances")


def _check_zero_update(factory: StrategyFactory) -> None:
    strategy = factory()
    parameters = global_parameters(seed=0)
    results = train_results(
        parameters=parameters,
        count=max(strategy.min_train_nodes, 4),
        round_number=1,
        seed=1,
        scale=0.0,
    )
    output = strategy.aggregate_train(round_number=1, parameters=parameters, results=results)
    if not np.array_equal(output.flatten(), parameters.flatten()):
        moved = float(np.max(np.abs(output.flatten() - parameters.flatten())))
        _fail(f"all-zero updates moved a fresh instance's model by up to {moved:g}")


def _check_state_round_trip(factory: StrategyFactory) -> None:
    fresh_state = factory().state_dict()
    factory().load_state_dict(fresh_state)  # a coordinator checkpoints round 0 like this
    original = factory()
    after_one = _round(original, global_parameters(seed=0), round_number=1)
    state = original.state_dict()
    if not isinstance(state, dict):
        _fail(f"state_dict must return a dict; got {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            _fail(f"state_dict item {key!r} must map a str to a numpy array")
        if value.dtype != np.float32:
            _fail(f"state_dict item {key!r} has dtype {value.dtype}; must be float32")
    resumed = factory()
    resumed.load_state_dict(state)
    for value in state.values():  # neither side may keep aliases of the exchanged arrays
        if value.flags.writeable:
            value.fill(np.nan)
    left = _round(original, after_one, round_number=2)
    right = _round(resumed, after_one, round_number=2)
    if not np.isfinite(left.flatten()).all():
        _fail("state_dict returned arrays the strategy keeps using (changing them changed it)")
    _require_equal(left, right, "round 2 outputs of the original and of a copy resumed from it")
    left_state, right_state = original.state_dict(), resumed.state_dict()
    if sorted(left_state) != sorted(right_state) or not all(
        np.array_equal(left_state[key], right_state[key]) for key in left_state
    ):
        _fail("state after round 2 differs between the original and the resumed copy")


def _check_insufficient_results(factory: StrategyFactory) -> None:
    strategy = factory()
    parameters = global_parameters(seed=0)
    counts = sorted({0, strategy.min_train_nodes - 1})
    for count in counts:
        results = train_results(parameters=parameters, count=count, round_number=1, seed=1)
        try:
            strategy.aggregate_train(round_number=1, parameters=parameters, results=results)
        except InsufficientNodesError:
            continue
        _fail(f"aggregate_train with {count} result(s) did not raise InsufficientNodesError")
    if strategy.min_evaluate_nodes == 0:
        return
    too_few = evaluate_results(count=strategy.min_evaluate_nodes - 1, round_number=1, seed=3)
    try:
        strategy.aggregate_evaluate(round_number=1, results=too_few)
    except InsufficientNodesError:
        return
    _fail(f"aggregate_evaluate with {len(too_few)} result(s) did not raise InsufficientNodesError")


def _check_mismatched_update(factory: StrategyFactory) -> None:
    strategy = factory()
    parameters = global_parameters(seed=0)
    count = max(strategy.min_train_nodes, 4)
    results = train_results(parameters=parameters, count=count, round_number=1, seed=1)
    bad = results[-1]
    results[-1] = Result(
        job_id=bad.job_id,
        round_number=bad.round_number,
        stage=bad.stage,
        node_id=bad.node_id,
        num_examples=bad.num_examples,
        parameters=Parameters({"other": np.zeros(3)}),
    )
    try:
        strategy.aggregate_train(round_number=1, parameters=parameters, results=results)
    except (SerializationError, FederationError):
        return
    _fail("an update of another spec did not raise SerializationError or FederationError")


def _check_aggregate_evaluate(factory: StrategyFactory) -> None:
    strategy = factory()
    results = evaluate_results(count=max(strategy.min_evaluate_nodes, 3), round_number=1, seed=3)
    metrics = strategy.aggregate_evaluate(round_number=1, results=results)
    weights = np.array([r.num_examples for r in results], dtype=np.float64)
    for name in ("loss", "accuracy"):
        values = np.array([r.metrics[name] for r in results])
        expected = float(weights @ values / weights.sum())
        got = metrics.get(name) if isinstance(metrics, Mapping) else None
        if not isinstance(got, float) or not np.isclose(got, expected, rtol=1e-9, atol=0.0):
            _fail(
                f"aggregate_evaluate gave {name}={got!r}; the example-weighted mean is {expected}"
            )


def _check_uses_only_the_sum(factory: StrategyFactory) -> None:
    probe = factory()
    if getattr(probe, "needs_individual_updates", None) is not False:
        return  # not a claim to work on the sum (protocol checks the flag): nothing to verify
    parameters = global_parameters(seed=0)
    results = train_results(
        parameters=parameters, count=max(probe.min_train_nodes, 4), round_number=1, seed=1
    )
    moved = with_same_weighted_sum(results, seed=2)
    left = factory().aggregate_train(round_number=1, parameters=parameters, results=results)
    right = factory().aggregate_train(round_number=1, parameters=parameters, results=moved)
    if not np.allclose(left.flatten(), right.flatten(), rtol=1e-5, atol=1e-6):
        gap = float(np.max(np.abs(left.flatten() - right.flatten())))
        _fail(
            "needs_individual_updates is False, yet two sets of updates with the same "
            f"example-weighted sum and example counts gave models differing by up to {gap:g}; "
            "secure aggregation reveals only that sum, so declare True if aggregate_train needs "
            "each update"
        )
    summed = factory().aggregate_train(
        round_number=1, parameters=parameters, results=[as_secure_sum(results)]
    )
    if not np.allclose(left.flatten(), summed.flatten(), rtol=1e-5, atol=1e-6):
        gap = float(np.max(np.abs(left.flatten() - summed.flatten())))
        _fail(
            "needs_individual_updates is False, yet the one result secure aggregation hands over "
            f"(the weighted mean update, the summed count, contributors={len(results)}) gave a "
            f"model differing by up to {gap:g} from the individual updates'"
        )


CONFORMANCE_CHECKS: Mapping[str, Callable[[StrategyFactory], None]] = MappingProxyType(
    {
        "protocol": _check_protocol,
        "configure_train": _check_configure_train,
        "configure_evaluate": _check_configure_evaluate,
        "aggregate_output": _check_aggregate_output,
        "no_mutation": _check_no_mutation,
        "deterministic": _check_deterministic,
        "zero_update_fixed_point": _check_zero_update,
        "state_round_trip": _check_state_round_trip,
        "insufficient_results": _check_insufficient_results,
        "mismatched_update": _check_mismatched_update,
        "aggregate_evaluate": _check_aggregate_evaluate,
        "uses_only_the_sum": _check_uses_only_the_sum,
    }
)
"""Every check :func:`check_strategy` runs, by name (the names ``skip`` accepts)."""


def check_strategy(factory: StrategyFactory, *, skip: Collection[str] = ()) -> None:
    """Run the strategy conformance checks on instances made by ``factory``.

    Checks (see :data:`CONFORMANCE_CHECKS`):

    * ``protocol`` — implements :class:`~sovereign_ai.core.Strategy`; declares
      ``needs_individual_updates`` as a bool; sane minimum cohorts.
    * ``configure_train`` / ``configure_evaluate`` — distinct available nodes, at least the
      minimum, scalar settings, the same choice for the same rng seed, inputs untouched; too few
      nodes to train raises :class:`~sovereign_ai.errors.InsufficientNodesError`.
    * ``aggregate_output`` — same names and shapes as the global model, finite values.
    * ``no_mutation`` — the global parameters, the results list and every result are untouched.
    * ``deterministic`` — two fresh instances given the same three rounds agree bit-for-bit.
    * ``zero_update_fixed_point`` — a fresh instance given all-zero updates returns the model.
    * ``state_round_trip`` — a fresh instance loaded with the state after round 1 gives round 2
      bit-for-bit; the state is float32 arrays, not aliased; a fresh state loads.
    * ``insufficient_results`` — no results, or fewer than ``min_train_nodes``, raise
      ``InsufficientNodesError``; so do fewer evaluate results than ``min_evaluate_nodes``.
    * ``mismatched_update`` — an update of another spec raises ``SerializationError`` or
      ``FederationError``.
    * ``aggregate_evaluate`` — metrics are example-weighted means.
    * ``uses_only_the_sum`` — a strategy declaring ``needs_individual_updates = False`` gives the
      same model (to float rounding) for two sets of updates with the same example-weighted sum
      and example counts, since that sum is all secure aggregation reveals; and the same model
      again from the one result secure aggregation hands over (the weighted mean, the summed
      count, ``contributors`` = the number of nodes).

    Parameters
    ----------
    factory
        Called with no arguments, returns a fresh strategy each time.
    skip
        Names of checks not to run, for a strategy that deliberately differs (e.g. one that adds
        noise on the coordinator cannot have a zero-update fixed point).

    Raises
    ------
    StrategyConformanceError
        If any check fails; its ``failures`` maps each failed check to the reason. Exceptions the
        strategy raises where none was expected count as failures too.
    ConfigError
        If ``factory`` is not callable or ``skip`` names an unknown check.
    """
    if not callable(factory):
        raise ConfigError(
            f"The 'factory' parameter of check_strategy must be callable; got {factory!r} instead."
        )
    unknown = sorted(set(skip) - set(CONFORMANCE_CHECKS))
    if unknown:
        raise ConfigError(
            f"The 'skip' parameter of check_strategy must name checks among "
            f"{', '.join(CONFORMANCE_CHECKS)}; got {unknown} instead."
        )
    failures: dict[str, str] = {}
    for name, check in CONFORMANCE_CHECKS.items():
        if name in skip:
            continue
        try:
            check(factory)
        except _CheckFailedError as failure:
            failures[name] = str(failure)
        except Exception as exc:  # a strategy's unexpected error is a failure
            failures[name] = f"raised {type(exc).__name__}: {exc}"
    if failures:
        try:
            strategy_name = type(factory()).__name__
        except Exception:  # the factory failing is already reported
            strategy_name = repr(factory)
        raise StrategyConformanceError(strategy_name, failures)
