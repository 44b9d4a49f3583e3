"""Moving weights between a torch model and :class:`~sovereign_ai.core.Parameters`.

The model's ``state_dict`` is the source of truth for names and order, so a node and the coordinator
that build the same named model (see :mod:`sovereign_ai.learning.zoo`) agree on both.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sovereign_ai.core import FloatArray, Parameters
from sovereign_ai.errors import ConfigError, SerializationError

__all__ = ["get_parameters", "set_parameters"]


def get_parameters(model: nn.Module) -> Parameters:
    """Copy a model's state into :class:`~sovereign_ai.core.Parameters`.

    Parameters
    ----------
    model
        Any module whose state (parameters and buffers) is floating point.

    Returns
    -------
    Parameters
        One float32 array per ``state_dict`` entry, in ``state_dict`` order; later training does not
        change the returned arrays.

    Raises
    ------
    ConfigError
        If an entry of the state is not floating point (for example batch-norm's integer
        ``num_batches_tracked``): it could not travel as float32 without loss.
    """
    arrays: dict[str, FloatArray] = {}
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            raise ConfigError(
                f"Tensor {name!r} of the model has dtype {tensor.dtype}; only floating-point state "
                "can be exchanged as parameters."
            )
        # Parameters copies again into its own read-only float32 array; this copy detaches from
        # the module's storage even when the dtype is already float32.
        arrays[name] = tensor.detach().to(device="cpu", dtype=torch.float32).numpy().copy()
    return Parameters(arrays)


def set_parameters(model: nn.Module, parameters: Parameters) -> None:
    """Overwrite a model's state with ``parameters``, in place.

    Every name and shape is checked before any tensor is written, so a mismatch leaves the model
    untouched.

    Parameters
    ----------
    model
        The module to load into.
    parameters
        Must hold exactly the model's ``state_dict`` names (in any order), each with the same shape.

    Raises
    ------
    SerializationError
        If a name is missing or unexpected, a shape differs, or a value is not finite; the message
        names the tensor.
    """
    if not isinstance(parameters, Parameters):
        raise SerializationError(
            "The 'parameters' parameter of set_parameters must be a Parameters; "
            f"got {type(parameters).__name__} instead."
        )
    state = model.state_dict()
    missing = [name for name in state if name not in parameters]
    unexpected = [name for name in parameters if name not in state]
    if missing or unexpected:
        raise SerializationError(
            "The parameters do not match the model: "
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}."
        )
    for name, tensor in state.items():
        array = parameters[name]
        if tuple(array.shape) != tuple(tensor.shape):
            raise SerializationError(
                f"Tensor {name!r} must have shape {tuple(tensor.shape)} to fit the model; "
                f"got {tuple(array.shape)} instead."
            )
        if not np.isfinite(array).all():
            raise SerializationError(f"Tensor {name!r} holds NaN or infinite values.")
    with torch.no_grad():
        for name, tensor in state.items():
            # state_dict tensors share storage with the module, so copy_ writes into the model; the
            # numpy copy is writable, which torch.from_numpy wants.
            tensor.copy_(torch.from_numpy(parameters[name].copy()))
