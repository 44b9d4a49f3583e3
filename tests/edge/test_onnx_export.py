from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from sovereign_ai.data import builtin_names
from sovereign_ai.edge import check_equivalence, export_onnx, graph_signature
from sovereign_ai.errors import ConfigError

from .conftest import split, trained

CASES = [(m, d) for d in builtin_names() for m in ("logreg", "mlp")] + [("cnn", "digits")]


@pytest.mark.parametrize(("model", "dataset"), CASES)
def test_fp32_graph_matches_pytorch_on_every_bundled_dataset(model: str, dataset: str) -> None:
    net = trained(model, dataset, epochs=2)
    train_rows, holdout = split(dataset)
    graph = export_onnx(net, num_features=holdout.num_features)
    onnx.checker.check_model(onnx.load_from_string(graph), full_check=True)
    raw = np.concatenate([train_rows.features, holdout.features])  # unscaled: scaling is inside
    report = check_equivalence(net, graph, raw)
    assert report.rows == len(raw)
    assert report.max_abs_diff <= 1e-4
    assert report.agreement == 1.0
    inputs, outputs = graph_signature(graph)
    assert [(s.name, s.datatype, s.shape) for s in inputs] == [
        ("features", "FP32", (-1, holdout.num_features))
    ]
    assert [(s.name, s.shape) for s in outputs] == [("logits", (-1, holdout.num_classes))]


def test_scaling_is_inside_the_graph() -> None:
    net = trained("mlp", "wine", epochs=2)
    graph = export_onnx(net, num_features=13)
    ops = [node.op_type for node in onnx.load_from_string(graph).graph.node]
    assert ops[:2] == ["Sub", "Div"]  # (x - input_mean) / input_std


def test_a_graph_that_differs_from_the_model_is_refused() -> None:
    net = trained("logreg", "iris", epochs=2)
    graph = export_onnx(net, num_features=4)
    other = trained("logreg", "iris", epochs=2)
    changed = type(other)(other.body, num_features=4)
    changed.load_state_dict(other.state_dict())
    with torch.no_grad():
        changed.body.linear.bias.add_(0.01)
    with pytest.raises(ConfigError, match=r"differ from PyTorch's by up to 0\.01"):
        check_equivalence(changed, graph, split("iris")[1].features)
