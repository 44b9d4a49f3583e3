"""Prometheus metrics of one server, in a registry of its own (never the process-wide one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["ServingMetrics"]

# Seconds: from half a millisecond (an in-process call of a small model) to seconds.
_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    """Request counts, request latency and batch sizes of one server.

    ``model`` labels only ever hold names of models served: a request to an unknown name is
    counted under ``model=""``, so clients cannot grow the label set.

    Metrics
    -------
    ``sovereign_serving_requests_total{model, endpoint, status}``
        Requests answered, by HTTP status.
    ``sovereign_serving_request_duration_seconds{model, endpoint}``
        Time from the request's arrival to its answer (histogram).
    ``sovereign_serving_batch_requests{model}``, ``sovereign_serving_batch_rows{model}``
        Requests and rows per ONNX Runtime call (histograms; 1 request per call unbatched).
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sovereign_serving_requests",
            "Requests answered, by model, endpoint and HTTP status.",
            ["model", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sovereign_serving_request_duration_seconds",
            "Time from a request's arrival to its answer.",
            ["model", "endpoint"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "sovereign_serving_batch_requests",
            "Requests answered by one ONNX Runtime call.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "sovereign_serving_batch_rows",
            "Rows (samples) in one ONNX Runtime call.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, *, model: str, endpoint: str, status: int, duration_s: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(model, endpoint, str(status)).inc()
        self.latency.labels(model, endpoint).observe(duration_s)

    def observe_batch(self, *, model: str, requests: int, rows: int) -> None:
        """Record one ONNX Runtime call."""
        self.batch_requests.labels(model).observe(requests)
        self.batch_rows.labels(model).observe(rows)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
