"""Encrypted inference with CKKS: predictions on data the model owner never sees.

The client encrypts its rows with its own keys (:class:`HeClient`), the model owner evaluates a
model on the ciphertexts (:class:`EncryptedModel`, :func:`evaluate`) and only the client can
decrypt the answer. Parameters are checked for 128-bit security, depth and precision
(:class:`CkksParameters`); a context carrying a secret key is refused
(:func:`load_public_context`). Built on TenSEAL (Microsoft SEAL).
"""

from sovereign_ai.he.client import EncryptedBatch, HeClient, choose_layout
from sovereign_ai.he.models import EncryptedModel
from sovereign_ai.he.parameters import CkksParameters, parameters_for
from sovereign_ai.he.server import ContextCache, evaluate, load_public_context
from sovereign_ai.he.wire import pack, unpack

__all__ = [
    "CkksParameters",
    "ContextCache",
    "EncryptedBatch",
    "EncryptedModel",
    "HeClient",
    "choose_layout",
    "evaluate",
    "load_public_context",
    "pack",
    "parameters_for",
    "unpack",
]
