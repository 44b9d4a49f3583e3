"""A node: one data owner's site. It holds the data, trains locally and decides what it answers.

The node resolves the model *by name* from the models installed locally (``sovereign_ai.learning``);
a task carries only the name, its options as JSON, and tensors. Nothing executable is received.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import ConfigValue, Parameters, Result, Stage, Task
from sovereign_ai.errors import ConfigError, DataError
from sovereign_ai.federation.egress import EgressPipeline
from sovereign_ai.learning import (
    TrainConfig,
    TrainReport,
    create_model,
    evaluate,
    get_parameters,
    model_names,
    set_parameters,
    train,
)
from sovereign_ai.learning.zoo import MODEL_PLUGIN_GROUP

__all__ = [
    "EVALUATE_METRICS",
    "JOB_TERMS",
    "TRAIN_METRICS",
    "LocalData",
    "LocalTrainer",
    "Node",
    "StageHandler",
    "TaskCheck",
]

JOB_TERMS = ("job_rounds", "job_secure_aggregation", "job_privacy_mode", "job_min_nodes")
"""Task settings by which a job declares its terms with every task (``assembly.stage_config``):
its rounds, whether it runs secure aggregation, its ``[privacy] mode`` and its strategy's
minimum of training nodes. A node's policy judges the job on them at its first task
(:mod:`sovereign_ai.federation.governed_node`); other nodes ignore them."""

_TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_COMMON_SETTINGS = frozenset(
    {
        "model",
        "model_options",
        "model_plugin",
        "num_features",
        "num_classes",
        "seed",
        *_TRAIN_KEYS,
        *JOB_TERMS,
    }
)  # what the coordinator sends with every task of a plain round (federation/assembly.py)

TRAIN_METRICS = ("train_loss", "train_accuracy")
"""The metrics a node reports with its update; the coordinator refuses any other name."""
EVALUATE_METRICS = ("loss", "accuracy")
"""The metrics a node reports from local evaluation; the coordinator refuses any other name."""


@dataclass(frozen=True)
class LocalData:
    """A node's rows, already split for local training and local evaluation.

    Parameters
    ----------
    train_features, train_labels
        ``(n, d)`` float32 and ``(n,)`` int64.
    test_features, test_labels
        ``(m, d)`` and ``(m,)``; may be empty (the node then declines evaluation tasks).
    """

    train_features: npt.NDArray[np.float32]
    train_labels: npt.NDArray[np.int64]
    test_features: npt.NDArray[np.float32]
    test_labels: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        if len(self.train_features) == 0:
            raise DataError("A node needs at least one training row; got none.")
        if len(self.train_features) != len(self.train_labels):
            raise DataError(
                f"Training features have {len(self.train_features)} rows but labels "
                f"{len(self.train_labels)}."
            )
        if len(self.test_features) != len(self.test_labels):
            raise DataError(
                f"Test features have {len(self.test_features)} rows but labels "
                f"{len(self.test_labels)}."
            )


StageHandler = Callable[[Task], Result]
"""Carries out one kind of task with the node's data and returns the answer."""

LocalTrainer = Callable[[Task, Any, TrainConfig], TrainReport]
"""Trains the task's model (set to the task's weights) in place on the node's training rows."""

TaskCheck = Callable[[Task], None]
"""Raises to refuse a task before its handler runs (a site's policy); returns to let it run."""


class Node:
    """Answers tasks from the coordinator with its local data.

    Stage handlers are registered by stage name (statistics, train and evaluate are built in;
    capabilities register theirs with :meth:`register_stage`), and every answer leaves through
    the node's :attr:`egress` pipeline.

    Parameters
    ----------
    node_id
        The node's name in the federation.
    data
        Its local rows.
    """

    def __init__(self, node_id: str, *, data: LocalData) -> None:
        self.node_id = node_id
        self.data = data
        self.egress = EgressPipeline()
        self._models: dict[tuple[str, str, int, int], Any] = {}
        self._handlers: dict[str, StageHandler] = {}
        self._settings: set[str] = set(_COMMON_SETTINGS)
        self._task_checks: list[TaskCheck] = []
        self.trainer: LocalTrainer = self._train_plainly
        """How the train stage trains; a capability may wrap it (DP-SGD: ``private_node``)."""
        self.register_stage(Stage.STATISTICS, self._statistics)
        self.register_stage(Stage.TRAIN, self._train)
        self.register_stage(Stage.EVALUATE, self._evaluate)

    def register_stage(
        self, stage: Stage, handler: StageHandler, *, settings: Iterable[str] = ()
    ) -> None:
        """Answer tasks of ``stage`` with ``handler``, which may read the task ``settings`` named.

        Raises
        ------
        ConfigError
            If the stage already has a handler.
        """
        if stage.value in self._handlers:
            raise ConfigError(f"Node {self.node_id!r} already handles stage {stage.value!r}.")
        self._handlers[stage.value] = handler
        self._settings.update(settings)

    def register_settings(self, settings: Iterable[str]) -> None:
        """Let tasks carry ``settings``, which an egress filter (not a stage handler) reads."""
        self._settings.update(settings)

    def add_task_check(self, check: TaskCheck) -> None:
        """Run ``check`` on every task before its handler, so a refused task costs no work.

        The egress pipeline still sees every answer; a check here keeps a task the site refuses
        from being computed at all (no training, no privacy budget spent on it).
        """
        self._task_checks.append(check)

    def handler_for(self, stage: Stage) -> StageHandler:
        """The handler registered for ``stage`` (a capability may run another stage's handler).

        Raises
        ------
        ConfigError
            If the node does not handle ``stage``.
        """
        handler = self._handlers.get(stage.value)
        if handler is None:
            raise ConfigError(
                f"Node {self.node_id!r} does not handle stage {stage.value!r}; it handles "
                f"{', '.join(sorted(self._handlers))}."
            )
        return handler

    def handle(self, task: Task) -> Result:
        """Carry out one task and return the answer, as it leaves through :attr:`egress`.

        Raises
        ------
        ConfigError
            If the task is addressed to another node, is of a stage this node does not handle,
            carries a setting it does not understand, or names a model it does not have.
        PolicyRefusalError
            If a task check (:meth:`add_task_check`) or the egress pipeline's policy refuses it.
        """
        if task.node_id != self.node_id:
            raise ConfigError(f"Task for node {task.node_id!r} reached node {self.node_id!r}.")
        handler = self.handler_for(task.stage)
        unknown = sorted(set(task.config) - self._settings)
        if unknown:
            raise ConfigError(
                f"Node {self.node_id!r} does not understand the task setting(s) "
                f"{', '.join(repr(k[:40]) for k in unknown[:5])}: the coordinator runs a newer or "
                "different version of the framework, or a capability this node lacks. Refused "
                "rather than ignored."
            )
        for check in self._task_checks:
            check(task)
        return self.egress(task, handler(task))

    # Stages -------------------------------------------------------------------------------------
    def _statistics(self, task: Task) -> Result:
        self._check_width(task)
        features = self.data.train_features.astype(np.float64)
        stats = Parameters(
            {
                "count": np.array([len(features)], dtype=np.float32),
                "sum": features.sum(axis=0),
                "sum_sq": np.square(features).sum(axis=0),
            }
        )
        return self._answer(task, num_examples=len(features), parameters=stats, metrics={})

    def _train(self, task: Task) -> Result:
        model = self._model(task)
        set_parameters(model, task.parameters)
        report = self.trainer(task, model, TrainConfig(**_train_settings(task.config)))
        local = get_parameters(model)
        update = local.with_vector(local.flatten() - task.parameters.flatten())
        return self._answer(
            task,
            num_examples=report.num_examples,
            parameters=update,
            metrics=dict(zip(TRAIN_METRICS, (report.loss, report.accuracy), strict=True)),
        )

    def _train_plainly(self, task: Task, model: Any, config: TrainConfig) -> TrainReport:
        return train(
            model,
            self.data.train_features,
            self.data.train_labels,
            config=config,
            seed=int(task.config.get("seed", 0)),
        )

    def _evaluate(self, task: Task) -> Result:
        if len(self.data.test_labels) == 0:
            return self._answer(task, num_examples=0, parameters=Parameters({}), metrics={})
        model = self._model(task)
        set_parameters(model, task.parameters)
        report = evaluate(model, self.data.test_features, self.data.test_labels)
        metrics = {k: v for k, v in report.to_metrics().items() if k in EVALUATE_METRICS}
        return self._answer(
            task, num_examples=report.num_examples, parameters=Parameters({}), metrics=metrics
        )

    # Helpers ------------------------------------------------------------------------------------
    def model_for(self, task: Task) -> Any:
        """The model ``task`` names, as this node builds it (kept for the job's later tasks).

        Raises
        ------
        ConfigError
            If the node does not have the model, or its options are not a JSON object.
        DataError
            If the job's input width is not this node's.
        """
        return self._model(task)

    def _model(self, task: Task) -> Any:
        name = str(task.config.get("model", ""))
        options_json = str(task.config.get("model_options", "{}"))
        num_features = self._check_width(task)
        num_classes = int(task.config.get("num_classes", 0))
        key = (name, options_json, num_features, num_classes)
        if key not in self._models and name not in model_names():
            plugin = str(task.config.get("model_plugin", ""))
            package = f"'{plugin}'" if plugin else "that provides it"
            raise ConfigError(
                f"This node does not have model {name!r}; install the plug-in package {package} "
                f"(entry point group {MODEL_PLUGIN_GROUP}) on this machine."
                + ("" if plugin else " The job does not name that package ([model] plugin).")
            )
        if key not in self._models:
            try:
                options = json.loads(options_json)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"The task's model options are not JSON: {exc}.") from exc
            if not isinstance(options, dict):
                raise ConfigError(f"Model options must be a JSON object; got {options_json!r}.")
            self._models[key] = create_model(
                name, num_features=num_features, num_classes=num_classes, seed=0, **options
            )
        return self._models[key]

    def _check_width(self, task: Task) -> int:
        """The job's input width, which must be this node's: refuse the task otherwise."""
        width = self.data.train_features.shape[1]
        num_features = int(task.config.get("num_features", width))
        if num_features != width:
            raise DataError(
                f"The job expects {num_features} feature columns but node {self.node_id!r} has "
                f"{width}: check the site's file against the job with 'sovereign node check', "
                "or choose columns with --columns / --ignore-columns."
            )
        return num_features

    def _answer(
        self,
        task: Task,
        *,
        num_examples: int,
        parameters: Parameters,
        metrics: Mapping[str, float],
    ) -> Result:
        return Result(
            job_id=task.job_id,
            round_number=task.round_number,
            stage=task.stage,
            node_id=self.node_id,
            num_examples=int(num_examples),
            parameters=parameters,
            metrics={k: float(v) for k, v in metrics.items()},
        )


def _train_settings(config: Mapping[str, ConfigValue]) -> dict[str, Any]:
    return {key: config[key] for key in _TRAIN_KEYS if key in config}
