from __future__ import annotations

import gzip

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from torch import nn

from sovereign_ai.edge import check_equivalence, export_onnx, prune_magnitude, weight_sparsity
from sovereign_ai.errors import ConfigError
from sovereign_ai.learning import TrainConfig, train

from .conftest import split, trained


def test_pruning_reaches_its_sparsity_survives_fine_tuning_and_export() -> None:
    net = trained("mlp", "digits", hidden=(64,))
    rows, holdout = split("digits")
    calls: list[nn.Module] = []

    def fine_tune(model: nn.Module) -> None:
        calls.append(model)
        config = TrainConfig(local_epochs=2, learning_rate=1e-3, optimizer="adam")
        train(model, rows.features, rows.labels, config=config, seed=0)

    pruned = prune_magnitude(net, sparsity=0.6, fine_tune=fine_tune)
    assert len(calls) == 1 and calls[0] is pruned
    assert weight_sparsity(pruned) == pytest.approx(0.6, abs=0.005)  # zeros kept while training
    assert weight_sparsity(net) == 0.0  # the original is untouched
    assert not any("_orig" in k or "_mask" in k for k in pruned.state_dict())  # plain weights
    graph = export_onnx(pruned, num_features=64)
    check_equivalence(pruned, graph, holdout.features)
    weights = [
        numpy_helper.to_array(t) for t in onnx.load_from_string(graph).graph.initializer
        if len(t.dims) == 2
    ]  # fmt: skip
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    assert zeros == pytest.approx(0.6, abs=0.005)
    dense = export_onnx(net, num_features=64)
    assert len(gzip.compress(graph)) < 0.75 * len(gzip.compress(dense))  # the zeros compress


def test_sparsity_must_be_a_share() -> None:
    with pytest.raises(ConfigError, match=r"in \(0, 1\)"):
        prune_magnitude(trained("logreg", "iris", epochs=1), sparsity=1.0)
    assert np.isclose(weight_sparsity(nn.Sequential(nn.ReLU())), 0.0)
