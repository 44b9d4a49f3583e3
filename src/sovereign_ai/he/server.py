"""The model owner's side: check what a client sent, evaluate on ciphertexts, answer ciphertexts.

The server never holds a secret key. :func:`load_public_context` refuses a context that carries
one (the client would have handed over its privacy), or whose parameters are insecure, too
shallow for the model or too imprecise, or that lacks the evaluation keys the layout needs.
:func:`evaluate` refuses ciphertexts that are malformed, too large or too many, or not at the
context's top level. Every refusal is an :class:`~sovereign_ai.errors.EncryptionError` that says
what was wrong; nothing a client sends can crash the server.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from typing import Any

from sovereign_ai.errors import ConfigError, EncryptionError
from sovereign_ai.he.models import EncryptedModel
from sovereign_ai.he.parameters import MAX_BITS_128, CkksParameters

__all__ = ["ContextCache", "evaluate", "load_public_context"]


def _parameters_of(context: Any) -> tuple[int, int, int, float]:
    """(ring size, modulus bits, depth, scale) of a TenSEAL context."""
    seal = context.seal_context().data
    key = seal.key_context_data()
    return (
        int(key.parms().poly_modulus_degree()),
        int(key.total_coeff_modulus_bit_count()),
        int(seal.first_context_data().chain_index()),
        float(context.global_scale),
    )


def load_public_context(
    data: bytes, *, model: EncryptedModel, precision_bits: int = 10, rotations: bool = False
) -> Any:
    """The client's public context, checked for ``model``.

    Parameters
    ----------
    data
        The serialised context the client sent.
    model
        What will be evaluated with it (its depth).
    precision_bits
        Fractional bits the model's answer needs.
    rotations
        Whether the layout needs rotation keys.

    Raises
    ------
    EncryptionError
        If the bytes are not a CKKS context, it carries a secret key, its parameters are
        insecure, too shallow or imprecise, or it lacks relinearisation or rotation keys.
    """
    import tenseal as ts

    try:
        context = ts.context_from(data)
    except Exception as exc:  # TenSEAL raises ValueError/RuntimeError on hostile bytes
        raise EncryptionError(f"The context is not a TenSEAL CKKS context: {exc}.") from exc
    if context.has_secret_key() or context.is_private():
        raise EncryptionError(
            "The context carries a secret key: refused, and not kept. Whoever holds it can "
            "decrypt your data; send the public context only (HeClient.public_context)."
        )
    try:
        ring, bits, depth, scale = _parameters_of(context)
    except Exception as exc:
        raise EncryptionError(f"The context's parameters cannot be read: {exc}.") from exc
    if ring not in MAX_BITS_128 or bits > MAX_BITS_128[ring]:
        raise EncryptionError(
            f"Insecure CKKS parameters: ring {ring} with a {bits}-bit modulus is below 128-bit "
            "security."
        )
    scale_bits = round(math.log2(scale)) if scale > 0 else 0
    try:
        CkksParameters(ring, (scale_bits + 8, *[scale_bits] * depth, scale_bits + 8),
                       scale_bits).check(depth=model.depth, precision_bits=precision_bits,
                                         integer_bits=0)  # fmt: skip
    except ConfigError as exc:
        raise EncryptionError(f"The context does not fit this model: {exc}") from exc
    if not context.has_relin_keys() and model.depth > 1:
        raise EncryptionError("The context has no relinearisation keys; the model squares.")
    if rotations and not context.has_galois_keys():
        raise EncryptionError("The one-sample layout needs rotation (Galois) keys; none sent.")
    return context


class ContextCache:
    """Public contexts by SHA-256, least recently used dropped first (they are large)."""

    def __init__(self, *, max_contexts: int = 8) -> None:
        self._max = max_contexts
        self._contexts: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, data: bytes, context: Any) -> str:
        """Keep ``context`` (parsed from ``data``); return its id."""
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._contexts[key] = context
            self._contexts.move_to_end(key)
            while len(self._contexts) > self._max:
                self._contexts.popitem(last=False)
        return key

    def get(self, key: str) -> Any:
        """The context with id ``key``.

        Raises
        ------
        EncryptionError
            If it is not cached (send it again).
        """
        with self._lock:
            context = self._contexts.get(key)
            if context is not None:
                self._contexts.move_to_end(key)
        if context is None:
            raise EncryptionError(
                f"No context {key[:16]}... is cached here (never sent, or dropped): send it again."
            )
        return context


def evaluate(
    model: EncryptedModel, context: Any, *, layout: str, rows: int, ciphertexts: list[bytes]
) -> list[bytes]:
    """Evaluate ``model`` on a client's ciphertexts; return the answer's ciphertexts.

    Raises
    ------
    EncryptionError
        If the layout, the row count and the number of ciphertexts disagree, or a ciphertext is
        malformed, not of this context, or not fresh (at the top level).
    """
    import tenseal as ts

    slots = context.seal_context().data.key_context_data().parms().poly_modulus_degree() // 2
    if layout == "vector":
        expected = rows
    elif layout == "columns":
        expected = -(-rows // slots) * model.num_features
    else:
        raise EncryptionError(f"Unknown layout {layout!r}; use 'columns' or 'vector'.")
    if rows < 1 or len(ciphertexts) != expected:
        raise EncryptionError(
            f"{rows} row(s) in the {layout} layout need {expected} ciphertexts; got "
            f"{len(ciphertexts)}."
        )
    vectors = []
    for index, blob in enumerate(ciphertexts):
        try:
            vector = ts.ckks_vector_from(context, blob)
        except Exception as exc:
            raise EncryptionError(f"Ciphertext {index} is malformed: {exc}.") from exc
        expected_size = model.num_features + 1 if layout == "vector" else None
        if expected_size is not None and vector.size() != expected_size:
            raise EncryptionError(
                f"Ciphertext {index} holds {vector.size()} values; {expected_size} expected."
            )
        vectors.append(vector)
    try:
        if layout == "vector":
            answers = [model.evaluate_vector(vector) for vector in vectors]
        else:
            answers = []
            for start in range(0, len(vectors), model.num_features):
                answers += model.evaluate_columns(vectors[start : start + model.num_features])
    except (ValueError, RuntimeError, TypeError) as exc:
        raise EncryptionError(
            f"The ciphertexts cannot be evaluated (not fresh, or not of this context): {exc}."
        ) from exc
    return [bytes(answer.serialize()) for answer in answers]
