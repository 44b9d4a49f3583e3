"""The client's side: its own keys, its rows encrypted in the layout that fits, answers decrypted.

The client makes the CKKS keys and keeps the secret key. It sends the model owner a *public*
context: the public key and only the evaluation keys the model needs (relinearisation keys for
the squares; rotation keys only if it will use the one-sample layout), never the secret key. The
context is identified by its SHA-256, so a server caches it and it travels once.

Layout, chosen by batch size (:func:`choose_layout`): up to :data:`VECTOR_MAX_ROWS` rows go one
ciphertext per row (rotations: lowest latency); more go one ciphertext per feature holding up to
N/2 rows (no rotations: highest throughput).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from sovereign_ai.errors import ConfigError, EncryptionError
from sovereign_ai.he.parameters import CkksParameters

__all__ = ["EncryptedBatch", "HeClient", "Layout", "choose_layout"]

Layout = Literal["columns", "vector"]
VECTOR_MAX_ROWS = 4
"""Batches of at most this many rows use the one-sample layout (when the keys allow it)."""


def choose_layout(rows: int, *, rotations: bool) -> Layout:
    """``vector`` for a few rows when rotation keys exist, else ``columns``."""
    return "vector" if rotations and rows <= VECTOR_MAX_ROWS else "columns"


@dataclass(frozen=True)
class EncryptedBatch:
    """Rows as ciphertexts, in order.

    Parameters
    ----------
    layout
        ``columns``: per chunk of up to N/2 rows, one ciphertext per feature; ``vector``: one
        ciphertext per row (its features and a constant 1).
    rows
        How many rows.
    ciphertexts
        TenSEAL serialisations.
    """

    layout: Layout
    rows: int
    ciphertexts: list[bytes] = field(repr=False)


class HeClient:
    """Holds a client's CKKS keys; encrypts its rows and decrypts the answers.

    Parameters
    ----------
    parameters
        The parameter set (see :func:`~sovereign_ai.he.parameters_for`).
    rotations
        Also make rotation (Galois) keys, for the one-sample layout. They make the public
        context several times larger; without them every batch uses the columns layout.
    """

    def __init__(self, parameters: CkksParameters, *, rotations: bool = False) -> None:
        self.parameters = parameters
        self.rotations = rotations
        self._context = parameters.context(galois_keys=rotations)
        self._public = self._context.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=rotations,
            save_relin_keys=True,
        )

    @property
    def public_context(self) -> bytes:
        """What the server gets: public and evaluation keys, no secret key."""
        return bytes(self._public)

    @property
    def context_id(self) -> str:
        """SHA-256 (hex) of :attr:`public_context`: the server's cache key."""
        return hashlib.sha256(self._public).hexdigest()

    def encrypt(
        self, rows: npt.ArrayLike, *, num_features: int, layout: Layout | None = None
    ) -> EncryptedBatch:
        """Encrypt ``rows`` (n x features) in ``layout`` (chosen by size if not given).

        Raises
        ------
        ConfigError
            If the rows are not a finite 2-D array of ``num_features`` columns, or the vector
            layout is asked for without rotation keys.
        """
        import tenseal as ts

        values = np.asarray(rows, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != num_features or not np.isfinite(values).all():
            raise ConfigError(
                f"Expected finite rows of {num_features} features; got shape {values.shape}."
            )
        chosen = layout or choose_layout(len(values), rotations=self.rotations)
        if chosen == "vector":
            if not self.rotations:
                raise ConfigError("The vector layout needs rotation keys (rotations=True).")
            blobs = [
                ts.ckks_vector(self._context, np.append(row, 1.0).tolist()).serialize()
                for row in values
            ]
        else:
            slots = self.parameters.slots
            blobs = [
                ts.ckks_vector(self._context, values[start : start + slots, j].tolist()).serialize()
                for start in range(0, len(values), slots)
                for j in range(num_features)
            ]
        return EncryptedBatch(chosen, len(values), [bytes(b) for b in blobs])

    def decrypt(self, batch: EncryptedBatch, *, num_outputs: int) -> npt.NDArray[np.float64]:
        """The answers to ``batch`` (its layout and rows; its ciphertexts the server's answer) as
        an (n, outputs) array.

        Raises
        ------
        EncryptionError
            If the answer has the wrong number of ciphertexts or one does not decrypt.
        """
        import tenseal as ts

        chunks = 1 if batch.layout == "vector" else -(-batch.rows // self.parameters.slots)
        expected = batch.rows if batch.layout == "vector" else chunks * num_outputs
        if len(batch.ciphertexts) != expected:
            raise EncryptionError(
                f"The answer holds {len(batch.ciphertexts)} ciphertexts; {expected} expected."
            )
        try:
            vectors = [
                np.asarray(ts.ckks_vector_from(self._context, blob).decrypt(), dtype=np.float64)
                for blob in batch.ciphertexts
            ]
        except Exception as exc:  # TenSEAL raises plain ValueError/RuntimeError on bad bytes
            raise EncryptionError(f"An answer's ciphertext does not decrypt: {exc}.") from exc
        if batch.layout == "vector":
            return np.stack([v[:num_outputs] for v in vectors])
        out = np.empty((batch.rows, num_outputs))
        slots = self.parameters.slots
        for chunk in range(chunks):
            start = chunk * slots
            count = min(slots, batch.rows - start)
            for k in range(num_outputs):
                out[start : start + count, k] = vectors[chunk * num_outputs + k][:count]
        return out
