"""int8 with ONNX Runtime: static QDQ calibrated on the operator's rows, or dynamic on MatMul/Gemm.

Static quantisation fixes every activation's int8 range from calibration data. That data is the
node operator's own rows, read on the node: the coordinator holds none. Weights are quantised per
output channel (a conv or linear layer's channels differ in range by orders of magnitude), and
the graph is written in QDQ form (QuantizeLinear / DequantizeLinear pairs around each operator),
which ONNX Runtime fuses into int8 kernels.

Dynamic quantisation computes activation ranges at run time and only needs the weights. It is
restricted to MatMul and Gemm: ONNX Runtime's default also rewrites Conv into ConvInteger, which
has no fast kernel on x86 CPUs without VNNI and makes conv models 4–6 times slower there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sovereign_ai.errors import ConfigError, DataError

__all__ = ["DYNAMIC_OP_TYPES", "quantize_int8_dynamic", "quantize_int8_static"]

DYNAMIC_OP_TYPES = ("MatMul", "Gemm")
"""The only operators dynamic quantisation touches (see the module docstring)."""
_CALIBRATION_BATCH = 32


def _calibration_reader(input_name: str, rows: npt.NDArray[np.float32]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class _Rows(CalibrationDataReader):  # type: ignore[misc]
        """Feeds the operator's rows in batches of 32."""

        def __init__(self) -> None:
            self._batches = iter(
                [{input_name: rows[i : i + _CALIBRATION_BATCH]}
                 for i in range(0, len(rows), _CALIBRATION_BATCH)]
            )  # fmt: skip

        def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
            return next(self._batches, None)

    return _Rows()


def _input_name(model_bytes: bytes) -> str:
    import onnx

    graph = onnx.load_from_string(model_bytes).graph
    initializers = {tensor.name for tensor in graph.initializer}
    return str(next(value.name for value in graph.input if value.name not in initializers))


def quantize_int8_static(model_bytes: bytes, calibration: npt.ArrayLike) -> bytes:
    """Static int8 (QDQ, per-channel weights) calibrated on the operator's ``calibration`` rows.

    Parameters
    ----------
    model_bytes
        An fp32 graph (from :func:`~sovereign_ai.edge.export_onnx`).
    calibration
        Raw feature rows ``(rows, num_features)`` as the model will see them; a few hundred
        representative rows suffice. Ranges are the min/max seen (ONNX Runtime's MinMax).

    Raises
    ------
    DataError
        If ``calibration`` is empty, not 2-D, or not finite.
    ConfigError
        If ONNX Runtime cannot quantise the graph.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    rows = np.ascontiguousarray(calibration, dtype=np.float32)  # (rows, num_features)
    if rows.ndim != 2 or len(rows) == 0 or not np.isfinite(rows).all():
        raise DataError(
            "The calibration rows must be a non-empty, finite (rows, features) array; got shape "
            f"{rows.shape}{'' if np.isfinite(rows).all() else ' with NaN or infinite values'}."
        )
    with tempfile.TemporaryDirectory(prefix="sovereign-quant-") as scratch:
        source, prepared, target = (Path(scratch) / n for n in ("in.onnx", "pre.onnx", "q.onnx"))
        source.write_bytes(model_bytes)
        try:
            # Folds constants and infers shapes, so that every tensor gets a range.
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(target),
                _calibration_reader(_input_name(model_bytes), rows),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
        except Exception as exc:  # ONNX Runtime's quantiser raises assorted builtins
            raise ConfigError(f"ONNX Runtime cannot quantise the graph (static): {exc}") from exc
        return target.read_bytes()


def quantize_int8_dynamic(model_bytes: bytes) -> bytes:
    """Dynamic int8 of the MatMul and Gemm weights only; every other operator stays fp32.

    Raises
    ------
    ConfigError
        If ONNX Runtime cannot quantise the graph.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="sovereign-quant-") as scratch:
        source, target = Path(scratch) / "in.onnx", Path(scratch) / "q.onnx"
        source.write_bytes(model_bytes)
        try:
            quantize_dynamic(
                str(source),
                str(target),
                op_types_to_quantize=list(DYNAMIC_OP_TYPES),
                weight_type=QuantType.QInt8,
            )
        except Exception as exc:  # as above
            raise ConfigError(f"ONNX Runtime cannot quantise the graph (dynamic): {exc}") from exc
        return target.read_bytes()
