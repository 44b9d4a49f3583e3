"""Encrypted inference as a capability of the server: answers on ciphertexts only the client can
decrypt.

Routes (``{m}`` a model served with its weights for encryption):

``GET /v2/models/{m}/encrypted``
    what a client needs to make its keys: the CKKS parameters, features, outputs, class names.
``POST /v2/models/{m}/contexts``
    body: the client's *public* context (bytes). Checked (no secret key, secure parameters deep
    enough for the model) and cached by its SHA-256, which is answered as ``context_id``: the
    large evaluation keys travel once.
``POST /v2/models/{m}/infer-encrypted``
    body: an ``he.wire`` message, header ``{"context_id", "layout", "rows"}`` and the
    ciphertexts; answer: the same format, the output ciphertexts.

Errors are ``{"error": ...}``: 400 for anything malformed or unsafe, 404 for an unknown model,
409 for a context not cached (send it again), 413 for a body over the limits.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response

from sovereign_ai.edge import Bundle
from sovereign_ai.errors import EncryptionError
from sovereign_ai.he import (
    CkksParameters,
    ContextCache,
    EncryptedModel,
    evaluate,
    load_public_context,
    pack,
    unpack,
)
from sovereign_ai.serving.app import (
    ServingContext,
    _error,  # one OIP error shape
)

__all__ = ["EncryptedInference", "EncryptedServedModel", "encrypted_models_of"]

_MAX_CONTEXT_BYTES = 256 << 20
_MAX_REQUEST_BYTES = 512 << 20
_BINARY = "application/octet-stream"


@dataclass(frozen=True)
class EncryptedServedModel:
    """A model served for encrypted inference.

    Parameters
    ----------
    model
        Its weights as evaluated on ciphertexts.
    parameters
        The CKKS parameters clients should use.
    class_names
        The output classes, if known.
    """

    model: EncryptedModel
    parameters: CkksParameters
    class_names: tuple[str, ...] | None = None

    def description(self, name: str) -> dict[str, Any]:
        """What ``GET .../encrypted`` answers."""
        return {
            "name": name,
            "num_features": self.model.num_features,
            "num_outputs": self.model.num_outputs,
            "class_names": list(self.class_names) if self.class_names else None,
            "depth": self.model.depth,
            "ckks": {
                "poly_modulus_degree": self.parameters.poly_modulus_degree,
                "coeff_mod_bit_sizes": list(self.parameters.coeff_mod_bit_sizes),
                "scale_bits": self.parameters.scale_bits,
            },
            "layouts": ["columns", "vector"],
        }


class _TooLargeError(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLargeError(f"The body is {declared} bytes; at most {limit}.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLargeError(f"The body is over {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


class EncryptedInference:
    """The ``encrypted-inference`` capability (see the module's docstring).

    Parameters
    ----------
    models
        Model name to what it evaluates.
    max_contexts
        Public contexts cached at once (each can be tens of megabytes).
    """

    name = "encrypted-inference"

    def __init__(
        self, models: Mapping[str, EncryptedServedModel], *, max_contexts: int = 8
    ) -> None:
        self._models = dict(models)
        self._contexts = ContextCache(max_contexts=max_contexts)

    def _served(self, name: str) -> EncryptedServedModel:
        served = self._models.get(name)
        if served is None:
            raise KeyError(name)
        return served

    def add_routes(self, app: FastAPI, context: ServingContext) -> None:
        """Add the three routes; every call is counted in the server's metrics."""
        capability = self

        async def answer(
            model: str, endpoint: str, work: Callable[[], Awaitable[Response]]
        ) -> Response:
            start = time.perf_counter()
            try:
                response = await work()
            except KeyError:
                response = _error(404, f"No model {model!r} is served for encrypted inference.")
            except _TooLargeError as exc:
                response = _error(413, str(exc))
            except EncryptionError as exc:
                status = 409 if "send it again" in str(exc) else 400
                response = _error(status, str(exc))
            label = model if model in capability._models else ""
            context.metrics.observe_request(model=label, endpoint=endpoint,
                                            status=response.status_code,
                                            duration_s=time.perf_counter() - start)  # fmt: skip
            return response

        @app.get("/v2/models/{model}/encrypted")
        async def describe(model: str) -> Response:
            async def work() -> Response:
                body = json.dumps(capability._served(model).description(model))
                return Response(body, media_type="application/json")

            return await answer(model, "encrypted_metadata", work)

        @app.post("/v2/models/{model}/contexts")
        async def add_context(model: str, request: Request) -> Response:
            async def work() -> Response:
                served = capability._served(model)
                data = await _body(request, _MAX_CONTEXT_BYTES)
                loop = asyncio.get_running_loop()
                checked = await loop.run_in_executor(
                    context.executor,
                    lambda: load_public_context(data, model=served.model),
                )
                key = capability._contexts.put(data, checked)
                has_rotations = bool(checked.has_galois_keys())
                body = json.dumps({"context_id": key, "rotations": has_rotations})
                return Response(body, media_type="application/json")

            return await answer(model, "encrypted_context", work)

        @app.post("/v2/models/{model}/infer-encrypted")
        async def infer(model: str, request: Request) -> Response:
            async def work() -> Response:
                served = capability._served(model)
                data = await _body(request, _MAX_REQUEST_BYTES)
                limit = (
                    16
                    * served.parameters.poly_modulus_degree
                    * len(served.parameters.coeff_mod_bit_sizes)
                    + 65536
                )
                header, blobs = unpack(data, max_blobs=1 << 16, max_blob_bytes=limit)
                keys = capability._contexts.get(str(header.get("context_id", "")))
                layout, rows = header.get("layout"), header.get("rows")
                if not isinstance(rows, int) or isinstance(rows, bool):
                    raise EncryptionError("The header's 'rows' must be an integer.")
                if layout == "vector" and not keys.has_galois_keys():
                    raise EncryptionError("The vector layout needs a context with rotation keys.")
                loop = asyncio.get_running_loop()
                answers = await loop.run_in_executor(
                    context.executor,
                    lambda: evaluate(
                        served.model, keys, layout=str(layout), rows=rows, ciphertexts=blobs
                    ),
                )
                reply = pack({"layout": layout, "rows": rows,
                              "outputs": served.model.num_outputs}, answers)  # fmt: skip
                return Response(reply, media_type=_BINARY)

            return await answer(model, "infer_encrypted", work)


def encrypted_models_of(bundles: Sequence[Bundle]) -> dict[str, EncryptedServedModel]:
    """The bundles that carry weights for encrypted inference (``logreg``, ``he_mlp``), by
    model name. The weights file is covered by the bundle's signature, already verified."""
    from sovereign_ai.core import Parameters
    from sovereign_ai.federation.encrypted_models import (
        ENCRYPTED_WEIGHTS_FILE,
        encrypted_model,
        encryption_parameters,
    )

    served = {}
    for bundle in bundles:
        name = bundle.manifest.source.get("model")
        if name is None or ENCRYPTED_WEIGHTS_FILE not in bundle.manifest.files:
            continue
        weights = Parameters.from_bytes((bundle.folder / ENCRYPTED_WEIGHTS_FILE).read_bytes())
        model = encrypted_model(name, weights)
        served[bundle.manifest.name] = EncryptedServedModel(
            model, encryption_parameters(model), bundle.manifest.class_names
        )
    return served
