"""Device, threads and determinism: the one place where the runtime of torch is set.

* :func:`resolve_device`: the device a computation runs on (CUDA when present, else the CPU);
* :func:`set_threads`: torch's intra-op threads, set from a rule's ``threads`` by
  :func:`masterkey.core.rules.run_rule`; :func:`threads` overrides them for a block (the
  autoencoder trains on one thread, see :mod:`masterkey.clustering.autoencoder`);
* :func:`deterministic`: ``torch.use_deterministic_algorithms`` for a block (bitwise identical
  results on the CPU for a given seed, data and thread count; on CUDA up to reduction order).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["resolve_device", "set_threads", "threads", "deterministic"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or CUDA when present, else the CPU.

    Raises ``ValueError`` when CUDA is asked for but not available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' asked for but CUDA is not available; use 'cpu' or none")
    return device


def set_threads(count: int | None) -> None:
    """Set torch's intra-op threads to ``count`` (at least 1; ``None`` keeps the current setting)."""
    if count is not None:
        torch.set_num_threads(max(1, int(count)))


@contextmanager
def threads(count: int | None) -> Iterator[None]:
    """:func:`set_threads` for the duration of a block, restoring the previous count after it."""
    previous = torch.get_num_threads()
    set_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def deterministic() -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` for a block (restored after it).

    Sets ``CUBLAS_WORKSPACE_CONFIG`` (needed for deterministic cuBLAS) if it is not set.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
