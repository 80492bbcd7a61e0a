"""Training sets with their evaluation, for the training jobs of every stage.

Each builder returns ``(dataset, num_classes, evaluation)``: a map-style training set with
``recipe``'s timm training transform, its class count, and a function ``model -> {"val_accuracy":
top-1 fraction}`` run by the engine (:func:`masterkey.training.engine.train`) on the device and
memory format the model trains in (None: no evaluation while training).

* :func:`imagenet_training_data`: ImageNet-1k class folders (config ``imagenet_train``) at the
  architecture's input size, evaluated on every ``eval_stride``-th image of a decoded
  ``imagenet_val`` cache (it is ordered by class, so a stride keeps every class);
* :func:`cifar10_training_data`: CIFAR-10 (config ``cifar10``) at ``input_size`` pixels,
  evaluated on its test batch (resized, no crop).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import timm
import torch
from torch import nn

from ..data.evalcache import load_eval_cache
from ..data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, preprocessing_for_model
from ..data.training_sets import cifar10_dataset, image_folder_dataset
from .evaluate import TopK, evaluate
from .recipe import Recipe

__all__ = ["top1_evaluation", "imagenet_training_data", "cifar10_training_data"]

IMAGENET_CLASSES = 1000


def top1_evaluation(data) -> Callable[[nn.Module], dict]:
    """``model -> {"val_accuracy": top-1}`` on ``data`` (an EvalSet or an iterable of batches),
    on the model's device, channels-last on CUDA as the engine trains there."""
    top1 = [TopK((1,), names=("val_accuracy",))]

    def evaluation(model: nn.Module) -> dict:
        device = next(model.parameters()).device
        result = evaluate(model, data, top1, device=device, channels_last=device.type == "cuda")
        return {"val_accuracy": result["val_accuracy"]}

    return evaluation


def imagenet_training_data(
    timm_name: str, recipe: Recipe, imagenet_train, eval_cache=None, eval_stride: int = 5
):
    """ImageNet-1k training folders with ``recipe``'s transform at ``timm_name``'s input size and
    normalisation; evaluated on every ``eval_stride``-th image of the validation cache
    ``eval_cache`` when given.  A missing or empty ``imagenet_train`` raises ``ConfigError``; a
    cache of another preprocessing ``StaleFileError``."""
    pre = preprocessing_for_model(timm_name)
    transform = recipe.create_transform(pre.input_size[-1], pre.mean, pre.std)
    evaluation = None
    if eval_cache:
        full = load_eval_cache(eval_cache, pre)
        strided = dataclasses.replace(
            full, images=full.images[::eval_stride], labels=full.labels[::eval_stride]
        )
        evaluation = top1_evaluation(strided)
    return image_folder_dataset(imagenet_train, transform), IMAGENET_CLASSES, evaluation


def cifar10_training_data(root, recipe: Recipe, input_size: int, workers: int = 0):
    """CIFAR-10's training batches with ``recipe``'s transform at ``input_size`` (ImageNet's
    normalisation), evaluated on the test batch resized to ``input_size`` (bicubic, no crop).
    A missing or malformed ``root`` raises ``ConfigError`` naming ``cifar10``."""
    transform = recipe.create_transform(input_size, IMAGENET_MEAN, IMAGENET_STD)
    train_set = cifar10_dataset(root, train=True, transform=transform)
    test_transform = timm.data.create_transform(
        input_size, mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=1.0, interpolation="bicubic"
    )
    test_set = cifar10_dataset(root, train=False, transform=test_transform)
    batches = torch.utils.data.DataLoader(test_set, batch_size=256, num_workers=workers)
    return train_set, train_set.num_classes, top1_evaluation(batches)
