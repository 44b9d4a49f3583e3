"""Models resolved *by name* on the node: no code crosses the wire.

A job names a model (``"logreg"``, ``"mlp"``, ``"cnn"``, ``"he_mlp"``); every node builds it from
the factories installed locally, so the coordinator only ever sends tensors. Users add their own
architectures with :func:`register_model` (in one process), or ship them as a plug-in package that
every party installs: an entry point of group ``sovereign_ai.models`` naming a
:data:`ModelFactory`, found with :mod:`importlib.metadata` on the first lookup (see
:mod:`sovereign_ai.core.plugins`).

Built-in models have no dropout and no batch normalisation: both make local training depend on more
than the seed and the data, and batch statistics do not average meaningfully across nodes.

Initialisation draws from a local :class:`torch.Generator` seeded by the caller, never from torch's
global generator, so two threads building models at once get the same weights as one thread would.
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from sovereign_ai.core import PluginRegistry
from sovereign_ai.errors import ConfigError

__all__ = [
    "MODEL_PLUGIN_GROUP",
    "ModelFactory",
    "StandardizedModel",
    "create_model",
    "model_names",
    "register_model",
]

_RESERVED = frozenset({"num_features", "num_classes", "generator"})


ModelFactory = Callable[..., nn.Module]
"""Builds a freshly initialised model.

Called as ``factory(num_features=..., num_classes=..., generator=..., **options)``: the three
keywords always, plus the model-specific options the factory declares as keyword parameters (or
accepts through ``**options``). It must draw every random initial value from ``generator`` (e.g.
``nn.init.uniform_(w, generator=generator)``) and build layers without torch's global generator
(e.g. ``nn.Linear(..., device="meta").to_empty(device="cpu")``); built that way,
:func:`create_model` is deterministic given its seed and safe to call from several threads.
"""


def _linear(in_features: int, out_features: int, generator: torch.Generator) -> nn.Linear:
    """A linear layer with torch's default initialisation, drawn from ``generator``."""
    # Built on the meta device so torch's default init (global generator) never runs.
    layer = nn.Linear(in_features, out_features, device="meta", dtype=torch.float32)
    layer = layer.to_empty(device="cpu")
    _init_like_torch_default(layer.weight, layer.bias, generator)
    return layer


def _conv(in_channels: int, out_channels: int, generator: torch.Generator) -> nn.Conv2d:
    """A 3x3, same-padding convolution with torch's default initialisation, from ``generator``."""
    layer = nn.Conv2d(
        in_channels, out_channels, kernel_size=3, padding=1, device="meta", dtype=torch.float32
    )
    layer = layer.to_empty(device="cpu")
    _init_like_torch_default(layer.weight, layer.bias, generator)
    return layer


def _init_like_torch_default(
    weight: torch.Tensor, bias: torch.Tensor | None, generator: torch.Generator
) -> None:
    """The scheme of ``nn.Linear.reset_parameters`` / ``nn.Conv2d.reset_parameters``, seeded."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        if bias is not None:
            fan_in = weight[0].numel()  # in_features, or in_channels * kh * kw
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(bias, -bound, bound, generator=generator)


def _logreg(*, num_features: int, num_classes: int, generator: torch.Generator) -> nn.Module:
    """Multinomial logistic regression: one linear layer producing logits."""
    return nn.Sequential(OrderedDict(linear=_linear(num_features, num_classes, generator)))


def _mlp(
    *,
    num_features: int,
    num_classes: int,
    generator: torch.Generator,
    hidden: Sequence[int] = (32,),
) -> nn.Module:
    """Fully connected ReLU network with one hidden layer per entry of ``hidden``."""
    if (
        isinstance(hidden, str | bytes)
        or not isinstance(hidden, Sequence)
        or not hidden
        or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)
    ):
        raise ConfigError(
            "The 'hidden' option of model 'mlp' must be a non-empty sequence of positive "
            f"integers; got {hidden!r} instead."
        )
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    width = num_features
    for index, size in enumerate(hidden):
        layers[f"hidden_{index}"] = _linear(width, size, generator)
        layers[f"relu_{index}"] = nn.ReLU()
        width = size
    layers["output"] = _linear(width, num_classes, generator)
    return nn.Sequential(layers)


class Square(nn.Module):
    """``x * x``: the activation a CKKS ciphertext can take (one multiplication)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features * features


def _he_mlp(
    *, num_features: int, num_classes: int, generator: torch.Generator, hidden: int = 16
) -> nn.Module:
    """One hidden layer with a square activation, for encrypted inference (``sovereign_ai.he``).

    Exactly what is evaluated on ciphertexts: ``square(x W1 + b1) W2 + b2`` (depth 3). The
    hidden layer starts at a small scale so that squares stay in the range CKKS parameters
    hold; train it with a modest learning rate.
    """
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ConfigError(
            f"The 'hidden' option of model 'he_mlp' must be a positive integer; got {hidden!r}."
        )
    first = _linear(num_features, hidden, generator)
    with torch.no_grad():
        first.weight.mul_(0.5)
    return nn.Sequential(
        OrderedDict(hidden=first, square=Square(), output=_linear(hidden, num_classes, generator))
    )


class _SmallConvNet(nn.Module):
    """Two 3x3 convolutions for small square grey-scale images such as the 8x8 digits.

    conv(1→c1) → ReLU → 2x2 max-pool → conv(c1→c2) → ReLU → linear head.
    """

    def __init__(
        self, *, side: int, num_classes: int, channels: tuple[int, int], generator: torch.Generator
    ) -> None:
        super().__init__()
        self.side = side
        self.conv1 = _conv(1, channels[0], generator)
        self.conv2 = _conv(channels[0], channels[1], generator)
        self.pool = nn.MaxPool2d(2)
        pooled = side // 2
        self.head = _linear(channels[1] * pooled * pooled, num_classes, generator)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.reshape(-1, 1, self.side, self.side)  # (n, 1, s, s)
        x = self.pool(torch.relu(self.conv1(x)))  # (n, c1, s//2, s//2)
        x = torch.relu(self.conv2(x))  # (n, c2, s//2, s//2)
        x = x.flatten(start_dim=1)  # (n, c2 * (s//2)**2)
        logits: torch.Tensor = self.head(x)  # (n, num_classes)
        return logits


def _cnn(
    *,
    num_features: int,
    num_classes: int,
    generator: torch.Generator,
    channels: Sequence[int] = (8, 16),
) -> nn.Module:
    """Small conv net; ``num_features`` must be a perfect square (64 for 8x8 digits)."""
    side = math.isqrt(num_features)
    if side * side != num_features or side < 2:
        raise ConfigError(
            "The 'num_features' parameter of model 'cnn' must be a perfect square of at least 4 "
            f"(64 for 8x8 images); got {num_features!r} instead."
        )
    if (
        isinstance(channels, str | bytes)
        or not isinstance(channels, Sequence)
        or len(channels) != 2
        or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels)
    ):
        raise ConfigError(
            "The 'channels' option of model 'cnn' must be two positive integers; "
            f"got {channels!r} instead."
        )
    return _SmallConvNet(
        side=side,
        num_classes=num_classes,
        channels=(channels[0], channels[1]),
        generator=generator,
    )


class StandardizedModel(nn.Module):
    """Any model behind a fixed input standardisation, ``(x - input_mean) / input_std``.

    The two tensors are buffers, not trainable parameters: they travel with the weights (so the
    federation can set them from federated feature statistics, and an exported model scales its
    own inputs) but local training never changes them. They start as 0 and 1 (no scaling).
    """

    input_mean: torch.Tensor
    input_std: torch.Tensor

    def __init__(self, body: nn.Module, *, num_features: int) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(num_features, dtype=torch.float32))
        self.register_buffer("input_std", torch.ones(num_features, dtype=torch.float32))
        self.body = body

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        scaled = (features - self.input_mean) / self.input_std  # (n, num_features)
        logits: torch.Tensor = self.body(scaled)  # (n, num_classes)
        return logits


MODEL_PLUGIN_GROUP = "sovereign_ai.models"
"""Entry point group through which installed packages add models; each names a ModelFactory."""


def _factory_problem(candidate: object) -> str | None:
    """What keeps a plug-in's object from being a :class:`ModelFactory`, or ``None``."""
    if isinstance(candidate, nn.Module) or not callable(candidate):
        return (
            "it must name a model factory (a function or class building an nn.Module); got "
            f"{type(candidate).__name__} instead"
        )
    try:
        parameters = inspect.signature(candidate).parameters.values()
    except (TypeError, ValueError):
        return None  # a builtin without a signature: let the call decide
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    accepted = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    missing = sorted(_RESERVED - accepted)
    if missing:
        return f"the factory must accept the keyword argument(s) {', '.join(missing)}"
    return None


def _model_registry() -> PluginRegistry[ModelFactory]:
    """A registry holding the built-in models and reading the ``sovereign_ai.models`` group."""
    return PluginRegistry(
        kind="model",
        group=MODEL_PLUGIN_GROUP,
        built_ins={"logreg": _logreg, "mlp": _mlp, "cnn": _cnn, "he_mlp": _he_mlp},
        check=_factory_problem,
    )


_MODELS = _model_registry()


def register_model(name: str, factory: ModelFactory, *, allow_replace: bool = False) -> None:
    """Install a model factory under ``name`` so jobs can refer to it, in this process.

    To offer a model to every process of a federation without changing their code, ship it in a
    plug-in package instead: an entry point of group ``sovereign_ai.models`` naming the factory
    (see ``docs/plugins.md``).

    Parameters
    ----------
    name
        The name jobs use, e.g. ``"resnet_tiny"``.
    factory
        See :class:`ModelFactory`.
    allow_replace
        Replace an existing registration (or an installed plug-in's model) instead of refusing.

    Raises
    ------
    ConfigError
        If ``name`` is empty, ``factory`` is not callable, or the name is taken and
        ``allow_replace`` is false.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"The 'name' parameter of register_model must be a non-empty string; got {name!r} "
            "instead."
        )
    if not callable(factory):
        raise ConfigError(
            "The 'factory' parameter of register_model must be callable; "
            f"got {type(factory).__name__} instead."
        )
    _MODELS.register(name, factory, allow_replace=allow_replace)


def model_names() -> tuple[str, ...]:
    """Names of every model this process can build, sorted.

    Built-in models, models registered with :func:`register_model`, and models of installed
    plug-in packages (entry point group ``sovereign_ai.models``; listed without importing them).
    """
    return _MODELS.names()


def create_model(
    name: str, *, num_features: int, num_classes: int, seed: int, **options: Any
) -> StandardizedModel:
    """Build the model registered as ``name``, initialised deterministically from ``seed``.

    Parameters
    ----------
    name
        A registered model name; see :func:`model_names`.
    num_features
        Width of one input row.
    num_classes
        Number of output logits.
    seed
        Seed of the local generator all initial weights are drawn from.
    **options
        Model-specific options, e.g. ``hidden=(64, 32)`` for ``"mlp"``.

    Returns
    -------
    StandardizedModel
        Maps float32 features ``(n, num_features)`` to logits ``(n, num_classes)``; the factory's
        model sits behind an input standardisation whose ``input_mean`` and ``input_std`` travel
        with the weights.

    Raises
    ------
    UnknownNameError
        If no model is registered as ``name`` and no installed plug-in offers it.
    ConfigError
        If a size or the seed is invalid, an option is unknown to the model or invalid, or the
        plug-in offering ``name`` cannot be loaded (the message names its distribution).
    """
    factory = _MODELS.get(name)
    for label, value, minimum in (
        ("num_features", num_features, 1),
        ("num_classes", num_classes, 2),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(
                f"The {label!r} parameter of create_model must be an integer >= {minimum}; "
                f"got {value!r} instead."
            )
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ConfigError(
            "The 'seed' parameter of create_model must be an integer in [0, 2**63); "
            f"got {seed!r} instead."
        )
    _check_options(name, factory, options)
    generator = torch.Generator().manual_seed(seed)
    body = factory(
        num_features=num_features, num_classes=num_classes, generator=generator, **options
    )
    return StandardizedModel(body, num_features=num_features)


def _check_options(name: str, factory: ModelFactory, options: dict[str, Any]) -> None:
    """Refuse options the factory does not take, naming them and the ones it does."""
    reserved = _RESERVED.intersection(options)
    if reserved:
        raise ConfigError(f"Model options may not set {sorted(reserved)}; they are arguments.")
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    } - _RESERVED
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"Unknown option(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"expected any of: {', '.join(sorted(accepted)) or 'none'}."
        )
