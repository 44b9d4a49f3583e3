"""Magnitude pruning with fine-tuning on the node.

The smallest-magnitude weights of every Linear and Conv layer, taken together (global
unstructured L1 pruning, Han et al., "Learning both Weights and Connections for Efficient Neural
Networks", NeurIPS 2015), are set to zero; the model is then fine-tuned with the zeros held by a
mask, and the mask is folded into the weights (``torch.nn.utils.prune.remove``) so the model
exports as an ordinary graph.

The zeros do not make a dense ONNX Runtime kernel faster; they make the file compress. We store
the graph as it is (ONNX Runtime loads dense weights) and report its gzip size, which is what a
bundle costs to ship as an archive (``tar czf``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

from sovereign_ai.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["prune_magnitude", "weight_sparsity"]


def _prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    from torch import nn

    return [
        (module, "weight")
        for module in model.modules()
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)
    ]


def prune_magnitude(
    model: nn.Module,
    *,
    sparsity: float,
    fine_tune: Callable[[nn.Module], None] | None = None,
) -> nn.Module:
    """A pruned copy of ``model``: ``sparsity`` of its Linear/Conv weights set to zero.

    Parameters
    ----------
    model
        Left unchanged.
    sparsity
        The share of weights (not biases) to zero, in (0, 1), chosen globally by magnitude.
    fine_tune
        Trains the pruned copy in place (e.g. a few epochs on the node's rows); the zeros stay
        zero throughout. ``None`` prunes without fine-tuning.

    Returns
    -------
    nn.Module
        The pruned, fine-tuned copy with plain weights (no pruning re-parametrisation).

    Raises
    ------
    ConfigError
        If ``sparsity`` is not in (0, 1) or the model has no Linear or Conv layer.
    """
    from torch.nn.utils import prune

    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0 < sparsity < 1:
        raise ConfigError(
            f"The 'sparsity' parameter of prune_magnitude must be in (0, 1); got {sparsity!r}."
        )
    pruned = copy.deepcopy(model)
    layers = _prunable(pruned)
    if not layers:
        raise ConfigError("The model has no Linear or Conv layer to prune.")
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    if fine_tune is not None:
        fine_tune(pruned)  # weight = weight_orig * weight_mask: the zeros get no gradient
    for module, name in layers:
        prune.remove(module, name)  # type: ignore[no-untyped-call]
    pruned.eval()
    return pruned


def weight_sparsity(model: nn.Module) -> float:
    """The share of exact zeros among the weights of every Linear and Conv layer."""
    layers = _prunable(model)
    total = sum(int(getattr(module, name).numel()) for module, name in layers)
    zeros = sum(int((getattr(module, name) == 0).sum()) for module, name in layers)
    return zeros / total if total else 0.0
