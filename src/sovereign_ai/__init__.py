"""Sovereign AI Framework: federated training, encrypted inference and edge deployment."""

__version__ = "0.1.0"
