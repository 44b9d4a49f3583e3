"""From a job spec to a running coordinator: one assembly for simulation and deployment.

The simulation (:mod:`sovereign_ai.federation.simulation`) and the deployed coordinator process
(``sovereign coordinator start``) build their :class:`Coordinator` here, so both run the same job
the same way; only the transport differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import ConfigValue, Parameters, Strategy, Transport
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation.checkpoint import CheckpointStore
from sovereign_ai.federation.coordinator import CentralEvaluator, Coordinator
from sovereign_ai.federation.job import JobSpec
from sovereign_ai.federation.node import JOB_TERMS
from sovereign_ai.federation.private_strategy import DifferentiallyPrivate
from sovereign_ai.federation.rounds import RoundObserver
from sovereign_ai.federation.sample_level_strategy import SampleLevelPrivate
from sovereign_ai.learning import create_model, evaluate, get_parameters, set_parameters
from sovereign_ai.strategies import create_strategy

__all__ = [
    "build_coordinator",
    "build_strategy",
    "initial_parameters",
    "open_store",
    "stage_config",
    "test_set_evaluator",
]


def stage_config(spec: JobSpec, *, num_features: int, num_classes: int) -> dict[str, ConfigValue]:
    """Scalars every task of the job carries: which model (and its plug-in), how to train it,
    and the job's terms (:data:`~sovereign_ai.federation.node.JOB_TERMS`), by which a node's
    policy decides whether to join before it answers anything."""
    model_options = spec.model.options
    plugin = {} if spec.model.plugin is None else {"model_plugin": spec.model.plugin}
    minimum = create_strategy(spec.strategy.name, **spec.strategy.options).min_train_nodes
    terms: dict[str, ConfigValue] = dict(
        zip(
            JOB_TERMS,
            (spec.job.rounds, spec.secure_aggregation.enabled, spec.privacy.mode, minimum),
            strict=True,
        )
    )
    return {
        "model": spec.model.name,
        **plugin,
        "model_options": json.dumps(model_options, sort_keys=True),
        "num_features": num_features,
        "num_classes": num_classes,
        **spec.train.model_dump(),
        **terms,
    }


def initial_parameters(spec: JobSpec, *, num_features: int, num_classes: int) -> Parameters:
    """The global model before round 1, initialised from the job seed, with a given scaling.

    Raises
    ------
    ConfigError
        If ``[model] input_mean`` / ``input_std`` do not have one number per feature.
    """
    model = create_model(
        spec.model.name,
        num_features=num_features,
        num_classes=num_classes,
        seed=spec.job.seed,
        **spec.model.options,
    )
    parameters = get_parameters(model)
    if spec.model.input_mean is None or spec.model.input_std is None:
        return parameters
    if len(spec.model.input_mean) != num_features:
        raise ConfigError(
            f"'[model] input_mean' and 'input_std' hold {len(spec.model.input_mean)} numbers, "
            f"but the data has {num_features} feature columns: give one per column, in order."
        )
    tensors = dict(parameters)
    if "input_mean" not in tensors or "input_std" not in tensors:
        raise ConfigError(
            f"Model {spec.model.name!r} has no 'input_mean' / 'input_std' to hold the scaling "
            "given in [model]; drop them from the job."
        )
    for key, values in (("input_mean", spec.model.input_mean), ("input_std", spec.model.input_std)):
        tensors[key] = np.asarray(values, dtype=np.float32).reshape(tensors[key].shape)
    return Parameters(tensors)


def build_strategy(spec: JobSpec) -> Strategy:
    """The strategy the job names, with its options, wrapped for the job's ``[privacy]`` mode."""
    strategy = create_strategy(spec.strategy.name, **spec.strategy.options)
    if spec.privacy.sample_level:
        return SampleLevelPrivate(strategy, section=spec.privacy, rounds=spec.job.rounds)
    if spec.privacy.enabled:
        return DifferentiallyPrivate(
            strategy,
            section=spec.privacy,
            rounds=spec.job.rounds,
            secure_aggregation=spec.secure_aggregation,
        )
    return strategy


def test_set_evaluator(
    spec: JobSpec,
    features: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    *,
    num_classes: int,
) -> CentralEvaluator:
    """Evaluate global parameters on a test set the coordinator holds."""
    model = create_model(
        spec.model.name,
        num_features=features.shape[1],
        num_classes=num_classes,
        seed=0,
        **spec.model.options,
    )

    def _evaluate(parameters: Parameters) -> dict[str, float]:
        set_parameters(model, parameters)
        report = evaluate(model, features, labels)
        return {"loss": report.loss, "accuracy": report.accuracy}

    return _evaluate


def build_coordinator(
    spec: JobSpec,
    *,
    transport: Transport,
    num_features: int,
    num_classes: int,
    store: CheckpointStore | None = None,
    central_evaluator: CentralEvaluator | None = None,
    observer: RoundObserver | None = None,
    max_node_wait_s: float | None = 0.0,
) -> Coordinator:
    """The job's coordinator over ``transport``: one construction for simulation and deployment.

    ``max_node_wait_s`` bounds how long each round waits for the strategy's minimum number of
    nodes (``None``: as long as it takes, as a deployed coordinator does by default).
    """
    return Coordinator(
        job_id=spec.job_id,
        strategy=build_strategy(spec),
        transport=transport,
        initial_parameters=initial_parameters(
            spec, num_features=num_features, num_classes=num_classes
        ),
        rounds=spec.job.rounds,
        seed=spec.job.seed,
        stage_config=stage_config(spec, num_features=num_features, num_classes=num_classes),
        store=store,
        round_timeout_s=spec.coordinator.round_timeout_s,
        max_round_attempts=spec.coordinator.max_round_attempts,
        evaluate_every=spec.coordinator.evaluate_every,
        central_evaluator=central_evaluator,
        observer=observer,
        standardize_features=spec.coordinator.standardize_features,
        wait_for_nodes=spec.coordinator.wait_for_nodes,
        wait_for_nodes_s=spec.coordinator.wait_for_nodes_s,
        max_node_wait_s=max_node_wait_s,
        max_examples_per_node=spec.coordinator.max_examples_per_node,
        secure_aggregation=spec.secure_aggregation,
    )


def open_store(spec: JobSpec, state_dir: str | Path) -> CheckpointStore:
    """The durable state folder of ``spec``'s job, refusing one that belongs to another job."""
    store = CheckpointStore(state_dir)
    try:
        store.bind_job(job_id=spec.job_id, spec_digest=spec.digest, spec_json=spec.canonical_json())
    except BaseException:
        store.close()
        raise
    return store
