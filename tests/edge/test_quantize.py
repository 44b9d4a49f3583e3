from __future__ import annotations

import numpy as np
import onnx
import pytest

from sovereign_ai.edge import (
    export_onnx,
    open_session,
    quantize_int8_dynamic,
    quantize_int8_static,
    run_logits,
)
from sovereign_ai.errors import DataError

from .conftest import accuracy, split, trained

# Static int8 on the operator's rows costs at most 1 point of holdout accuracy here (the
# export command's default bound is 0.3 points; one holdout row of digits is 0.19 points).
MAX_DROP_POINTS = 1.0


@pytest.mark.parametrize(
    ("model", "dataset"), [("mlp", "digits"), ("mlp", "breast_cancer"), ("cnn", "digits")]
)
def test_static_int8_keeps_accuracy_on_bundled_data(model: str, dataset: str) -> None:
    net = trained(model, dataset)
    rows, holdout = split(dataset)
    fp32 = export_onnx(net, num_features=rows.num_features)
    int8 = quantize_int8_static(fp32, rows.features[:256])  # calibrated on "operator" rows
    before = accuracy(run_logits(open_session(fp32), holdout.features), holdout.labels)
    after_logits = run_logits(open_session(int8), holdout.features)
    after = accuracy(after_logits, holdout.labels)
    assert before > 0.85
    assert (before - after) * 100 <= MAX_DROP_POINTS
    agreement = np.mean(
        after_logits.argmax(1) == run_logits(open_session(fp32), holdout.features).argmax(1)
    )
    assert agreement >= 0.97
    graph = onnx.load_from_string(int8).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights  # (size: the benchmark; tiny graphs grow by their scales)


def test_dynamic_quantisation_touches_only_matmul_and_gemm() -> None:
    net = trained("cnn", "digits")
    fp32 = export_onnx(net, num_features=64)
    graph = onnx.load_from_string(quantize_int8_dynamic(fp32)).graph
    ops = [node.op_type for node in graph.node]
    assert "Conv" in ops and "ConvInteger" not in ops  # conv stays fp32
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops  # the head is int8
    quantised = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    consumers = {i: n.op_type for n in graph.node for i in n.input}
    # every int8 weight feeds the int8 MatMul (directly, or via its scale/zero-point)
    assert quantised and {consumers[name] for name in quantised} <= {"MatMulInteger"}
    conv_weights = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    assert all(
        t.data_type == onnx.TensorProto.FLOAT for t in graph.initializer if t.name in conv_weights
    )


def test_calibration_rows_must_be_finite_and_non_empty() -> None:
    fp32 = export_onnx(trained("logreg", "iris", epochs=1), num_features=4)
    with pytest.raises(DataError, match="non-empty, finite"):
        quantize_int8_static(fp32, np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(DataError, match="NaN"):
        quantize_int8_static(fp32, np.full((4, 4), np.nan, dtype=np.float32))
