"""Training tasks of tests/training/test_training_engine.py, importable by the test, by torchrun's
workers (``masterkey.training.distributed.launch("engine_tasks:run", ...)`` with this folder on
``PYTHONPATH``) and runnable as a script in a fresh process::

    python tests/training/engine_tasks.py '[{"out": "a.pt", "run_dir": "a"}, {...}]'

runs :func:`run` once per mapping, in order (a run that kills itself ends the list).

The task: a tiny ConvNeXt (``convnext_atto`` with dims (8, 16, 32, 64), depths (1, 1, 1, 1), 4
classes) trained for a few AdamW updates on 64 random 32x32 images with a random crop and flip (so
the seeding of each sample's augmentation matters), on one CPU thread per process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision import transforms

from masterkey.training.engine import RunSettings, TrainingRun, train
from masterkey.training.recipe import Recipe
from masterkey.training.runtime import threads

HERE = Path(__file__).resolve().parent
NUM_CLASSES = 4
SEED = 3
RECIPE = {
    "steps": 6,
    "batch_size": 16,
    "learning_rate": 2e-3,
    "lr_base_size": 32,  # lr = 2e-3 x 16 / 32 = 1e-3
    "warmup_steps": 2,
    "eval_every": 3,
    "ema_decay": 0.9,
}
"""The recipe of every run (a run's ``recipe`` argument overrides keys)."""


def tiny_model() -> torch.nn.Module:
    """The network, initialised from torch seed 0."""
    torch.manual_seed(0)
    return timm.create_model("convnext_atto", num_classes=NUM_CLASSES, dims=(8, 16, 32, 64), depths=(1,) * 4)


class AugmentedImages(Dataset):
    """64 fixed random images (3, 32, 32) and labels, each read with a random crop (padding 4) and
    a random horizontal flip drawn from torch's global generator."""

    def __init__(self, size: int = 64):
        generator = torch.Generator().manual_seed(5)
        self.images = torch.randn(size, 3, 32, 32, generator=generator)
        self.labels = torch.randint(NUM_CLASSES, (size,), generator=generator)
        self.augment = transforms.Compose([transforms.RandomCrop(32, 4), transforms.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.augment(self.images[index]), int(self.labels[index])


def evaluation(model: torch.nn.Module) -> dict:
    """Cross-entropy of ``model`` on the first 16 images without augmentation."""
    data = AugmentedImages()
    with torch.no_grad():
        loss = F.cross_entropy(model(data.images[:16]), data.labels[:16])
    return {"eval_loss": float(loss)}


def run(
    out: str | None = None,
    run_dir: str | None = None,
    *,
    recipe: dict | None = None,
    kill_at: int = 0,
    checkpoint_every: int = 0,
    workers: int = 0,
    freeze: tuple[str, ...] = (),
) -> TrainingRun:
    """Train the tiny model with :data:`RECIPE` (updated by ``recipe``) on :class:`AugmentedImages`.

    ``out``: file for ``{"model": state dict, "ema": state dict}`` (``{rank}`` in it is replaced by
    the process's rank); ``kill_at``: the process SIGKILLs itself after that update (a callback);
    ``freeze``: name prefixes of parameters set to ``requires_grad=False`` before training.
    """
    model = tiny_model()
    for name, parameter in model.named_parameters():
        if name.startswith(tuple(freeze)):
            parameter.requires_grad_(False)

    def kill(update: int, record: dict) -> None:
        if update == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    settings = RunSettings(device="cpu", workers=workers, checkpoint_every=checkpoint_every)
    with threads(1):
        result = train(model, AugmentedImages(), Recipe.from_section({**RECIPE, **(recipe or {})}),
                       num_classes=NUM_CLASSES, seed=SEED, run_dir=run_dir, settings=settings,
                       evaluation=evaluation, callbacks=[kill] if kill_at else [])  # fmt: skip
    if out is not None:
        rank = os.environ.get("RANK", "0")
        ema = None if result.ema is None else result.ema.state_dict()
        torch.save({"model": result.model.state_dict(), "ema": ema}, out.replace("{rank}", rank))
    return result


if __name__ == "__main__":
    for params in json.loads(sys.argv[1]):
        run(**params)
