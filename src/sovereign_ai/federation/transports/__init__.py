"""Transports carry tasks to nodes: in-memory threads, worker processes, and gRPC with mTLS."""

from sovereign_ai.federation.transports.inmemory import InMemoryTransport, TaskHandler

__all__ = ["InMemoryTransport", "TaskHandler"]
