"""The client of encrypted inference over HTTP: keys stay here, rows leave encrypted.

:class:`EncryptedInferenceClient` asks the server which CKKS parameters its model needs, makes
its own keys (:class:`~sovereign_ai.he.HeClient`), sends the public context once (sent again if
the server has dropped it), and then sends only ciphertexts; it decrypts the answers itself.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import numpy.typing as npt

from sovereign_ai.errors import ConfigError, EncryptionError, TransportError
from sovereign_ai.he import CkksParameters, EncryptedBatch, HeClient, pack, unpack

__all__ = ["EncryptedInferenceClient"]


class EncryptedInferenceClient:
    """Encrypted predictions from a model served by ``sovereign serve``.

    Parameters
    ----------
    url
        The server's base URL, e.g. ``http://127.0.0.1:8080``.
    model
        The model's name.
    rotations
        Make rotation keys too, so that small batches use the one-sample layout (lower latency;
        a context several times larger, sent once).
    timeout_s
        Deadline of each HTTP call.
    """

    def __init__(
        self, url: str, model: str, *, rotations: bool = False, timeout_s: float = 600.0
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"The server URL must start with http:// or https://; got {url!r}.")
        self._base = f"{url.rstrip('/')}/v2/models/{model}"
        self._timeout_s = timeout_s
        self.description = json.loads(self._call("GET", "/encrypted"))
        ckks = self.description["ckks"]
        parameters = CkksParameters(
            int(ckks["poly_modulus_degree"]), tuple(int(b) for b in ckks["coeff_mod_bit_sizes"]),
            int(ckks["scale_bits"]),
        )  # fmt: skip
        parameters.check(depth=int(self.description["depth"]))  # refuse unsafe server advice
        self.keys = HeClient(parameters, rotations=rotations)
        self._context_sent = False

    def _call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(self._base + path, data=body, method=method)  # noqa: S310
        if body is not None:
            request.add_header("Content-Type", "application/octet-stream")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:  # noqa: S310
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]
            if exc.code == 409:
                raise _ContextDroppedError(detail) from exc
            raise EncryptionError(f"The server refused ({exc.code}): {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(f"Cannot reach {self._base}: {exc}") from exc

    def send_context(self) -> str:
        """Send the public context (no secret key); return the id the server keeps it under."""
        answer = json.loads(self._call("POST", "/contexts", self.keys.public_context))
        if answer.get("context_id") != self.keys.context_id:
            raise EncryptionError("The server keeps the context under another digest.")
        self._context_sent = True
        return str(answer["context_id"])

    def logits(self, rows: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The model's outputs for ``rows``, computed on ciphertexts and decrypted here."""
        if not self._context_sent:
            self.send_context()
        batch = self.keys.encrypt(rows, num_features=int(self.description["num_features"]))
        header: dict[str, Any] = {"context_id": self.keys.context_id, "layout": batch.layout,
                                  "rows": batch.rows}  # fmt: skip
        message = pack(header, batch.ciphertexts)
        try:
            reply = self._call("POST", "/infer-encrypted", message)
        except _ContextDroppedError:
            self.send_context()
            reply = self._call("POST", "/infer-encrypted", message)
        _, answers = unpack(reply, max_blobs=1 << 16, max_blob_bytes=1 << 28)
        outputs = int(self.description["num_outputs"])
        return self.keys.decrypt(EncryptedBatch(batch.layout, batch.rows, answers),
                                 num_outputs=outputs)  # fmt: skip

    def predict(self, rows: npt.ArrayLike) -> list[str]:
        """Predicted class names (or indices as text) for ``rows``."""
        best = self.logits(rows).argmax(axis=1)
        names = self.description.get("class_names")
        return [str(names[i]) if names else str(int(i)) for i in best]


class _ContextDroppedError(EncryptionError):
    """The server no longer holds the context (409)."""
