"""``ward_net``: a small residual network for tabular hospital data.

A model factory for the Sovereign AI Framework (entry point group ``sovereign_ai.models``). The
framework calls it as ``ward_net(num_features=..., num_classes=..., generator=..., **options)``,
where the options are the extra keys of the job's ``[model]`` section (here ``width`` and
``depth``), and wraps the result in its own input standardisation.

The rules every factory follows, so that every node starts from the same weights:

* every random initial value is drawn from ``generator`` (never from torch's global generator):
  layers are created on the ``meta`` device, moved with ``to_empty`` and initialised explicitly;
* no dropout and no batch normalisation: they make training depend on more than the seed and the
  data, and batch statistics do not average across sites. Layer normalisation is per example and
  deterministic, so it is fine.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sovereign_ai.errors import ConfigError

__all__ = ["WardNet", "ward_net"]


def _linear(in_features: int, out_features: int, generator: torch.Generator) -> nn.Linear:
    """A linear layer with torch's default initialisation scheme, drawn from ``generator``."""
    layer = nn.Linear(in_features, out_features, device="meta").to_empty(device="cpu")
    bound = 1.0 / math.sqrt(in_features)
    with torch.no_grad():
        nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def _layer_norm(width: int) -> nn.LayerNorm:
    """Layer normalisation starting as the identity (no random values)."""
    norm = nn.LayerNorm(width, device="meta").to_empty(device="cpu")
    with torch.no_grad():
        norm.weight.fill_(1.0)
        norm.bias.zero_()
    return norm


class _ResidualBlock(nn.Module):
    """``x + linear(relu(norm(x)))``: keeps the width, so blocks stack."""

    def __init__(self, width: int, generator: torch.Generator) -> None:
        super().__init__()
        self.norm = _layer_norm(width)
        self.linear = _linear(width, width, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step: torch.Tensor = self.linear(torch.relu(self.norm(x)))  # (n, width)
        return x + step


class WardNet(nn.Module):
    """Embed the features, refine them with residual blocks, map them to class logits."""

    def __init__(
        self,
        *,
        num_features: int,
        num_classes: int,
        width: int,
        depth: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.embed = _linear(num_features, width, generator)
        self.blocks = nn.ModuleList(_ResidualBlock(width, generator) for _ in range(depth))
        self.head = _linear(width, num_classes, generator)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.embed(features)  # (n, width)
        for block in self.blocks:
            x = block(x)  # (n, width)
        logits: torch.Tensor = self.head(torch.relu(x))  # (n, num_classes)
        return logits


def ward_net(
    *,
    num_features: int,
    num_classes: int,
    generator: torch.Generator,
    width: int = 32,
    depth: int = 2,
) -> nn.Module:
    """Build a :class:`WardNet`; ``width`` and ``depth`` are the job's model options."""
    for label, value in (("width", width), ("depth", depth)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            # ConfigError: the framework's commands print it as one line, not a traceback.
            raise ConfigError(
                f"The {label!r} option of model 'ward_net' must be a positive integer; "
                f"got {value!r} instead."
            )
    return WardNet(
        num_features=num_features,
        num_classes=num_classes,
        width=width,
        depth=depth,
        generator=generator,
    )
