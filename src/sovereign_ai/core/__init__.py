"""Shared building blocks: parameters, round messages and the seams features plug into.

Depends on numpy and the standard library only (safetensors is imported lazily for serialisation).
"""

from sovereign_ai.core.parameters import FloatArray, Parameters, ParameterSpec
from sovereign_ai.core.protocols import NodeInstruction, StageOutcome, Strategy, Transport
from sovereign_ai.core.records import ConfigValue, Metrics, Result, Stage, Task

__all__ = [
    "ConfigValue",
    "FloatArray",
    "Metrics",
    "NodeInstruction",
    "ParameterSpec",
    "Parameters",
    "Result",
    "Stage",
    "StageOutcome",
    "Strategy",
    "Task",
    "Transport",
]
