"""Checking local examples and turning them into tensors, shared by training and evaluation.

Features arrive as float ``(n, d)`` arrays and labels as integer ``(n,)`` arrays from whatever
loader the node uses; both are checked once here so neither the trainer nor the evaluator sees a
malformed array or lets a torch ``RuntimeError`` escape.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from sovereign_ai.errors import DataError

__all__: list[str] = []


def as_tensors(
    features: npt.ArrayLike, labels: npt.ArrayLike, *, caller: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate examples and convert them once to float32 / int64 tensors.

    Raises
    ------
    DataError
        If the arrays are empty, misshapen, of the wrong kind, non-finite or of unequal length.
    """
    x = np.asarray(features)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise DataError(
            f"The 'features' parameter of {caller} must be a 2-D array (n, d); "
            f"got shape {x.shape} instead."
        )
    if y.ndim != 1:
        raise DataError(
            f"The 'labels' parameter of {caller} must be a 1-D array (n,); "
            f"got shape {y.shape} instead."
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(
            f"The 'features' parameter of {caller} must hold at least one example with at least "
            f"one feature; got shape {x.shape} instead."
        )
    if x.shape[0] != y.shape[0]:
        raise DataError(
            f"The 'labels' parameter of {caller} must have one label per example ({x.shape[0]}); "
            f"got {y.shape[0]} instead."
        )
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(
            f"The 'features' parameter of {caller} must be numeric; got dtype {x.dtype} instead."
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"The 'labels' parameter of {caller} must hold integer class indices; "
            f"got dtype {y.dtype} instead."
        )
    # Private copies: the caller may change its arrays while another thread trains on them.
    x32 = np.array(x, dtype=np.float32, order="C", copy=True)
    y64 = np.array(y, dtype=np.int64, copy=True)
    if not np.isfinite(x32).all():
        raise DataError(f"The 'features' parameter of {caller} holds NaN or infinite values.")
    if int(y64.min()) < 0:
        raise DataError(
            f"The 'labels' parameter of {caller} must be >= 0; got {int(y64.min())} instead."
        )
    return torch.from_numpy(x32), torch.from_numpy(y64)


def check_model_fits(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> int:
    """Run one example through ``model`` and check it yields logits covering every label.

    Returns
    -------
    int
        The number of classes (logit columns) the model predicts.

    Raises
    ------
    DataError
        If the model rejects the feature width, does not return ``(1, num_classes)`` logits, or
        a label is not below ``num_classes``.
    """
    with torch.no_grad():
        try:
            logits = model(features[:1])  # (1, num_classes)
        except RuntimeError as exc:
            raise DataError(
                f"The model cannot take features of shape (n, {features.shape[1]}): {exc}"
            ) from exc
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise DataError(f"The model must return logits of shape (n, num_classes); got {shape}.")
    num_classes = int(logits.shape[1])
    top_label = int(labels.max())
    if top_label >= num_classes:
        raise DataError(
            f"The labels must be class indices below the model's {num_classes} outputs; "
            f"got label {top_label} instead."
        )
    return num_classes


def logits_in_batches(model: nn.Module, features: torch.Tensor, *, batch_size: int) -> torch.Tensor:
    """Forward ``features`` through ``model`` in eval mode without gradients.

    The model's train/eval mode is restored afterwards.

    Returns
    -------
    torch.Tensor
        Logits, shape ``(n, num_classes)``.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            chunks = [
                model(features[start : start + batch_size])  # (b, num_classes)
                for start in range(0, features.shape[0], batch_size)
            ]
    finally:
        model.train(was_training)
    return torch.cat(chunks)  # (n, num_classes)
