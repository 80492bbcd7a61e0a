"""Speed and memory of the NIFF layer ([D]) against a 7x7 depthwise convolution, and of the NIFF demo network.

Usage::

    python benchmarks/bench_niff.py [--sizes 7 14 28 56 112] [--batch 32] [--channels 96] [--repeats 5]
        [--warmup 2] [--net-batch 64] [--net-size 64] [--device cpu|cuda|auto] [--threads N] [--quick]

Part 1, one layer, float32: :class:`masterkey.niff.NIFFConv2d` with the rfft route and circular padding
(the default), the complex route ([D]'s code) and zero padding, against ``nn.Conv2d(C, C, 7, padding=3,
groups=C)`` (with bias; the baseline, ratio 1.00), on an input ``(batch, C, H, H)`` that requires grad
(as inside a network), for each ``H`` of ``--sizes``.  One fwd+bwd is ``layer(x).backward(g)`` with a
fixed random ``g``, the parameter and input gradients set to ``None`` before (their allocation counts,
as after ``zero_grad()``); time: the median of ``--repeats`` after ``--warmup`` untimed runs, the layers
taking turns (a change of the machine's load hits all alike), ``torch.cuda.synchronize`` around each
on CUDA.  The NIFF rows include evaluating the coordinate MLPs on the frequency grid.  Memory:

* ``saved MiB`` (every device): bytes of the distinct storages autograd saves for backward
  (``torch.autograd.graph.saved_tensors_hooks``; a storage saved twice, or a view of it, counts once)
  plus the output: what the layer keeps alive between forward and backward inside a network, the
  input included where it is saved.  Transient buffers of forward and backward are not counted;
* ``peak MiB`` (CUDA only): ``torch.cuda.max_memory_allocated`` during one fwd+bwd, after
  ``reset_peak_memory_stats``, minus what was allocated before (input, ``g``, parameters).

Part 2, the network: ``timm.create_model("niff_convnext_atto", num_classes=16)`` against
``convnext_atto`` (the baseline), a batch of ``--net-batch`` random ``--net-size`` x ``--net-size``
images, float32, NCHW: a training step (train mode; forward, cross-entropy, backward,
``SGD(lr=0.01, momentum=0.9)`` step) and inference (eval mode, ``torch.inference_mode``);
images/s = batch / median step time, timed as in part 1.

``--quick`` (a smoke run): 2 repeats after 1 warm-up, sizes 7 14 28 unless ``--sizes`` is given.  On a
shared CPU whose load exceeds its cores, pass ``--threads 1``: oversubscribed threads made small layers
up to 50x slower there and the ratios meaningless; read the load average printed above the tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import timm  # noqa: E402

from masterkey.niff import NIFFConv2d  # noqa: E402 - also registers the niff_* names with timm

LAYERS: dict[str, Callable[[int], nn.Module]] = {  # the first is the baseline
    "conv 7x7 depthwise": lambda c: nn.Conv2d(c, c, 7, padding=3, groups=c),
    "NIFF rfft, circular": lambda c: NIFFConv2d(c),
    "NIFF complex, circular": lambda c: NIFFConv2d(c, route="complex"),
    "NIFF rfft, zeros": lambda c: NIFFConv2d(c, padding="zeros"),
}
NETWORKS = ("convnext_atto", "niff_convnext_atto")  # the first is the baseline
MIB = 2**20


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def race(runs: dict[str, Callable[[], None]], repeats: int, warmup: int, device) -> dict[str, float]:
    """Median ms of each of ``runs`` over ``repeats`` calls after ``warmup``; the runs take turns."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            sync(device)
            started = time.perf_counter()
            run()
            sync(device)
            times[name].append(1e3 * (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in times.items()}


def fwd_bwd(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).backward(g)

    return run


def saved_mib(layer: nn.Module, x: torch.Tensor) -> float:
    """MiB of the distinct storages saved for backward by ``layer(x)``, plus its output."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = layer(x)
    storages[out.untyped_storage().data_ptr()] = out.untyped_storage().nbytes()
    return sum(storages.values()) / MIB


def peak_mib(run: Callable[[], None], device: torch.device) -> float:
    """Peak CUDA memory of ``run()`` above what was allocated before it, MiB."""
    sync(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    sync(device)
    return (torch.cuda.max_memory_allocated(device) - before) / MIB


def layer_rows(size: int, args, device: torch.device) -> list[dict]:
    generator = torch.Generator().manual_seed(size)
    x = torch.randn(args.batch, args.channels, size, size, generator=generator).to(device).requires_grad_()
    g = torch.randn(x.shape, generator=generator).to(device)
    torch.manual_seed(0)
    layers = {name: make(args.channels).to(device) for name, make in LAYERS.items()}
    runs = {name: fwd_bwd(layer, x, g) for name, layer in layers.items()}
    ms = race(runs, args.repeats, args.warmup, device)
    rows = []
    for name, layer in layers.items():
        row = {"size": size, "layer": name, "ms": ms[name], "saved": saved_mib(layer, x)}
        if device.type == "cuda":
            x.grad = None
            layer.zero_grad(set_to_none=True)
            row["peak"] = peak_mib(runs[name], device)
        rows.append(row)
    for row in rows:  # rows[0] is the baseline
        row.update({f"{key}_ratio": row[key] / rows[0][key] for key in ("ms", "saved", "peak") if key in row})
    return rows


def network_rows(args, device: torch.device) -> list[dict]:
    x = torch.randn(args.net_batch, 3, args.net_size, args.net_size, device=device)
    labels = torch.randint(16, (args.net_batch,), device=device)
    runs, params = {}, {}
    for name in NETWORKS:
        torch.manual_seed(0)
        model = timm.create_model(name, num_classes=16).to(device)
        optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        params[name] = sum(p.numel() for p in model.parameters())

        def train_step(model=model, optimiser=optimiser) -> None:
            model.train()
            optimiser.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), labels).backward()
            optimiser.step()

        def inference(model=model) -> None:
            model.eval()
            with torch.inference_mode():
                model(x)

        runs[(name, "training step")], runs[(name, "inference")] = train_step, inference
    ms = race(runs, args.repeats, args.warmup, device)
    rows = [{"network": name, "mode": mode, "params": params[name], "ms": ms[(name, mode)],
             "rate": args.net_batch / ms[(name, mode)] * 1e3} for name, mode in runs]  # fmt: skip
    baseline = {row["mode"]: row["rate"] for row in rows if row["network"] == NETWORKS[0]}
    for row in rows:
        row["ratio"] = row["rate"] / baseline[row["mode"]]
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="feature-map sides H = W")
    parser.add_argument("--batch", type=int, default=32, help="batch of the layer benchmark")
    parser.add_argument("--channels", type=int, default=96, help="channels C of the layer benchmark")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before the timed ones")
    parser.add_argument("--net-batch", type=int, default=64, help="batch of the network benchmark")
    parser.add_argument("--net-size", type=int, default=64, help="image side of the network benchmark")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda[:i], auto (cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 repeats, 1 warm-up, sizes 7 14 28")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 2, 1
    args.sizes = args.sizes or ([7, 14, 28] if args.quick else [7, 14, 28, 56, 112])
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no GPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()[0]

    rows = []
    for size in args.sizes:
        print(f"layers at {size}x{size} ...", file=sys.stderr, flush=True)
        rows += layer_rows(size, args, device)
    print("networks ...", file=sys.stderr, flush=True)
    networks = network_rows(args, device)

    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"\nNIFF benchmark on {name}: torch {torch.__version__}, timm {timm.__version__}, "
          f"{os.cpu_count()} CPUs; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"{time.perf_counter() - started:.0f} s in all; median of {args.repeats} after {args.warmup} "
          "warm-up")  # fmt: skip
    print(f"\nOne layer, fwd+bwd, float32, batch {args.batch}, C = {args.channels}; saved MiB = distinct "
          "storages saved for backward + output; ratios: against the 7x7 depthwise conv\n")  # fmt: skip
    header = ["size", "layer", "ms fwd+bwd", "ratio", "saved MiB", "ratio"]
    header += ["peak MiB (CUDA, above input)", "ratio"] if cuda else []
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        peak = f" {r['peak']:.1f} | {r['peak_ratio']:.2f} |" if cuda else ""
        print(f"| {r['size']} | {r['layer']} | {r['ms']:.2f} | {r['ms_ratio']:.2f} | {r['saved']:.1f} "
              f"| {r['saved_ratio']:.2f} |{peak}")  # fmt: skip
    print(f"\nWhole network, float32, batch {args.net_batch} of {args.net_size}x{args.net_size}, 16 classes; "
          f"ratio of images/s against {NETWORKS[0]} in the same mode\n")  # fmt: skip
    header = ["network", "mode", "params", "ms / batch", "images/s", "ratio"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in networks:
        print(f"| {r['network']} | {r['mode']} | {r['params']:,} | {r['ms']:.1f} | {r['rate']:.0f} "
              f"| {r['ratio']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
