"""Local learning on a node: a model zoo resolved by name, torch training and evaluation.

Models are built from names installed on the node (:func:`create_model`: built-ins, and models of
plug-in packages declaring entry points of group ``sovereign_ai.models``), weights move in and
out as :class:`~sovereign_ai.core.Parameters` (:func:`get_parameters`, :func:`set_parameters`), and
:func:`train` (or :func:`train_private`, DP-SGD) / :func:`evaluate` work on float32 ``(n, d)``
features and int64 ``(n,)`` labels.
Importing this package imports torch.
"""

from sovereign_ai.learning.convert import get_parameters, set_parameters
from sovereign_ai.learning.evaluation import ClassMetrics, EvaluationReport, evaluate
from sovereign_ai.learning.private_training import (
    DpSgdConfig,
    DpSgdSchedule,
    dpsgd_schedule,
    train_private,
)
from sovereign_ai.learning.trainer import TrainConfig, TrainReport, train
from sovereign_ai.learning.zoo import (
    ModelFactory,
    StandardizedModel,
    create_model,
    model_names,
    register_model,
)

__all__ = [
    "ClassMetrics",
    "DpSgdConfig",
    "DpSgdSchedule",
    "EvaluationReport",
    "ModelFactory",
    "StandardizedModel",
    "TrainConfig",
    "TrainReport",
    "create_model",
    "dpsgd_schedule",
    "evaluate",
    "get_parameters",
    "model_names",
    "register_model",
    "set_parameters",
    "train",
    "train_private",
]
