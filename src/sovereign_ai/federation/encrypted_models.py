"""A trained model's weights as an encrypted-inference model: what the federation trained is
exactly what is evaluated on ciphertexts.

Two of the zoo's models are polynomials of their input and so can be evaluated under CKKS:
``logreg`` (linear: the encrypted logits) and ``he_mlp`` (linear, square, linear). Their input
standardisation (``input_mean``, ``input_std``) is folded into the first layer. Any other model
(ReLU, convolutions) is refused with the reason.
"""

from __future__ import annotations

import numpy as np

from sovereign_ai.core import Parameters
from sovereign_ai.errors import ConfigError
from sovereign_ai.he import CkksParameters, EncryptedModel, parameters_for

__all__ = [
    "ENCRYPTABLE_MODELS",
    "ENCRYPTED_WEIGHTS_FILE",
    "encrypted_model",
    "encryption_parameters",
]

ENCRYPTED_WEIGHTS_FILE = "parameters.safetensors"
"""The edge bundle's file of fp32 weights for encrypted inference (signed with the bundle)."""

ENCRYPTABLE_MODELS = {
    "logreg": ("body.linear",),
    "he_mlp": ("body.hidden", "body.output"),
}
"""Model names CKKS can evaluate, and their layers' parameter prefixes in order."""


def encrypted_model(model_name: str, parameters: Parameters) -> EncryptedModel:
    """The encrypted-inference form of a trained ``model_name`` with ``parameters``.

    Raises
    ------
    ConfigError
        If the model is not a polynomial of its input (only ``logreg`` and ``he_mlp`` are), or
        its parameters do not have the model's layers.
    """
    layers = ENCRYPTABLE_MODELS.get(model_name)
    if layers is None:
        raise ConfigError(
            f"Model {model_name!r} cannot be evaluated on encrypted data: only polynomial models "
            f"can ({', '.join(sorted(ENCRYPTABLE_MODELS))}); ReLU and pooling are not. Train "
            "'he_mlp' (square activations) for encrypted inference."
        )
    try:
        pairs = [
            (np.asarray(parameters[f"{prefix}.weight"]).T, np.asarray(parameters[f"{prefix}.bias"]))
            for prefix in layers
        ]
    except KeyError as exc:
        raise ConfigError(
            f"The parameters are not those of a {model_name!r} model: {exc} is missing."
        ) from exc
    names = set(parameters.keys())
    return EncryptedModel.from_layers(
        pairs,
        input_mean=parameters["input_mean"] if "input_mean" in names else None,
        input_std=parameters["input_std"] if "input_std" in names else None,
    )


def encryption_parameters(model: EncryptedModel) -> CkksParameters:
    """The CKKS parameters a client should use for ``model``: 128-bit secure, its depth, and
    precision enough for its logits (about 1e-3 on values up to about 1000)."""
    if model.depth == 1:
        return parameters_for(1)
    return parameters_for(model.depth, precision_bits=12, integer_bits=10)
