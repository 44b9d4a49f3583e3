"""Edge deployment: a trained model made small and fast for on-premise servers and devices.

Export to ONNX, quantise to int8, prune; validate each variant on the operator's own holdout
data and benchmark it on the device; ship the best as a signed bundle (:mod:`.bundle`).
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

__all__ = [
    "Bundle",
    "FileDigest",
    "InputScaling",
    "Manifest",
    "TensorSpec",
    "load_bundle",
    "write_bundle",
]
