"""Generated protocol-buffer modules of the gRPC transport; regenerate with ``make proto``.

``federation.proto`` is the source of truth. ``federation_pb2.py`` and its typed stub
``federation_pb2.pyi`` are committed (see :mod:`sovereign_ai.federation.transports.grpc`), so an
install needs no build step; ruff and mypy skip this folder.
"""
