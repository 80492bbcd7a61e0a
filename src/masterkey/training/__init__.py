"""Training and evaluation: one training loop, one evaluation loop, one runtime setup.

* :mod:`.runtime` - device, threads, determinism;
* :mod:`.loop` - :func:`training_steps` / :func:`fit` and the warm-up + cosine schedule;
* :mod:`.evaluate` - :func:`evaluate` with pluggable metrics (:class:`TopK`, :class:`MeanLoss`).

References
----------
None: this package implements no paper.
"""

from .evaluate import MeanLoss, Metric, TopK, evaluate, tensor_batches
from .loop import TrainStep, fit, training_steps, warmup_cosine
from .runtime import deterministic, resolve_device, set_threads, threads

__all__ = [
    "resolve_device",
    "set_threads",
    "threads",
    "deterministic",
    "TrainStep",
    "warmup_cosine",
    "training_steps",
    "fit",
    "Metric",
    "TopK",
    "MeanLoss",
    "evaluate",
    "tensor_batches",
]
