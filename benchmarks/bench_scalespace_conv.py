"""Cost of the learnable scale-space depthwise layer ([B]; masterkey.nets.scalespace_conv) against a plain
depthwise convolution of the same size.

Usage::

    python benchmarks/bench_scalespace_conv.py [--channels 96 192 384] [--size 56] [--batch 32] [--kernel 7]
        [--repeats 5] [--device cpu|cuda|auto] [--threads N]

Per channel count ``C``, one forward + backward of ``layer(x).backward(g)`` on ``x`` ``(batch, C, size,
size)`` float32 that requires grad, gradients reset before each call:

* ``conv kxk depthwise`` - ``nn.Conv2d(C, C, k, padding=k//2, groups=C)`` (the baseline, ratio 1.00);
* ``scale-space, discrete`` - :class:`~masterkey.nets.scalespace_conv.ScaleSpaceConv2d` with the channels'
  types cycling through all 12 of docs/methods.md section 3.3, the discrete analogue of the Gaussian
  (heat-equation gradient), every parameter trainable: the kernel construction is included;
* ``scale-space, sampled`` - the same with [B]'s normalised sampled Gaussian.

Time: median of ``--repeats`` after two warm-up calls, the layers taking turns,
``torch.cuda.synchronize`` around each on CUDA.  ``kernel ms``: building the ``(C, 1, k, k)`` weights
alone (forward of :meth:`~masterkey.nets.scalespace_conv.ScaleSpaceConv2d.kernel`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from masterkey.nets.scalespace_conv import ScaleSpaceConv2d  # noqa: E402
from masterkey.scalespace.templates import TYPE_NAMES  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> None:
    x.grad = None
    for p in layer.parameters():
        p.grad = None
    layer(x).backward(g)


def median_ms(run, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        run()
        sync(device)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def layers(channels: int, k: int, device) -> dict[str, nn.Module]:
    types = [TYPE_NAMES[c % len(TYPE_NAMES)] for c in range(channels)]
    sigma_y = [1.5 if t in ("lap", "id-lap") else 1.2 for t in types]  # lap, id-lap: a single scale
    kwargs = dict(sigma_x=1.5, sigma_y=sigma_y, alpha=0.5, device=device)
    return {
        f"conv {k}x{k} depthwise": nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels).to(
            device
        ),
        "scale-space, discrete": ScaleSpaceConv2d(types, k, gaussian="discrete", **kwargs),
        "scale-space, sampled": ScaleSpaceConv2d(types, k, gaussian="sampled", **kwargs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[96, 192, 384])
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--kernel", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}, torch {torch.__version__}, threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"batch {args.batch}, {args.size}x{args.size}, {args.kernel}x{args.kernel} kernels, float32, fwd+bwd"
    )
    print("| C | layer | fwd+bwd ms | ratio | kernel ms |")
    print("|---:|---|---:|---:|---:|")
    for channels in args.channels:
        torch.manual_seed(0)
        x = torch.randn(args.batch, channels, args.size, args.size, device=device, requires_grad=True)
        g = torch.randn_like(x)
        built = layers(channels, args.kernel, device)
        runs = {label: partial(step, layer, x, g) for label, layer in built.items()}
        for run in runs.values():
            run(), run()
        times = {label: [] for label in runs}
        for _ in range(args.repeats):
            for label, run in runs.items():
                times[label].append(median_ms(run, 1, device))
        base = statistics.median(times[next(iter(runs))])
        for label, layer in built.items():
            ms = statistics.median(times[label])
            kernel = (
                f"{median_ms(layer.kernel, args.repeats, device):.2f}" if hasattr(layer, "kernel") else "-"
            )
            print(f"| {channels} | {label} | {ms:.1f} | {ms / base:.2f} | {kernel} |")


if __name__ == "__main__":
    main()
