"""Edge deployment: a trained model made small and fast for on-premise servers and devices.

Export to ONNX (:func:`export_onnx`, proven against PyTorch by :func:`check_equivalence`),
quantise to int8 (:func:`quantize_int8_static` on the operator's rows,
:func:`quantize_int8_dynamic` on MatMul/Gemm only), prune (:func:`prune_magnitude`); validate each
variant on the operator's own holdout data and benchmark it on the device
(:func:`measure_variant`, :func:`pick_variant`, all at once with :func:`compress_model`); ship
the best as a signed bundle (:func:`write_bundle`).

Importing this package imports neither torch, onnx nor onnxruntime: the functions import them
when called, so a server that only reads bundles stays light.
"""

from sovereign_ai.edge.bundle import (
    Bundle,
    FileDigest,
    InputScaling,
    Manifest,
    TensorSpec,
    load_bundle,
    write_bundle,
)
from sovereign_ai.edge.compression import CompressionResult, compress_model
from sovereign_ai.edge.onnx_export import (
    EquivalenceReport,
    check_equivalence,
    export_onnx,
    graph_signature,
)
from sovereign_ai.edge.prune import prune_magnitude, weight_sparsity
from sovereign_ai.edge.quantize import quantize_int8_dynamic, quantize_int8_static
from sovereign_ai.edge.runtime import default_threads, measure_latency_ms, open_session, run_logits
from sovereign_ai.edge.validation import Variant, VariantReport, measure_variant, pick_variant

__all__ = [
    "Bundle",
    "CompressionResult",
    "EquivalenceReport",
    "FileDigest",
    "InputScaling",
    "Manifest",
    "TensorSpec",
    "Variant",
    "VariantReport",
    "check_equivalence",
    "compress_model",
    "default_threads",
    "export_onnx",
    "graph_signature",
    "load_bundle",
    "measure_latency_ms",
    "measure_variant",
    "open_session",
    "pick_variant",
    "prune_magnitude",
    "quantize_int8_dynamic",
    "quantize_int8_static",
    "run_logits",
    "weight_sparsity",
    "write_bundle",
]
