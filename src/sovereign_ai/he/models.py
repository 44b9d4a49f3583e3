"""Models evaluated on CKKS ciphertexts: linear layers with square activations between them.

:class:`EncryptedModel` holds plaintext weights (the model owner's) and evaluates them on the
client's ciphertexts in two layouts:

columns (throughput)
    one ciphertext per feature, each holding that feature of up to N/2 samples: a layer is
    ``out_k = sum_j W[j, k] * in_j + b_k``, scalar multiplications and additions only, so the
    context needs no rotation keys; one ciphertext per output comes back.
vector (latency)
    one ciphertext holding one sample's features: a layer is a vector-matrix product computed
    with rotations (the context must carry Galois keys). The bias of a layer followed by another
    is folded into its matrix as a row for a constant 1 feature, because adding a plain vector
    to a rotated ciphertext would break the replication the next product relies on.

The input's standardisation ``(x - mean) / std`` is folded into the first layer's weights, so the
client encrypts raw features. The plaintext forward pass (:meth:`EncryptedModel.plaintext`) is
exactly the computation evaluated encrypted: a linear model outputs its logits (depth 1); the
square MLP (``learning``'s ``he_mlp``) is linear, square, linear (depth 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sovereign_ai.errors import ConfigError

__all__ = ["EncryptedModel"]

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EncryptedModel:
    """Weights to evaluate on ciphertexts.

    Parameters
    ----------
    layers
        ``(W, b)`` per layer, ``W`` of shape (inputs, outputs); a square activation follows every
        layer but the last.
    """

    layers: tuple[tuple[Matrix, Matrix], ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise ConfigError("An encrypted model needs at least one layer.")
        width = self.layers[0][0].shape[0]
        for index, (weight, bias) in enumerate(self.layers):
            if weight.ndim != 2 or weight.shape[0] != width or bias.shape != (weight.shape[1],):
                raise ConfigError(
                    f"Layer {index} does not fit: weight {weight.shape}, bias {bias.shape}, "
                    f"{width} inputs expected."
                )
            if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
                raise ConfigError(f"Layer {index} holds non-finite weights.")
            width = weight.shape[1]

    @classmethod
    def from_layers(
        cls,
        layers: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
        *,
        input_mean: npt.ArrayLike | None = None,
        input_std: npt.ArrayLike | None = None,
    ) -> EncryptedModel:
        """Build from ``(W, b)`` pairs (``W``: inputs x outputs), folding in the input scaling.

        With ``x' = (x - mean) / std``: ``x' W + b = x (W / std[:, None]) + (b - (mean/std) W)``.
        """
        pairs = [
            (np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)) for w, b in layers
        ]
        if input_mean is not None and input_std is not None:
            mean = np.asarray(input_mean, dtype=np.float64)
            std = np.asarray(input_std, dtype=np.float64)
            if np.any(std <= 0):
                raise ConfigError("The input scaling's std must be positive.")
            weight, bias = pairs[0]
            pairs[0] = (weight / std[:, None], bias - (mean / std) @ weight)
        return cls(tuple(pairs))

    @property
    def num_features(self) -> int:
        """Inputs the model takes."""
        return int(self.layers[0][0].shape[0])

    @property
    def num_outputs(self) -> int:
        """Outputs (logits) it returns."""
        return int(self.layers[-1][0].shape[1])

    @property
    def depth(self) -> int:
        """Multiplicative depth: one per layer and one per square."""
        return 2 * len(self.layers) - 1

    def plaintext(self, features: npt.ArrayLike) -> Matrix:
        """The same computation in the clear: ``(n, features)`` to ``(n, outputs)`` logits."""
        values = np.asarray(features, dtype=np.float64)
        for index, (weight, bias) in enumerate(self.layers):
            values = values @ weight + bias
            if index < len(self.layers) - 1:
                values = values * values
        return values

    # Columns layout ------------------------------------------------------------------------------
    def evaluate_columns(self, columns: Sequence[Any]) -> list[Any]:
        """Evaluate on one ciphertext per feature; return one ciphertext per output.

        Raises
        ------
        ConfigError
            If the number of ciphertexts is not the number of features.
        """
        if len(columns) != self.num_features:
            raise ConfigError(
                f"Expected {self.num_features} ciphertexts (one per feature); got {len(columns)}."
            )
        values = list(columns)
        for index, (weight, bias) in enumerate(self.layers):
            values = [
                _combine(values, weight[:, k], float(bias[k])) for k in range(weight.shape[1])
            ]
            if index < len(self.layers) - 1:
                for value in values:
                    value.square_()
        return values

    # Vector layout -------------------------------------------------------------------------------
    def vector_input(self, features: npt.ArrayLike) -> Matrix:
        """One sample as the vector layout encrypts it: its features, then a constant 1."""
        row = np.asarray(features, dtype=np.float64).reshape(-1)
        if row.shape != (self.num_features,):
            raise ConfigError(f"Expected {self.num_features} features; got {row.shape[0]}.")
        return np.concatenate([row, [1.0]])

    def evaluate_vector(self, encrypted: Any) -> Any:
        """Evaluate on one sample encrypted by :meth:`vector_input`; return its logits' vector.

        Needs a context with Galois keys (the products rotate).
        """
        if len(self.layers) > 2:
            raise ConfigError("The vector layout evaluates at most two layers.")
        value = encrypted
        last = len(self.layers) - 1
        for index, (weight, bias) in enumerate(self.layers):
            # The input carries a constant 1: the first bias is a row of the matrix.
            matrix = np.vstack([weight, bias[None, :]]) if index == 0 else weight
            value = value.mm(matrix.tolist())
            if index < last:
                value.square_()
            elif index > 0:
                value = value + bias.tolist()  # after the last product: nothing rotates it
        return value


def _combine(inputs: Sequence[Any], weights: npt.NDArray[np.float64], bias: float) -> Any:
    """``sum_j weights[j] * inputs[j] + bias`` over ciphertexts (scalar products only)."""
    total = None
    for value, weight in zip(inputs, weights, strict=True):
        if weight == 0.0:
            continue
        term = value * float(weight)
        total = term if total is None else total + term
    if total is None:  # every weight zero: keep the ciphertext's level and scale
        total = inputs[0] * 0.0
    return total + bias
