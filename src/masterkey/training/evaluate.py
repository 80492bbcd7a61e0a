"""One evaluation loop with pluggable metrics.

:func:`evaluate` runs a model in inference mode over an evaluation set and feeds every batch's
outputs to its metrics; each metric (:class:`TopK`, :class:`MeanLoss`, :class:`Fidelity`,
:class:`Logits`, or anything with the same three methods) accumulates and reports its own numbers,
so accuracy and fidelity come from one pass.  Accuracies and agreements are fractions in
``[0, 1]``; KL divergences are in nats.

The data is an :class:`~masterkey.data.evalcache.EvalSet` (images ``(N, 3, H, W)``: uint8 pixels
normalised on the device with the set's mean/std, or float32 already normalised), copied to the
device batch by batch from a background thread (pinned memory on CUDA); or any iterable of
``(inputs, targets)`` tensor pairs (:func:`tensor_batches`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..data.evalcache import EvalSet
from ..data.natural import UNLABELLED
from .runtime import resolve_device

__all__ = [
    "Metric",
    "TopK",
    "MeanLoss",
    "Fidelity",
    "Logits",
    "topk_correct",
    "fidelity_terms",
    "tensor_batches",
    "to_model_input",
    "evaluate",
]


class Metric(Protocol):
    """What :func:`evaluate` needs of a metric."""

    def reset(self) -> None: ...

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None: ...

    def compute(self) -> dict[str, float]: ...


class TopK:
    """Top-k accuracy for several ``k`` at once (``k`` capped at the number of classes).

    ``names`` default to ``top1``, ``top5``, ...; targets are class indices.  Raises
    ``ValueError`` when a target exceeds the model's classes.
    """

    def __init__(self, ks: Sequence[int] = (1, 5), names: Sequence[str] | None = None):
        self.ks = tuple(int(k) for k in ks)
        self.names = tuple(names) if names is not None else tuple(f"top{k}" for k in self.ks)
        if len(self.names) != len(self.ks):
            raise ValueError(f"{len(self.names)} names for {len(self.ks)} values of k")
        self.reset()

    def reset(self) -> None:
        self.correct: torch.Tensor | None = None
        self.count = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if len(targets) and int(targets.min()) <= UNLABELLED:
            raise ValueError("the evaluation set has no labels; measure it with Fidelity, not accuracy")
        label_max = int(targets.max()) if len(targets) else -1
        if outputs.shape[1] <= label_max:
            raise ValueError(
                f"the evaluation set has labels up to {label_max} but the model has {outputs.shape[1]} "
                "classes; evaluate it on a set with its own classes"
            )
        hits = topk_correct(outputs.float(), targets, self.ks)
        self.correct = hits if self.correct is None else self.correct + hits
        self.count += len(targets)

    def compute(self) -> dict[str, float]:
        correct = [0] * len(self.ks) if self.correct is None else self.correct.cpu().tolist()
        return {name: c / max(self.count, 1) for name, c in zip(self.names, correct, strict=True)}


class MeanLoss:
    """Mean of a loss over all samples.

    ``loss_fn(outputs, targets)`` returns a scalar tensor: the batch *mean* (``reduction="mean"``,
    accumulated as ``mean * batch size``) or the batch *sum* (``reduction="sum"``).
    """

    def __init__(self, loss_fn: Callable, name: str = "loss", reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.loss_fn, self.name, self.reduction = loss_fn, name, reduction
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        value = float(self.loss_fn(outputs, targets))
        self.total += value * len(targets) if self.reduction == "mean" else value
        self.count += len(targets)

    def compute(self) -> dict[str, float]:
        return {self.name: self.total / self.count if self.count else float("nan")}


def fidelity_terms(reference: torch.Tensor, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: whether the top-1 classes agree, and ``KL(p_ref || p_out)`` in nats.

    ``reference`` and ``outputs`` are logits ``(N, C)`` of the unmodified and the modified network
    on the same inputs; ``p = softmax(logits)``.  Computed in float64 with ``log_softmax`` (no
    overflow, no ``log 0``): ``KL = sum_c p_ref,c (log p_ref,c - log p_out,c)``, exactly 0 for
    identical rows.  Returns a bool tensor ``(N,)`` and a float64 tensor ``(N,)`` on ``outputs``'
    device; ``ValueError`` when the shapes differ.
    """
    if reference.shape != outputs.shape or outputs.ndim != 2:
        shapes = f"{tuple(reference.shape)} and {tuple(outputs.shape)}"
        raise ValueError(f"reference logits and outputs must be (N, C) of one shape, got {shapes}")
    reference = reference.to(outputs.device, torch.float64)
    outputs = outputs.to(torch.float64)
    log_p, log_q = reference.log_softmax(dim=1), outputs.log_softmax(dim=1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    return reference.argmax(dim=1) == outputs.argmax(dim=1), kl


class Fidelity:
    """Top-1 agreement with, and mean ``KL(p_ref || p)`` from, the unmodified network's logits.

    ``reference``: logits ``(N, C)`` of the unmodified network on the same inputs, in the order
    :func:`evaluate` feeds them (batch by batch from the first input).  ``agreement`` is the share
    of inputs whose top-1 class is the reference's, ``kl`` the mean KL divergence in nats
    (:func:`fidelity_terms`; float64 sums).  Needs no labels.  ``ValueError`` when more inputs
    arrive than the reference has rows, and at :meth:`compute` when fewer did.
    """

    def __init__(self, reference: torch.Tensor | np.ndarray, names: Sequence[str] = ("agreement", "kl")):
        self.reference = reference if torch.is_tensor(reference) else torch.from_numpy(np.asarray(reference))
        if self.reference.ndim != 2:
            raise ValueError(f"reference logits must be (N, C), got {tuple(self.reference.shape)}")
        self.names = tuple(names)
        self.reset()

    def reset(self) -> None:
        self.count, self.agree, self.kl = 0, 0, 0.0

    def _check(self, count: int) -> None:
        if count != len(self.reference):
            raise ValueError(f"{count} inputs evaluated but the reference logits hold {len(self.reference)}")

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        stop = self.count + len(outputs)
        if stop > len(self.reference):
            self._check(stop)
        agree, kl = fidelity_terms(self.reference[self.count : stop], outputs)
        self.agree += int(agree.sum())
        self.kl += float(kl.sum())
        self.count = stop

    def compute(self) -> dict[str, float]:
        self._check(self.count)
        agreement, kl = self.names
        return {agreement: self.agree / self.count, kl: self.kl / self.count}


class Logits:
    """Keeps every output (float32, on the CPU), e.g. the reference logits for :class:`Fidelity`;
    :attr:`logits` is ``(N, C)`` after the pass, :meth:`compute` reports nothing."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.parts: list[torch.Tensor] = []

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.parts.append(outputs.detach().float().cpu())

    def compute(self) -> dict[str, float]:
        return {}

    @property
    def logits(self) -> np.ndarray:
        return torch.cat(self.parts).numpy() if self.parts else np.zeros((0, 0), np.float32)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Iterable[int] = (1, 5)) -> torch.Tensor:
    """Number of rows whose label is among the ``k`` largest logits, for each ``k`` in ``ks``
    (``k`` capped at the number of classes); int64 tensor ``(len(ks),)`` on ``logits``' device."""
    ks = list(ks)
    num_classes = logits.shape[1]
    kmax = min(max(ks), num_classes)
    top = logits.topk(kmax, dim=1).indices  # (N, kmax), best first
    hits = top == labels.view(-1, 1).to(top.device)
    cumulative = hits.cumsum(dim=1)  # [:, k-1] = label within the first k
    return torch.stack([cumulative[:, min(k, num_classes) - 1].sum() for k in ks]).to(torch.int64)


def tensor_batches(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int) -> Iterator:
    """``(inputs, targets)`` slices of ``batch_size`` rows, in order (e.g. for :func:`evaluate`)."""
    for start in range(0, len(inputs), batch_size):
        yield inputs[start : start + batch_size], targets[start : start + batch_size]


def to_model_input(
    batch: torch.Tensor,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    device: torch.device,
    channels_last: bool = True,
) -> torch.Tensor:
    """A host batch of images ``(B, 3, H, W)`` -> normalised float32 tensor on ``device``.

    uint8 batches: ``(x / 255 - mean) / std``, computed on the device; float batches
    (``mean = std = None``) are already normalised.  ``channels_last`` sets the memory format.
    """
    x = batch.to(device, non_blocking=True)
    if mean is not None:
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        x = (x.float() / 255 - m) / s
    else:
        x = x.float()
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _host_batches(eval_set: EvalSet, count: int, batch_size: int, pin: bool) -> Iterator:
    """(images, labels) CPU tensors of ``batch_size``; memory-mapped slices are read into fresh
    (pinned when ``pin``) buffers with a single copy."""
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        images = eval_set.images[start:stop]
        if isinstance(images, torch.Tensor):
            images = images.pin_memory() if pin else images
        else:
            dtype = torch.uint8 if images.dtype == np.uint8 else torch.float32
            buffer = torch.empty(images.shape, dtype=dtype, pin_memory=pin)
            buffer.numpy()[...] = images
            images = buffer
        labels = torch.from_numpy(np.array(eval_set.labels[start:stop], dtype=np.int64))
        yield images, (labels.pin_memory() if pin else labels)


def _prefetch(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a background thread, ``depth`` items ahead (disk reads overlap compute)."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce():
        try:
            for item in iterator:
                if not put(item):
                    return
            put(done)
        except BaseException as err:  # handed to the consumer
            put(err)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def evaluate(
    model: nn.Module,
    data: EvalSet | Iterable,
    metrics: Sequence[Metric] | None = None,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    max_images: int | None = None,
    autocast: bool = True,
    channels_last: bool = True,
) -> dict:
    """Evaluate ``model`` on ``data`` with ``metrics`` (default: top-1 and top-5 accuracy).

    Parameters
    ----------
    model : the network; set to eval mode and moved to ``device`` (default: CUDA when present),
        where it stays (channels-last when ``channels_last``).
    data : an :class:`~masterkey.data.evalcache.EvalSet` (only its first ``max_images`` images;
        ``batch_size`` per batch) or an iterable of ``(inputs, targets)`` tensor pairs.
    metrics : objects with ``reset()``, ``update(outputs, targets)`` and ``compute() -> dict``.
    autocast : on CUDA, run the forward pass in bfloat16 autocast.

    Returns
    -------
    The metrics' values, plus ``images`` (samples evaluated), ``seconds`` (data loading and
    inference), ``images_per_second`` and ``device``.
    """
    device = resolve_device(device)
    metrics = list(metrics) if metrics is not None else [TopK((1, 5))]
    cuda = device.type == "cuda"
    if isinstance(data, EvalSet):
        count = len(data) if max_images is None else min(int(max_images), len(data))
        if count < 1:
            raise ValueError(f"evaluation set '{data.name}' is empty (or max_images < 1)")
        batches = (
            (to_model_input(images, data.mean, data.std, device, channels_last), labels)
            for images, labels in _prefetch(_host_batches(data, count, batch_size, pin=cuda))
        )
    else:
        batches = ((inputs.to(device, non_blocking=True), targets) for inputs, targets in data)
    for metric in metrics:
        metric.reset()
    model.eval()
    model.to(device=device, memory_format=torch.channels_last) if channels_last else model.to(device)
    if cuda:
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast)
    else:
        amp = torch.autocast("cpu", enabled=False)
    seen = 0
    started = time.perf_counter()
    with torch.inference_mode(), amp:
        for inputs, targets in batches:
            outputs = model(inputs)
            targets = targets.to(device, non_blocking=True)
            for metric in metrics:
                metric.update(outputs, targets)
            seen += len(targets)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    results = {}
    for metric in metrics:
        results.update(metric.compute())
    return {
        **results,
        "images": seen,
        "seconds": seconds,
        "images_per_second": seen / seconds if seconds > 0 else float("inf"),
        "device": str(device),
    }
