"""Training and evaluation: the training engine, one evaluation loop, one runtime setup.

* :mod:`.runtime` - device, threads, determinism;
* :mod:`.recipe` - :class:`Recipe`: a training recipe built with timm's factories;
* :mod:`.engine` - :func:`train`: checkpoints, exact resume, accumulation, AMP, DDP, metrics log;
* :mod:`.sampling` - the seeded data order and per-sample augmentation seeds;
* :mod:`.distributed` - torchrun processes (:func:`launch`) and their process group;
* :mod:`.loop` - :func:`training_steps` over in-memory tensors (the kernel autoencoder);
* :mod:`.evaluate` - :func:`evaluate` with pluggable metrics (:class:`TopK`, :class:`MeanLoss`);
* :mod:`.datasets` - ImageNet-1k and CIFAR-10 training sets with their evaluation while training.

References
----------
None: this package implements no paper.
"""

from .distributed import DistributedContext, distributed_context, launch
from .engine import RunSettings, TrainingRun, train
from .evaluate import MeanLoss, Metric, TopK, evaluate, tensor_batches
from .loop import TrainStep, training_steps
from .recipe import Recipe
from .runtime import deterministic, resolve_device, set_threads, threads

__all__ = [
    "resolve_device",
    "set_threads",
    "threads",
    "deterministic",
    "TrainStep",
    "training_steps",
    "Recipe",
    "RunSettings",
    "TrainingRun",
    "train",
    "DistributedContext",
    "distributed_context",
    "launch",
    "Metric",
    "TopK",
    "MeanLoss",
    "evaluate",
    "tensor_batches",
]
