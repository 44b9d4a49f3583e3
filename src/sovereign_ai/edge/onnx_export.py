"""PyTorch to ONNX, with the proof that the graph computes what the model does.

The model's input scaling (``StandardizedModel``'s ``input_mean`` / ``input_std`` buffers) is
traced into the graph, so the exported model takes raw features.

We use torch's TorchScript-based exporter (``dynamo=False``): measured on this project's models
(torch 2.13, 2 cores) it exports ``mlp`` in 0.04 s against 4.5 s for the ``torch.export``-based
one, and ``cnn`` in 0.02 s against 1.5 s, with the same operators (Sub, Div, Reshape, Conv, Relu,
MaxPool, Gemm). Both pass the ONNX checker; the equivalence check below holds for either.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sovereign_ai.edge.bundle import TensorSpec
from sovereign_ai.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["EquivalenceReport", "check_equivalence", "export_onnx", "graph_signature"]

INPUT_NAME = "features"
OUTPUT_NAME = "logits"
OPSET = 17
ATOL = 1e-4
"""Absolute tolerance on every logit, fp32 ONNX Runtime against PyTorch eager."""
RTOL = 1e-5
"""Relative tolerance on every logit (``|a - b| <= ATOL + RTOL * |b|``, as ``numpy.allclose``)."""


def export_onnx(model: nn.Module, *, num_features: int) -> bytes:
    """The ONNX bytes of ``model``: ``features`` ``(rows, num_features)`` FP32 → ``logits``.

    The batch dimension is symbolic (``rows``), so one graph serves any batch size. The graph
    passes ``onnx.checker.check_model(..., full_check=True)``.

    Raises
    ------
    ConfigError
        If torch cannot export the model, or the ONNX checker refuses the graph.
    """
    import onnx
    import torch

    was_training = model.training
    model.eval()
    buffer = io.BytesIO()
    example = torch.zeros(2, num_features, dtype=torch.float32)  # (rows, num_features)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation notice; see module doc
            torch.onnx.export(
                model,
                (example,),
                buffer,  # type: ignore[arg-type]  # a file object works; stubs say path
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "rows"}, OUTPUT_NAME: {0: "rows"}},
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:  # torch raises many unrelated classes while tracing
        raise ConfigError(f"The model cannot be exported to ONNX: {exc}") from exc
    finally:
        model.train(was_training)
    data = buffer.getvalue()
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError and shape-inference errors
        raise ConfigError(f"The exported graph fails the ONNX checker: {exc}") from exc
    return data


def graph_signature(model_bytes: bytes) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The graph's inputs and outputs as bundle :class:`TensorSpec` (symbolic dims as -1)."""
    import onnx

    graph = onnx.load_from_string(model_bytes).graph
    datatypes = {onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.DOUBLE: "FP64",
                 onnx.TensorProto.INT64: "INT64", onnx.TensorProto.INT32: "INT32",
                 onnx.TensorProto.BOOL: "BOOL"}  # fmt: skip
    initializers = {tensor.name for tensor in graph.initializer}

    def specs(values: object) -> tuple[TensorSpec, ...]:
        found = []
        for value in values:  # type: ignore[attr-defined]
            if value.name in initializers:
                continue
            tensor = value.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
            found.append(
                TensorSpec(name=value.name, datatype=datatypes[tensor.elem_type], shape=shape)  # type: ignore[arg-type]
            )
        return tuple(found)

    return specs(graph.input), specs(graph.output)


@dataclass(frozen=True)
class EquivalenceReport:
    """How closely an fp32 graph reproduces the PyTorch model's logits.

    Parameters
    ----------
    rows
        Rows compared.
    max_abs_diff
        Largest ``|onnx - torch|`` over every logit.
    agreement
        Share of rows whose predicted class is the same.
    """

    rows: int
    max_abs_diff: float
    agreement: float


def check_equivalence(
    model: nn.Module, model_bytes: bytes, features: npt.ArrayLike
) -> EquivalenceReport:
    """Run ``features`` through PyTorch and the fp32 graph and demand the same logits.

    Every logit must satisfy ``|onnx - torch| <= 1e-4 + 1e-5 * |torch|``.

    Raises
    ------
    ConfigError
        If any logit differs by more, naming the largest difference and its row.
    """
    import torch

    from sovereign_ai.edge.runtime import open_session, run_logits

    x = np.ascontiguousarray(features, dtype=np.float32)  # (rows, num_features)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = model(torch.from_numpy(x.copy())).numpy()  # (rows, num_classes)
    finally:
        model.train(was_training)
    got = run_logits(open_session(model_bytes), x)  # (rows, num_classes)
    difference = np.abs(got - expected)
    worst = float(difference.max()) if difference.size else 0.0
    if not np.all(difference <= ATOL + RTOL * np.abs(expected)):
        row = int(np.unravel_index(int(difference.argmax()), difference.shape)[0])
        raise ConfigError(
            f"The ONNX graph's logits differ from PyTorch's by up to {worst:.3g} (row {row}); "
            f"the export must match within {ATOL:g} + {RTOL:g} x |logit|. Do not ship it."
        )
    agreement = float(np.mean(got.argmax(axis=1) == expected.argmax(axis=1))) if len(x) else 1.0
    return EquivalenceReport(rows=len(x), max_abs_diff=worst, agreement=agreement)
