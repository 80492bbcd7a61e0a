"""Exercise every CUDA code path of the training and evaluation layer once, in a few minutes.

Usage (from the repository root; ``gpu_check.sh`` sets ``PYTHONPATH=src``)::

    bash benchmarks/gpu_check.sh                       # on a machine with one GPU
    GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh  # the same code on the CPU, small sizes

Needs only torch, timm, numpy, scipy, pandas and scikit-learn (and what they pull in): where
``tqdm`` or ``jsonschema`` is not installed, a stub module that only lets ``masterkey`` import is put
into ``sys.modules`` (and, for the torchrun child, into a temporary folder on its ``PYTHONPATH``);
the table's header says which.  The parts, each in its own ``try`` so that one failure hides no
other (random weights and data throughout: speed and working code only, not accuracy):

1. ``train()`` of ``convnext_atto`` at 224 x 224, batch 64, 30 updates, bf16 autocast and
   channels-last, random tensors through the engine's loader (pinned memory, worker processes);
   images/s over the updates after the first 5;
2. ``train()`` in float16 with the gradient scaler, stopped after a checkpoint and resumed from it
   (``torch.load`` onto the GPU, CUDA RNG states, scaler state);
3. torchrun with one process (``python -m torch.distributed.run --standalone --nproc-per-node=1
   -m masterkey.training.worker job.json``) running :func:`torchrun_task` of this file: the engine
   at world size 1, where it does *not* wrap the model in DDP, so
4. a direct ``DistributedDataParallel`` step in a process group of size 1 (NCCL; gloo on the CPU)
   as the engine takes it at N processes: bf16, channels-last, ``no_sync`` for an accumulation
   micro-step, ``all_reduce`` of the loss, ``barrier``, ``all_gather_object``; its gradients must
   equal those of the unwrapped model;
5. the kernel autoencoder (:func:`masterkey.clustering.autoencoder.train_autoencoder`, a few epochs
   on random centre-normed 7x7 kernels, ``torch.use_deterministic_algorithms`` on CUDA) and
   :func:`~masterkey.clustering.autoencoder.encode`;
6. :func:`masterkey.training.evaluate.evaluate` with ``TopK`` (and ``Logits`` then ``Fidelity``)
   on a uint8 evaluation cache written in the format :func:`masterkey.data.evalcache.load_eval_cache`
   reads;
7. the pure forward rate (``torch.no_grad``, bf16 autocast, channels-last, random tensors) of
   ``convnext_atto`` and ``convnext_tiny``, the yardstick of the training and evaluation rates;
8. NIFF ([D], :mod:`masterkey.niff`): each layer variant (rfft / complex route, zero padding) on a
   channels-last float32 input under the autocast of part 1 against the same layer in float64 on the
   CPU, with a backward pass, then ``train()`` of ``niff_convnext_atto`` as in part 1;
9. the shift-invariance measures ([C], :func:`masterkey.shiftinv.filter_analysis`) of a ResNet-18's
   first layer on the device (float32) against float64 on the CPU, then their images/s on a batch of
   grayscale crops, and the DT-CWPT's (J = 3) where the ``dtcwt`` package is installed;
10. ``train()`` with ``torch.compile`` (last; skipped when less than ``COMPILE_BUDGET_S`` of the
   ``GPU_CHECK_BUDGET_S`` budget, default 270 s, is left).

Prints a table (path, status, seconds, images/s, the forward rate of the same network, note) and
exits with status 1 when a part failed.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")
CUDA = DEVICE.startswith("cuda")
BUDGET_S = float(os.environ.get("GPU_CHECK_BUDGET_S", "270"))
COMPILE_BUDGET_S = 120.0
# sizes: (image side, batch, updates) of the main training part; forward batch; cache images
SIZE, BATCH, UPDATES, TIMED_AFTER = (224, 64, 30, 5) if CUDA else (64, 8, 4, 1)
FORWARD_BATCH, FORWARD_ITERS = (256, 20) if CUDA else (8, 2)
CACHE_IMAGES = 2048 if CUDA else 32
KERNELS, AE_EPOCHS = (20000, 3) if CUDA else (1000, 2)
PRECISION = "bf16, channels-last" if CUDA else "fp32, NCHW (the engine's amp and channels-last are CUDA-only)"

TQDM_STUB = '''"""Stand-in for tqdm (not installed): no bar, the same calls (benchmarks/gpu_check.py)."""


class tqdm:
    def __init__(self, iterable=None, *args, **kwargs):
        self.iterable, self.n = iterable, kwargs.get("initial", 0)

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        self.n += n

    def set_postfix(self, *args, **kwargs):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def close(self):
        pass

    @staticmethod
    def write(text, *args, **kwargs):
        print(text)

    @classmethod
    def set_lock(cls, lock):
        cls._lock = lock

    @classmethod
    def get_lock(cls):
        return getattr(cls, "_lock", None)
'''

JSONSCHEMA_STUB = '''"""Stand-in for jsonschema (not installed): masterkey imports; no config validation."""


class ValidationError(Exception):
    pass


class Draft202012Validator:
    VALIDATORS = {"properties": None}

    def __init__(self, *args, **kwargs):
        raise RuntimeError("jsonschema is not installed: no config validation (benchmarks/gpu_check.py stub)")


class validators:
    @staticmethod
    def extend(validator_class, extra):
        return validator_class
'''

STUBS = {  # name: (source of the package, {submodule: source})
    "tqdm": (TQDM_STUB, {"auto": "from tqdm import tqdm  # noqa: F401\n"}),
    "jsonschema": (JSONSCHEMA_STUB, {}),
}
CL = torch.channels_last


def install_stubs() -> list[str]:
    """Put a stub into ``sys.modules`` for each of :data:`STUBS` that is not importable; returns
    their names."""
    missing = [name for name in STUBS if importlib.util.find_spec(name) is None]
    for name in missing:
        source, submodules = STUBS[name]
        module = _stub_module(name, source, package=True)
        for sub, text in submodules.items():
            setattr(module, sub, _stub_module(f"{name}.{sub}", text))
    return missing


def _stub_module(name: str, source: str, package: bool = False) -> types.ModuleType:
    """A module made from ``source``, with a spec (``importlib.util.find_spec`` of a module in
    ``sys.modules`` reads it: torch._dynamo does so for tqdm), registered in ``sys.modules``."""
    spec = importlib.machinery.ModuleSpec(name, None, is_package=package)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"<{name} stub>", "exec"), module.__dict__)
    sys.modules[name] = module
    return module


def write_stub_folder(names: list[str], folder: Path) -> None:
    """The stubs as packages under ``folder`` (for a child process's ``PYTHONPATH``)."""
    for name in names:
        source, submodules = STUBS[name]
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text(source)
        for sub, text in submodules.items():
            (folder / name / f"{sub}.py").write_text(text)


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def autocast():
    return torch.autocast("cuda", dtype=torch.bfloat16) if CUDA else torch.autocast("cpu", enabled=False)


def random_images(count: int, size: int, classes: int = 1000, seed: int = 0):
    """A ``TensorDataset`` of ``count`` normal-random images ``(3, size, size)`` and labels."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 3, size, size, generator=generator)
    labels = torch.randint(classes, (count,), generator=generator)
    return torch.utils.data.TensorDataset(images, labels)


def timed_train(model, dataset, recipe, settings, timed_after: int, **kwargs):
    """``train()`` with a callback that times the updates after ``timed_after``; returns the run and
    images/s over those updates."""
    from masterkey.training.engine import train

    times = {}

    def clock(done, _record):
        sync()
        times[done] = time.perf_counter()

    run = train(model, dataset, recipe, num_classes=1000, seed=0, settings=settings,
                callbacks=[clock, *kwargs.pop("callbacks", ())], **kwargs)  # fmt: skip
    last = max(times)
    rate = (last - timed_after) * recipe.batch_size / (times[last] - times[timed_after])
    return run, rate


def loader_workers() -> int:
    return min(8, (os.cpu_count() or 2) // 2) if CUDA else 0


# ------------------------------------------------------------------------------------------------ parts


def part_train_bf16():
    import timm

    from masterkey.training.engine import RunSettings
    from masterkey.training.recipe import Recipe

    model = timm.create_model("convnext_atto", num_classes=1000)
    recipe = Recipe(steps=UPDATES, batch_size=BATCH, warmup_steps=2)
    settings = RunSettings(device=DEVICE, workers=loader_workers(), amp="bfloat16", channels_last=True)
    run, rate = timed_train(model, random_images(4 * BATCH, SIZE), recipe, settings, TIMED_AFTER)
    weight = model.stem[0].weight
    losses = run.log["train_loss"]
    assert losses.notna().all() and np.isfinite(losses).all(), "non-finite training loss"
    assert weight.device.type == torch.device(DEVICE).type, f"model on {weight.device}"
    if CUDA:
        assert run.summary["amp"] == "bfloat16" and run.summary["channels_last"], run.summary
        assert weight.is_contiguous(memory_format=torch.channels_last), "weights not channels-last"
    note = (f"{UPDATES} updates of {BATCH} at {SIZE}px, {PRECISION}, {settings.workers} loader workers, "
            f"loss {losses.iloc[0]:.2f} -> {losses.iloc[-1]:.2f}")  # fmt: skip
    return rate, note, "convnext_atto"


def part_fp16_resume():
    import timm

    from masterkey.training.engine import CHECKPOINT, RunSettings, train
    from masterkey.training.recipe import Recipe

    class Stop(Exception):
        pass

    def stop_at(step):
        def callback(done, _record):
            if done == step:
                raise Stop

        return callback

    recipe = Recipe(steps=6, batch_size=16)
    settings = RunSettings(device=DEVICE, workers=0, amp="float16", checkpoint_every=3)
    dataset = random_images(32, 64)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as run_dir:
        torch.manual_seed(0)
        try:
            train(timm.create_model("convnext_atto", num_classes=1000), dataset, recipe, num_classes=1000,
                  seed=0, run_dir=run_dir, settings=settings, callbacks=[stop_at(5)])  # fmt: skip
            raise AssertionError("the first run was not stopped")
        except Stop:
            pass
        state = torch.load(Path(run_dir) / CHECKPOINT, map_location="cpu", weights_only=False)
        assert state["step"] == 3, f"checkpoint at update {state['step']}, expected 3"
        if CUDA:
            assert state["scaler"] and "cuda" in state["rng"][0], "no scaler or CUDA RNG state saved"
        torch.manual_seed(1)  # other initial weights: the checkpoint must replace them
        run = train(timm.create_model("convnext_atto", num_classes=1000), dataset, recipe, num_classes=1000,
                    seed=0, run_dir=run_dir, settings=settings)  # fmt: skip
    assert run.summary["resumed_at"] == 3, run.summary
    assert len(run.log) == 6 and np.isfinite(run.log["train_loss"]).all(), run.log
    return None, "float16 + GradScaler, checkpoint at 3, killed at 5, resumed at 3 -> 6", ""


def torchrun_task(device: str, size: int, batch: int, steps: int, out: str) -> None:
    """The task of the torchrun child (part 3): the engine at the world size torchrun gives."""
    import timm

    from masterkey.training.distributed import distributed_context
    from masterkey.training.engine import RunSettings
    from masterkey.training.recipe import Recipe

    context = distributed_context(device)
    settings = RunSettings(device=device, workers=0)
    model = timm.create_model("convnext_atto", num_classes=1000)
    run, rate = timed_train(model, random_images(2 * batch, size), Recipe(steps=steps, batch_size=batch),
                            settings, 1, context=context)  # fmt: skip
    result = {"world_size": context.world_size, "rank": context.rank, "device": str(context.device),
              "env_world_size": os.environ.get("WORLD_SIZE"), "processes": run.summary["processes"],
              "images_per_second": rate, "loss": float(run.log["train_loss"].iloc[-1])}  # fmt: skip
    Path(out).write_text(json.dumps(result))


def part_torchrun(stub_folder: Path | None):
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        out, job = Path(folder) / "result.json", Path(folder) / "job.json"
        params = {"device": DEVICE, "size": 64, "batch": 32, "steps": 4, "out": str(out)}
        job.write_text(json.dumps({"task": "gpu_check:torchrun_task", "params": params}))
        paths = [str(REPO / "src"), str(REPO / "benchmarks"), os.environ.get("PYTHONPATH", "")]
        paths += [str(stub_folder)] if stub_folder else []
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                   "-m", "masterkey.training.worker", str(job)]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
        if done.returncode:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"torchrun exit status {done.returncode}: {tail}")
        result = json.loads(out.read_text())
    assert result["world_size"] == 1 and result["env_world_size"] == "1", result
    assert result["processes"] == 1 and np.isfinite(result["loss"]), result
    note = f"worker on {result['device']}, world {result['world_size']}: no DDP wrap in the engine; 4 updates"
    return result["images_per_second"], note, ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def part_ddp():
    import timm
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    backend = "nccl" if CUDA else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        device = torch.device(DEVICE)
        torch.manual_seed(0)
        model = timm.create_model("convnext_atto", num_classes=1000).to(device, memory_format=CL)
        twin = timm.create_model("convnext_atto", num_classes=1000).to(device, memory_format=CL)
        twin.load_state_dict(model.state_dict())
        network = DistributedDataParallel(model, device_ids=[device.index or 0] if CUDA else None)
        data = random_images(2 * BATCH, SIZE)
        inputs = data.tensors[0].to(device).contiguous(memory_format=CL)
        targets = data.tensors[1].to(device)
        halves = list(zip(inputs.chunk(2), targets.chunk(2), strict=True))
        started = None
        for step in range(4):  # the first is the warm-up
            if step == 1:
                sync()
                started = time.perf_counter()
            for part, (x, y) in enumerate(halves):  # accumulation: no gradient sync on the first half
                context = network.no_sync() if part == 0 else contextlib.nullcontext()
                with context, autocast():
                    loss = torch.nn.functional.cross_entropy(network(x), y) / 2
                loss.backward()
            if step < 3:
                network.zero_grad(set_to_none=True)
        sync()
        rate = 3 * 2 * BATCH / (time.perf_counter() - started)
        for x, y in halves:  # the same two halves without DDP
            with autocast():
                (torch.nn.functional.cross_entropy(twin(x), y) / 2).backward()
        worst = max(float((a.grad - b.grad).abs().max() / b.grad.abs().max().clamp_min(1e-12))
                    for a, b in zip(model.parameters(), twin.parameters(), strict=True))  # fmt: skip
        assert worst < 1e-2, f"DDP gradients differ from the plain model's by {worst:.2e} (relative)"
        total = loss.detach().clone()
        dist.all_reduce(total)
        dist.barrier()
        gathered = [None]
        dist.all_gather_object(gathered, {"rank": dist.get_rank()})
        assert gathered == [{"rank": 0}] and torch.isfinite(total), (gathered, total)
    finally:
        dist.destroy_process_group()
    note = f"{backend}, 2 micro-steps (no_sync); gradients = the plain model's (max rel. diff {worst:.1e})"
    return rate, note, ""


def part_autoencoder():
    from masterkey.clustering.autoencoder import encode, train_autoencoder
    from masterkey.clustering.settings import ClusteringSettings

    rng = np.random.default_rng(0)
    kernels = rng.normal(size=(KERNELS, 7, 7)).astype(np.float32)
    kernels -= kernels.mean(axis=(1, 2), keepdims=True)
    kernels /= np.sqrt((kernels**2).sum(axis=(1, 2), keepdims=True))
    settings = ClusteringSettings(epochs=AE_EPOCHS, min_steps=0, restarts=2, batch_size=256)
    started = time.perf_counter()
    model, history = train_autoencoder(kernels, settings, seed=0, device=DEVICE, progress=False)
    seconds = time.perf_counter() - started
    assert len(history) == 2 * AE_EPOCHS and np.isfinite(history["loss"]).all(), history
    codes = encode(model, kernels, device=DEVICE)
    assert codes.shape == (KERNELS, 1) and 0 <= codes.min() and codes.max() <= 1, codes.shape
    rate = 2 * AE_EPOCHS * KERNELS / seconds
    note = f"{KERNELS} kernels x {AE_EPOCHS} epochs x 2 restarts: {rate:,.0f} kernels/s; encode ok"
    return None, note, ""


def part_evaluate():
    import timm

    from masterkey.core.io import write_json
    from masterkey.data.evalcache import CACHE_FORMAT, eval_cache_files, load_eval_cache
    from masterkey.data.preprocessing import CACHE_VERSION, Preprocessing
    from masterkey.training.evaluate import Fidelity, Logits, TopK, evaluate

    preprocessing = Preprocessing(input_size=(3, SIZE, SIZE), crop_pct=0.875)
    shape = (CACHE_IMAGES, 3, SIZE, SIZE)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        files = eval_cache_files(Path(folder) / "fake.npy")
        np.save(files.images, rng.integers(0, 256, shape, dtype=np.uint8))
        np.save(files.labels, rng.integers(0, 1000, CACHE_IMAGES).astype(np.int64))
        sidecar = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "name": "fake", "dtype": "uint8",
                   "preprocessing": preprocessing.as_dict(), "key": preprocessing.key(),
                   "num_images": CACHE_IMAGES, "shape": list(shape)}  # fmt: skip
        write_json(sidecar, files.meta)
        eval_set = load_eval_cache(files.images, preprocessing)
        model = timm.create_model("convnext_atto", num_classes=1000)
        evaluate(model, eval_set, batch_size=256, device=DEVICE, max_images=256)  # warm-up
        logits = Logits()
        result = evaluate(model, eval_set, [TopK((1, 5)), logits], batch_size=256, device=DEVICE)
        fidelity = evaluate(model, eval_set, [Fidelity(logits.logits)], batch_size=256, device=DEVICE)
    assert result["images"] == CACHE_IMAGES and 0 <= result["top1"] <= result["top5"] <= 1, result
    assert fidelity["agreement"] > 0.9 and fidelity["kl"] < 1e-2, fidelity
    note = (f"{CACHE_IMAGES} uint8 {SIZE}px from a cache file, TopK + Logits, then Fidelity: agreement "
            f"{fidelity['agreement']:.3f}, KL {fidelity['kl']:.1e}")  # fmt: skip
    return result["images_per_second"], note, "convnext_atto"


def part_niff():
    import timm

    from masterkey.niff import NIFFConv2d  # also registers the niff_* names with timm
    from masterkey.training.engine import RunSettings
    from masterkey.training.recipe import Recipe

    torch.manual_seed(0)
    x = torch.randn(4, 24, 14, 9, dtype=torch.float64)  # not square, an odd side
    worst = 0.0
    for padding, route in (("circular", "rfft"), ("circular", "complex"), ("zeros", "rfft")):
        layer = NIFFConv2d(24, padding=padding, route=route).double()
        reference = layer(x).detach()
        layer = layer.to(DEVICE, torch.float32)
        inputs = x.to(DEVICE, torch.float32).contiguous(memory_format=CL).requires_grad_()
        with autocast():
            out = layer(inputs)
        out.square().sum().backward()
        assert out.dtype == torch.float32 and torch.isfinite(inputs.grad).all(), (padding, route, out.dtype)
        error = (out.detach().double().cpu() - reference).abs().max() / reference.abs().max()
        worst = max(worst, float(error))
    assert worst < 1e-4, f"NIFF on {DEVICE} differs from float64 on the CPU by {worst:.1e} (relative)"
    model = timm.create_model("niff_convnext_atto", num_classes=1000)
    recipe = Recipe(steps=UPDATES, batch_size=BATCH, warmup_steps=2)
    settings = RunSettings(device=DEVICE, workers=loader_workers(), amp="bfloat16", channels_last=True)
    run, rate = timed_train(model, random_images(4 * BATCH, SIZE), recipe, settings, TIMED_AFTER)
    losses = run.log["train_loss"]
    assert np.isfinite(losses).all(), "non-finite training loss"
    note = (f"3 layer variants = float64 CPU (max rel. diff {worst:.1e}); niff_convnext_atto {UPDATES} "
            f"updates of {BATCH} at {SIZE}px, {PRECISION}, "
            f"loss {losses.iloc[0]:.2f} -> {losses.iloc[-1]:.2f}")  # fmt: skip
    return rate, note, ""


def part_shiftinv():
    import timm

    from masterkey.shiftinv import filter_analysis

    torch.manual_seed(0)
    kernels = timm.create_model("resnet18").conv1.weight.detach().double().numpy()
    images = torch.rand(4, 96, 96, dtype=torch.float64).numpy()
    reference = filter_analysis(images, kernels, 2, device="cpu")  # float64 on the CPU
    on_device = filter_analysis(images.astype(np.float32), kernels, 2, device=DEVICE)
    columns = ["discrepancy", "instability", "instability_cmod"]
    worst = float((on_device[columns] - reference[columns]).abs().max().max())
    assert worst < 1e-3, f"shift measures on {DEVICE} differ from float64 on the CPU by {worst:.1e}"
    count, side = (256, 320) if CUDA else (8, 160)
    batch = torch.rand(count, side, side).numpy()
    filter_analysis(batch[:2], kernels, 2, device=DEVICE)  # warm-up
    sync()
    started = time.perf_counter()
    filter_analysis(batch, kernels, 2, device=DEVICE, batch_size=32)
    sync()
    rate = count / (time.perf_counter() - started)
    note = (f"ResNet-18 conv1 (64 RGB 7x7, m=2, 3x3/2 pool) = float64 CPU (max abs diff {worst:.1e}); "
            f"{count} images of {side}px")  # fmt: skip
    try:
        from masterkey.shiftinv import equivalent_filters

        filters = equivalent_filters(3)
    except ModuleNotFoundError as err:
        return rate, note + f"; DT-CWPT not run ({err})", ""
    started = time.perf_counter()
    filter_analysis(batch, filters, 4, device=DEVICE, batch_size=32)
    sync()
    note += f"; DT-CWPT J=3 (128 filters) {count / (time.perf_counter() - started):.0f} images/s"
    return rate, note, ""


def forward_rate(architecture: str) -> float:
    import timm

    model = timm.create_model(architecture, num_classes=1000).to(DEVICE, memory_format=CL).eval()
    inputs = torch.randn(FORWARD_BATCH, 3, SIZE, SIZE, device=DEVICE).contiguous(memory_format=CL)
    with torch.no_grad(), autocast():
        for _ in range(3):
            model(inputs)
        sync()
        started = time.perf_counter()
        for _ in range(FORWARD_ITERS):
            model(inputs)
        sync()
    return FORWARD_ITERS * FORWARD_BATCH / (time.perf_counter() - started)


def part_compile():
    import timm

    from masterkey.training.engine import RunSettings
    from masterkey.training.recipe import Recipe

    model = timm.create_model("convnext_atto", num_classes=1000)
    recipe = Recipe(steps=10 if CUDA else 3, batch_size=BATCH)
    settings = RunSettings(device=DEVICE, workers=loader_workers(), compile=True)
    started = time.perf_counter()
    run, rate = timed_train(model, random_images(4 * BATCH, SIZE), recipe, settings, 3 if CUDA else 2)
    assert np.isfinite(run.log["train_loss"]).all(), run.log
    seconds = time.perf_counter() - started
    note = f"{recipe.steps} updates of {BATCH} at {SIZE}px, {PRECISION}; {seconds:.0f} s with compile"
    return rate, note, "convnext_atto"


# ------------------------------------------------------------------------------------------------- main


def main() -> int:
    started = time.perf_counter()
    stubs = install_stubs()
    if CUDA and not torch.cuda.is_available():
        print(f"GPU_CHECK_DEVICE={DEVICE} but torch {torch.__version__} sees no GPU; "
              "run on a GPU machine or set GPU_CHECK_DEVICE=cpu", file=sys.stderr)  # fmt: skip
        return 1
    rows, forward = [], {}
    stub_folder = Path(tempfile.mkdtemp(prefix="gpu_check_stubs_")) if stubs else None
    if stub_folder:
        write_stub_folder(stubs, stub_folder)

    def run(path, function, *args):
        print(f"gpu_check: {path} ...", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        try:
            rate, note, network = function(*args)
            status = "ok"
        except Exception as err:  # noqa: BLE001 - every part reports, none hides another
            traceback.print_exc()
            rate, network = None, ""
            status, note = "FAILED", f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}"
        rows.append({"path": path, "status": status, "seconds": time.perf_counter() - begun, "rate": rate,
                     "network": network, "note": note})  # fmt: skip

    for architecture in ("convnext_atto", "convnext_tiny"):

        def measure(architecture=architecture):
            forward[architecture] = forward_rate(architecture)
            note = f"batch {FORWARD_BATCH}, {SIZE}px, {'bf16' if CUDA else 'fp32'}, channels-last, no_grad"
            return forward[architecture], note, ""

        run(f"forward {architecture} (yardstick)", measure)
    run("train(): bf16 autocast + channels-last", part_train_bf16)
    run("train(): float16 + GradScaler, checkpoint + resume", part_fp16_resume)
    run("torchrun --nproc-per-node=1 + worker + train()", part_torchrun, stub_folder)
    run("DistributedDataParallel, process group of 1", part_ddp)
    run("kernel autoencoder: train_autoencoder + encode", part_autoencoder)
    run("evaluate() from a uint8 eval cache", part_evaluate)
    run("NIFF layer variants + train() of niff_convnext_atto", part_niff)
    run("shift-invariance measures ([C]): agreement + images/s", part_shiftinv)
    if time.perf_counter() - started < BUDGET_S - COMPILE_BUDGET_S:
        run("train(): torch.compile", part_compile)
    else:
        note = f"less than {COMPILE_BUDGET_S:.0f} s of the {BUDGET_S:.0f} s budget left"
        rows.append({"path": "train(): torch.compile", "status": "skipped", "seconds": 0.0, "rate": None,
                     "network": "", "note": note})  # fmt: skip

    name = torch.cuda.get_device_name() if CUDA else "CPU (GPU_CHECK_DEVICE=cpu: small sizes)"
    print(f"\ngpu_check on {name}: torch {torch.__version__}, {time.perf_counter() - started:.0f} s in all; "
          f"stubbed modules: {', '.join(stubs) or 'none'}\n")  # fmt: skip
    header = ("path", "status", "seconds", "images/s", "forward images/s", "note")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        rate = f"{r['rate']:.0f}" if r["rate"] is not None else ""
        reference = f"{forward[r['network']]:.0f}" if r["network"] in forward else ""
        print(f"| {r['path']} | {r['status']} | {r['seconds']:.1f} | {rate} | {reference} | {r['note']} |")
    failed = [r["path"] for r in rows if r["status"] == "FAILED"]
    print(f"\n{len(failed)} of {len(rows)} parts failed" + (f": {'; '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
