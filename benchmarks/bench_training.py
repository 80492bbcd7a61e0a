"""CPU training throughput of the demo network through the training engine, and its data loading rate.

Usage::

    python benchmarks/bench_training.py [--warmup 2] [--updates 8] [--threads 2]
        [--loader-batches 60] [--workers 0 1 2] [--skip-compile] [--repeats 1] [--seed 0]
        [--out table.csv]

The demo network (``demo.architecture``, timm ``convnext_atto``, 16 classes) is trained on
batches of 64 random 64 x 64 crops of the demo set (:class:`~masterkey.data.training_sets.DemoCrops`,
:func:`masterkey.nets.demo.demo_recipe` without lr warm-up and evaluation) by
:func:`masterkey.training.engine.train` on the CPU, one process, ``workers=0``, in three variants,
each a fresh model and run of ``warmup + updates`` updates; images/s are counted over the last
``updates`` only (a callback takes the time after each update), so start-up, the first
allocations and compilation fall into the warm-up:

* ``contiguous``: ``RunSettings(device="cpu")`` - the baseline (ratio 1.00);
* ``channels_last``: the engine applies ``RunSettings.channels_last`` on CUDA only, and on the CPU
  keeps the memory format the model arrives in (``.to(preserve_format)``), so the model is
  converted with ``model.to(memory_format=torch.channels_last)`` *before* ``train()``, and the
  stem convolution, whose input batch stays NCHW, then returns channels-last (a forward hook
  records its output format: note column).  After the stem the two variants do not differ in
  layout: timm's ConvNeXt permutes to NHWC around every LayerNorm, so from the stem's norm on the
  activations have channels-last strides in the contiguous run too, and what differs is the
  layout of the weights (and of the stem's output);
* ``torch.compile``: ``RunSettings(compile=True)``; compile time is in the warm-up (note column).

Data loading: the engine's loader set-up on its own - ``DataLoader(SeededSamples(DemoCrops),
batch_sampler=StepBatches(...), num_workers=w, pin_memory=False)`` as :func:`train` builds it on the
CPU - iterated for ``--loader-batches`` batches with ``w`` in ``--workers``; samples/s are counted
after the first batch (whose latency, including the start of the worker processes, is in the note),
ratios against 0 workers.  The note compares each rate with the baseline's training rate.

Each timing is the fastest of ``--repeats`` runs (the variants take turns, so a change of the
machine's load hits all of them alike); on a shared machine, read the load average printed above
the table before comparing rows.  ``torch.compile``'s warm-up includes compiling unless inductor's
cache (``/tmp/torchinductor_<user>``) holds the graphs from an earlier run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from masterkey.data.demo import DemoSettings, demo_dataset  # noqa: E402
from masterkey.data.training_sets import DemoCrops  # noqa: E402
from masterkey.nets.demo import create_demo_network, demo_recipe  # noqa: E402
from masterkey.training.engine import RunSettings, train  # noqa: E402
from masterkey.training.sampling import SeededSamples, StepBatches  # noqa: E402

CL = torch.channels_last
LOADER = "loader: SeededSamples(DemoCrops) + StepBatches"


def training_rate(crops, settings: DemoSettings, variant: str, warmup: int, updates: int, seed: int) -> dict:
    """Train a fresh demo network for ``warmup + updates`` updates in ``variant``; images/s over the
    last ``updates``."""
    model = create_demo_network(settings, crops.num_classes, seed)
    if variant == "channels_last":
        model = model.to(memory_format=CL)
    seen = {}  # the stem convolution's output format (no hook under torch.compile: it would be traced)

    def record_format(_module, _inputs, out):
        seen.setdefault("format", "channels-last" if out.is_contiguous(memory_format=CL) else "NCHW")

    hook = None if variant == "compile" else model.stem[0].register_forward_hook(record_format)
    times: dict[int, float] = {}
    recipe = demo_recipe(settings, steps=warmup + updates, eval_every=0, warmup_steps=0)
    run_settings = RunSettings(device="cpu", workers=0, compile=variant == "compile")
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the engine's one-line summary; stdout keeps the table
        run = train(model, crops, recipe, num_classes=crops.num_classes, seed=seed, settings=run_settings,
                    callbacks=[lambda done, _record: times.__setitem__(done, time.perf_counter())],
                    desc=variant)  # fmt: skip
    if hook is not None:
        hook.remove()
    seconds = times[warmup + updates] - times[warmup]
    images = updates * recipe.batch_size
    loss = float(run.log["train_loss"].iloc[-1])
    return {
        "images": images,
        "seconds": seconds,
        "per_second": images / seconds,
        "note": f"warm-up {times[warmup] - started:.1f} s; stem conv output "
        f"{seen.get('format', 'not recorded')}; last loss {loss:.3f}",
    }


def loading_rate(crops, batch_size: int, batches: int, workers: int, seed: int) -> dict:
    """Samples/s of the engine's loader (SeededSamples + StepBatches) with ``workers`` processes,
    counted after the first batch."""
    sampler = StepBatches(len(crops), batch_size, 1, 0, 1, seed, batches + 1)
    loader = DataLoader(SeededSamples(crops, seed), batch_sampler=sampler, num_workers=workers,
                        pin_memory=False, persistent_workers=False)  # fmt: skip
    started = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter()
    count = sum(len(images) for images, _labels in iterator)
    seconds = time.perf_counter() - first
    del iterator
    return {"images": count, "seconds": seconds, "per_second": count / seconds,
            "note": f"first batch after {first - started:.2f} s"}  # fmt: skip


def fastest(results: list[dict]) -> dict:
    """The fastest of ``results`` (the first when all failed), its note saying of how many."""
    done = [r for r in results if r["images"]]  # failed runs have none
    best = dict(max(done, key=lambda r: r["per_second"]) if done else results[0])
    if len(results) > 1:
        best["note"] += f"; fastest of {len(results)}"
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=2, help="updates before the timing starts")
    parser.add_argument("--updates", type=int, default=8, help="timed updates per variant")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--loader-batches", type=int, default=60, help="timed batches per loader run")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader processes")
    parser.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile run")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each timing; the fastest is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the table as CSV")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    total = time.perf_counter()
    load_before = os.getloadavg()[0]

    settings = DemoSettings()
    crops = DemoCrops(demo_dataset(settings, args.seed))
    batch, size = settings.batch_size, settings.crop_size
    variants = ["contiguous", "channels_last"] + ([] if args.skip_compile else ["compile"])
    runs = {variant: [] for variant in variants}
    for repeat in range(args.repeats):  # the variants take turns: a change of load hits all alike
        for variant in variants:
            print(f"training: {variant} ({repeat + 1}/{args.repeats}) ...", file=sys.stderr, flush=True)
            try:
                result = training_rate(crops, settings, variant, args.warmup, args.updates, args.seed)
            except Exception as err:  # noqa: BLE001 - e.g. no C++ compiler for torch.compile: report, go on
                message = f"FAILED: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:120]}"
                result = {"images": 0, "seconds": float("nan"), "per_second": float("nan"), "note": message}
            runs[variant].append(result)
    rows = [{"what": f"train() {settings.architecture} {size}x{size}, {variant}", "workers": 0,
             **fastest(runs[variant])} for variant in variants]  # fmt: skip
    baseline = rows[0]["per_second"]
    for row in rows:
        row["ratio"] = row["per_second"] / baseline

    loading = []
    for workers in args.workers:
        print(f"data loading: {workers} workers ...", file=sys.stderr, flush=True)
        result = fastest([loading_rate(crops, batch, args.loader_batches, workers, args.seed)
                          for _ in range(args.repeats)])  # fmt: skip
        result["note"] += f"; {result['per_second'] / baseline:.0f}x the training rate"
        loading.append({"what": LOADER, "workers": workers, **result})
    for row in loading:
        row["ratio"] = row["per_second"] / loading[0]["per_second"]
    rows += loading

    columns = ["what", "workers", "images", "seconds", "per_second", "ratio", "note"]
    table = pd.DataFrame(rows, columns=columns)
    print(f"\ndemo network {settings.architecture} ({crops.num_classes} classes), batch {batch} of "
          f"{size}x{size} crops; {args.warmup} warm-up + {args.updates} timed updates per variant and run; "
          f"loader {args.loader_batches} timed batches")  # fmt: skip
    load_after, seconds = os.getloadavg()[0], time.perf_counter() - total
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; load average "
          f"{load_before:.1f} before, {load_after:.1f} after; {seconds:.0f} s in all\n")  # fmt: skip
    header = ("what", "workers", "images", "seconds", "images/s", "ratio", "note")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['what']} | {r['workers']} | {r['images']} | {r['seconds']:.2f} | {r['per_second']:.1f} "
              f"| {r['ratio']:.2f} | {r['note']} |")  # fmt: skip
    print("\nratio: training rows against the contiguous run, loader rows against 0 workers (same run)")
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
