"""Process-wide settings the commands make before running federated work."""

from __future__ import annotations

__all__ = ["use_one_torch_thread"]


def use_one_torch_thread() -> None:
    """One intra-op thread: parallelism comes from nodes, not kernels (bench/backends.py)."""
    import torch

    torch.set_num_threads(1)
