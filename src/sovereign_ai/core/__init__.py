"""Shared building blocks: parameters, round messages, the seams features plug into, and plug-ins.

Depends on numpy and the standard library only (safetensors is imported lazily for serialisation;
the transports stream parameters with :mod:`sovereign_ai.core.safetensors_stream`).
"""

from sovereign_ai.core.parameters import FloatArray, Parameters, ParameterSpec
from sovereign_ai.core.plugins import PluginEntryPoint, PluginRegistry, discover_plugins
from sovereign_ai.core.protocols import NodeInstruction, StageOutcome, Strategy, Transport
from sovereign_ai.core.records import ConfigValue, Metrics, Result, Stage, Task
from sovereign_ai.core.safetensors_stream import EncodedTensors

__all__ = [
    "ConfigValue",
    "EncodedTensors",
    "FloatArray",
    "Metrics",
    "NodeInstruction",
    "ParameterSpec",
    "Parameters",
    "PluginEntryPoint",
    "PluginRegistry",
    "Result",
    "Stage",
    "StageOutcome",
    "Strategy",
    "Task",
    "Transport",
    "discover_plugins",
]
