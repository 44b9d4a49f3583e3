"""Sovereign AI Framework: federated training, encrypted inference and edge deployment on-premise."""

__version__ = "0.1.0"
