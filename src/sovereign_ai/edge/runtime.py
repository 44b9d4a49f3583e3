"""ONNX Runtime sessions as the edge device runs them, and latency measured on this device."""

from __future__ import annotations

import os
import statistics
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sovereign_ai.errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["default_threads", "measure_latency_ms", "open_session", "run_logits"]

_EVAL_BATCH = 1024


def default_threads() -> int:
    """Threads inside one operator: the usable cores, at most 4.

    On a 2-core machine that is 2; past 4 threads the small graphs of this project gain nothing
    (each operator is too short to split further) and a server's other work needs cores too.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, usable or 1))


def open_session(
    model_bytes: bytes, *, intra_op_threads: int | None = None
) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session over ``model_bytes``, every graph optimisation on.

    Parameters
    ----------
    model_bytes
        The serialised ONNX model.
    intra_op_threads
        Threads inside one operator; :func:`default_threads` when ``None``. Operators run one
        after another (one inter-op thread): these graphs are chains.

    Raises
    ------
    ConfigError
        If ONNX Runtime cannot load the graph.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: quantised graphs log benign warnings
    try:
        return ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ONNX Runtime raises its own unrelated exception classes
        raise ConfigError(f"ONNX Runtime cannot load the graph: {exc}") from exc


def run_logits(
    session: onnxruntime.InferenceSession, features: npt.ArrayLike
) -> npt.NDArray[np.float32]:
    """The graph's first output for ``features`` ``(rows, num_features)``, in batches of 1024."""
    x = np.ascontiguousarray(features, dtype=np.float32)  # (rows, num_features)
    name = session.get_inputs()[0].name
    parts = [
        np.asarray(session.run(None, {name: x[start : start + _EVAL_BATCH]})[0], dtype=np.float32)
        for start in range(0, len(x), _EVAL_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def measure_latency_ms(
    session: onnxruntime.InferenceSession,
    features: npt.ArrayLike,
    *,
    batch_size: int,
    runs: int = 200,
    warmup: int = 20,
) -> float:
    """Median wall time of one ``session.run`` on ``batch_size`` rows, in milliseconds.

    The rows are the first ``batch_size`` of ``features`` (repeated if there are fewer). The
    first ``warmup`` runs are discarded (allocation, caches); the median of ``runs`` after them
    is robust to the odd descheduled run.
    """
    if batch_size < 1 or runs < 1 or warmup < 0:
        raise ConfigError(
            "measure_latency_ms needs batch_size >= 1, runs >= 1 and warmup >= 0; got "
            f"{batch_size!r}, {runs!r}, {warmup!r}."
        )
    x = np.ascontiguousarray(features, dtype=np.float32)  # (rows, num_features)
    if len(x) == 0:
        raise ConfigError("measure_latency_ms needs at least one row of features.")
    batch = np.ascontiguousarray(np.resize(x, (batch_size, x.shape[1])))  # (batch, features)
    feeds: dict[str, Any] = {session.get_inputs()[0].name: batch}
    for _ in range(warmup):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3
