"""Offline inference: an Open Inference Protocol v2 REST server over signed edge bundles.

``sovereign serve`` and :func:`create_app` serve models from bundles that :func:`verify_bundle`
checked (signature, digests, and optionally the signer's CA) with ONNX Runtime
(:class:`ServedModel`); concurrent requests share session calls (:class:`MicroBatcher`, bounded
by :class:`BatchingConfig`'s latency bound); :class:`ServingMetrics` exposes Prometheus metrics.
A :class:`ServingCapability` adds endpoints (encrypted inference). Imports FastAPI, uvicorn,
ONNX Runtime and prometheus_client: import it only where a server runs.
"""

from sovereign_ai.serving.app import ServingCapability, ServingContext, create_app
from sovereign_ai.serving.batching import BatchingConfig, MicroBatcher
from sovereign_ai.serving.metrics import ServingMetrics
from sovereign_ai.serving.model import ServedModel
from sovereign_ai.serving.protocol import (
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadata,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    ServerMetadata,
    decode_tensor,
    encode_tensor,
)
from sovereign_ai.serving.repository import ModelRepository
from sovereign_ai.serving.server import is_loopback, run_server, running_server
from sovereign_ai.serving.sources import bundle_folder, verify_bundle

__all__ = [
    "BatchingConfig",
    "InferenceRequest",
    "InferenceResponse",
    "MetadataTensor",
    "MicroBatcher",
    "ModelMetadata",
    "ModelRepository",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "ServedModel",
    "ServerMetadata",
    "ServingCapability",
    "ServingContext",
    "ServingMetrics",
    "bundle_folder",
    "create_app",
    "decode_tensor",
    "encode_tensor",
    "is_loopback",
    "run_server",
    "running_server",
    "verify_bundle",
]
