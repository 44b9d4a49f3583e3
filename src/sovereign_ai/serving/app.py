"""The Open Inference Protocol v2 REST app (FastAPI) over verified bundles' models.

Endpoints: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{m}[/versions/{v}]``
(metadata), ``…/ready`` and ``POST …/infer``; ``GET /metrics`` (Prometheus). Errors answer
``{"error": "..."}``: 400 for a request that does not fit the model, 404 for an unknown model or
version. A :class:`ServingCapability` adds its own routes (e.g. encrypted inference) with the same
error mapping and metrics through the :class:`ServingContext` it is given.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

import sovereign_ai
from sovereign_ai.errors import InferenceRequestError, SovereignError, UnknownNameError
from sovereign_ai.serving.batching import BatchingConfig, MicroBatcher
from sovereign_ai.serving.metrics import ServingMetrics
from sovereign_ai.serving.model import ServedModel
from sovereign_ai.serving.protocol import InferenceRequest, ServerMetadata
from sovereign_ai.serving.repository import ModelRepository

__all__ = ["ServingCapability", "ServingContext", "create_app"]

_JSON = "application/json"
_Body = BaseModel | dict[str, Any]
_MAX_REQUEST_BYTES = 64 << 20


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type=_JSON)


@dataclass
class ServingContext:
    """What a route needs: the models, the metrics, and :meth:`respond` (errors and metrics).

    Parameters
    ----------
    models
        The models served.
    metrics
        The server's metrics.
    batchers
        Model (name, version) to its micro-batcher; absent when it runs unbatched.
    executor
        Where ONNX Runtime calls run, off the event loop.
    """

    models: ModelRepository
    metrics: ServingMetrics
    batchers: dict[tuple[str, str], MicroBatcher] = field(default_factory=dict)
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="onnxruntime")
    )

    async def respond(
        self,
        *,
        endpoint: str,
        model: str,
        work: Callable[[], Awaitable[BaseModel | dict[str, Any]]],
    ) -> Response:
        """Run ``work`` and answer its result as JSON, or the OIP error it raised; count both.

        ``model`` is the name the client asked for; it labels the metrics only if it is served.
        """
        start = time.perf_counter()
        try:
            body = await work()
            payload = body if isinstance(body, dict) else body.model_dump(exclude_none=True)
            response = Response(json.dumps(payload), media_type=_JSON)
        except UnknownNameError as exc:
            response = _error(404, str(exc))
        except (InferenceRequestError, ValidationError) as exc:
            response = _error(400, str(exc))
        except SovereignError as exc:
            response = _error(500, str(exc))
        label = model if model in self.models.names else ""
        self.metrics.observe_request(
            model=label, endpoint=endpoint, status=response.status_code,
            duration_s=time.perf_counter() - start,
        )  # fmt: skip
        return response


class ServingCapability(Protocol):
    """Something that adds endpoints to the server, e.g. encrypted inference.

    ``name`` is listed among the server's extensions (``GET /v2``).
    """

    @property
    def name(self) -> str:
        """The extension's name."""
        ...

    def add_routes(self, app: FastAPI, context: ServingContext) -> None:
        """Add the capability's routes to ``app``; answer through ``context.respond``."""
        ...


def create_app(
    models: Sequence[ServedModel],
    *,
    batching: BatchingConfig | None = None,
    capabilities: Sequence[ServingCapability] = (),
    metrics: ServingMetrics | None = None,
) -> FastAPI:
    """An OIP v2 app serving ``models`` (see the module's docstring).

    Parameters
    ----------
    models
        Loaded models (from verified bundles); one name may be served in several versions, the
        first given answering requests that name no version.
    batching
        Micro-batching for every model whose inputs take any number of rows; on by default.
    capabilities
        Each adds its routes after the OIP ones.
    metrics
        Where to count; a fresh registry by default.
    """
    config = batching or BatchingConfig()
    context = ServingContext(
        models=ModelRepository(models),
        metrics=metrics or ServingMetrics(),
        executor=ThreadPoolExecutor(max(2, len(models)), thread_name_prefix="onnxruntime"),
    )
    for model in models:
        if config.is_enabled and model.is_batchable:
            context.batchers[(model.name, model.version)] = MicroBatcher(
                model, config=config, executor=context.executor,
                on_batch=_batch_observer(context.metrics, model.name),
            )  # fmt: skip

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for batcher in context.batchers.values():
            await batcher.close()
        context.executor.shutdown(wait=False, cancel_futures=True)

    # No /docs: its page loads scripts from a CDN, and this server runs air-gapped.
    app = FastAPI(
        title="Sovereign AI inference server", version=sovereign_ai.__version__,
        lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
    )  # fmt: skip
    _add_error_handlers(app)
    _add_oip_routes(app, context, extensions=[c.name for c in capabilities])
    for capability in capabilities:
        capability.add_routes(app, context)
    return app


def _batch_observer(metrics: ServingMetrics, model: str) -> Callable[[int, int], None]:
    def observe(requests: int, rows: int) -> None:
        metrics.observe_batch(model=model, requests=requests, rows=rows)

    return observe


def _add_error_handlers(app: FastAPI) -> None:
    async def http_error(_: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _error(status, str(getattr(exc, "detail", exc)))

    async def validation_error(_: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


async def _read_json(request: Request) -> InferenceRequest:
    size = 0
    chunks = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_REQUEST_BYTES:
            raise InferenceRequestError(f"The request is over {_MAX_REQUEST_BYTES >> 20} MiB.")
        chunks.append(chunk)
    try:
        return InferenceRequest.model_validate_json(b"".join(chunks))
    except ValidationError as exc:
        raise InferenceRequestError(f"The request is not an OIP inference request: {exc}") from exc


def _add_oip_routes(app: FastAPI, context: ServingContext, *, extensions: list[str]) -> None:
    models = context.models
    server = ServerMetadata(
        name="sovereign-ai", version=sovereign_ai.__version__, extensions=extensions
    )

    async def live() -> dict[str, Any]:
        return {"live": True}

    async def ready() -> dict[str, Any]:
        return {"ready": True}  # models are loaded (and verified) before the app exists

    @app.get("/v2")
    async def server_metadata() -> Response:
        return Response(server.model_dump_json(), media_type=_JSON)

    @app.get("/v2/health/live")
    async def health_live() -> Response:
        return await context.respond(endpoint="live", model="", work=live)

    @app.get("/v2/health/ready")
    async def health_ready() -> Response:
        return await context.respond(endpoint="ready", model="", work=ready)

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Response:
        async def work() -> BaseModel:
            return models.get(name, version).metadata(models.versions(name))

        return await context.respond(endpoint="metadata", model=name, work=work)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        async def work() -> dict[str, Any]:
            return {"name": models.get(name, version).name, "ready": True}

        return await context.respond(endpoint="model_ready", model=name, work=work)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        async def work() -> dict[str, Any]:
            return await _infer(context, models.get(name, version), request)

        return await context.respond(endpoint="infer", model=name, work=work)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(context.metrics.exposition(), media_type=context.metrics.content_type)


async def _infer(context: ServingContext, model: ServedModel, request: Request) -> dict[str, Any]:
    batcher = context.batchers.get((model.name, model.version))
    submitted = False
    if batcher is not None:
        batcher.admit()  # from arrival on, so that a batch being formed waits for this one
    try:
        message = await _read_json(request)
        feeds = model.feeds(message)
        submitted = True
        if batcher is not None:
            results = await batcher.submit(feeds)
        else:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(context.executor, model.run, feeds)
            context.metrics.observe_batch(
                model=model.name, requests=1, rows=next(iter(feeds.values())).shape[0]
            )
    finally:
        if batcher is not None and not submitted:
            batcher.release()
    outputs = model.answer(results, message)
    answer: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if message.id is not None:
        answer["id"] = message.id
    answer["outputs"] = [o.model_dump(exclude_none=True) for o in outputs]
    return answer
