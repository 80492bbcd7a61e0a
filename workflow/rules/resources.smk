# Resource helpers for cluster execution (threads, memory, runtime, GPUs).
#
# Every job takes its `threads:` and `resources:` from these helpers, so that
# a job asks the scheduler for what its inputs need instead of one size for
# all. The numbers only matter on a cluster (profiles/slurm); local runs are
# bounded by --cores as usual. Memory and runtime grow with the retry attempt
# (the slurm profile retries once), so a job killed for memory or time gets
# more on its second try.
#
# CPU rules:
#     threads: scaled_threads(per_gb=2, maximum=8)
#     resources:
#         mem_mb=scaled_mem_mb(base=2000, per_input_mb=3),
#         runtime=scaled_runtime(base=10, per_gb=10),
# (estimate=model_checkpoint_mb stands in for a checkpoint input that is not on
# disk yet, so that dry runs show real numbers.)
#
# One-GPU rules (evaluation, small training; listed in GPU_RULES): the rule name
# must also be listed under `set-resources` in profiles/slurm/config.yaml, which
# alone requests the GPU (`gpu: 1` -> --gpus, or `gres: "gpu:1"` -> --gres), its
# partition and model; tests/workflow/test_workflow_slurm.py checks that both agree.
#     threads: GPU_THREADS
#     resources:
#         **gpu_resources(mem_mb=32000, runtime=240),
#
# Multi-GPU training rules (torchrun inside the job; listed in TRAINING_RULES):
# the GPU count is config `training.gpus`, requested by the rule itself in the
# form the profile's GPU block uses (--gpus=N, or --gres=gpu:N after the
# profile's one-line switch, with its GPU model); the profile gives them only the
# GPU partition (no `gpu:` line). CPUs: training.gpus x (training.workers + 1).
#     threads: training_threads
#     resources:
#         **training_resources(mem_mb=64000, runtime=72 * 60),
#
# Locally a `gpu`/`gres` resource limits nothing (Snakemake counts only the
# resources named in --resources), so `snakemake --cores 2` runs every rule on
# a machine without a GPU.
import math
import os
import re

from snakemake.exceptions import WorkflowError as _WorkflowError

# Rules that need one GPU. profiles/slurm/config.yaml requests one for each.
GPU_RULES = (
    "train_autoencoder",
    "reference_logits",
    "replace_and_evaluate",
    "replace_stages",
    "evaluate_finetuned",
    "shiftinv_dtcwpt",
    "shiftinv_first_layer",
)
# Multi-GPU training rules: training_resources() requests config training.gpus GPUs;
# profiles/slurm/config.yaml gives them the GPU partition only.
TRAINING_RULES = ("finetune_frozen", "train_frozen_keys", "train_niff")
# CPU cores of a GPU job (data loading workers); the slurm profile may override
# it per rule with `set-threads`.
GPU_THREADS = 8
# Largest threads request of a CPU rule when --cores does not say otherwise.
MAX_CPU_THREADS = 8

# Parameters (millions) of each timm ConvNeXt / ConvNeXt V2 size, for rules whose
# input is a checkpoint that is not on disk yet (fetch_weights downloads it).
_PARAMS_M = {
    "zepto": 2.2,
    "atto": 3.7,
    "femto": 5.2,
    "pico": 9.1,
    "nano": 15.6,
    "tiny": 28.6,
    "small": 50.2,
    "base": 88.6,
    "large": 197.8,
    "xlarge": 350.2,
    "huge": 660.3,
    "xxlarge": 846.5,
}


def _round_up(value, step):
    return int(math.ceil(value / step) * step)


def available_cores():
    """--cores of this run, or MAX_CPU_THREADS where none is set (cluster submission)."""
    try:
        cores = workflow.cores
    except _WorkflowError:
        cores = None
    return cores if isinstance(cores, int) and cores > 0 else MAX_CPU_THREADS


def input_mb(wildcards, input, estimate=None):
    """Total size in MB of a job's input files.

    Where the input is empty or not on disk yet (a dry run, a download),
    `estimate(wildcards)` stands in for it when given. Snakemake evaluates
    resources again when a job is about to run, so the real size wins then.
    """
    files = list(input)
    present = [f for f in files if os.path.exists(f)]
    total = sum(os.path.getsize(f) for f in present) / 2**20
    if estimate is not None and (not files or len(present) < len(files)):
        return max(total, float(estimate(wildcards)))
    return total


def checkpoint_mb(model):
    """Estimated float32 checkpoint size of a model in MB (its file size when given locally or by a
    package)."""
    spec = MODELS.get(model)
    files = weights_input(spec) if spec is not None and not spec.is_demo else []
    if files and os.path.exists(files[0]):
        return os.path.getsize(files[0]) / 2**20
    tokens = re.split(r"[._]", model.split(".")[0])
    params = max((_PARAMS_M[t] for t in tokens if t in _PARAMS_M), default=_PARAMS_M["base"])
    # ImageNet-22k heads add up to a third on top of the backbone.
    if "22k" in model or "12k" in model:
        params *= 1.3
    return params * 4 * 1e6 / 2**20


def scaled_threads(per_gb=2, minimum=1, maximum=MAX_CPU_THREADS, estimate=None):
    """Threads = minimum + per_gb per GB of input, at most `maximum` and at most --cores."""

    def threads(wildcards, input):
        wanted = minimum + int(per_gb * input_mb(wildcards, input, estimate) / 1024)
        return max(1, min(wanted, maximum, available_cores()))

    return threads


def scaled_mem_mb(base=2000, per_input_mb=3.0, maximum=256_000, estimate=None):
    """Memory in MB: base + per_input_mb per MB of input, times the attempt, rounded up to 500."""

    def mem_mb(wildcards, input, attempt):
        size = input_mb(wildcards, input, estimate)
        return min(_round_up((base + per_input_mb * size) * attempt, 500), maximum)

    return mem_mb


def scaled_runtime(base=10, per_gb=10.0, maximum=7 * 24 * 60, estimate=None):
    """Wall time in minutes: base + per_gb per GB of input, times the attempt, rounded up to 5."""

    def runtime(wildcards, input, attempt):
        size = input_mb(wildcards, input, estimate)
        return min(_round_up((base + per_gb * size / 1024) * attempt, 5), maximum)

    return runtime


def model_checkpoint_mb(wildcards):
    return checkpoint_mb(wildcards.model)


def demo_threads(wildcards):
    """Threads of the demo training: all of --cores locally, MAX_CPU_THREADS on a cluster."""
    return max(1, min(available_cores(), MAX_CPU_THREADS))


def _demo_work(wildcards):
    """Training work of the demo in units of 1000 crops of 64x64 pixels."""
    return DEMO.steps * DEMO.batch_size * (DEMO.crop_size / 64) ** 2 / 1000


def demo_mem_mb(wildcards, attempt):
    batch_mb = DEMO.batch_size * (DEMO.crop_size / 64) ** 2 * 20
    return _round_up((3000 + batch_mb) * attempt, 500)


def demo_runtime(wildcards, attempt):
    """About 0.15 CPU-minutes per 1000 crops on one core (measured), with a 2x margin."""
    return _round_up((10 + 0.3 * _demo_work(wildcards)) * attempt, 5)


def gpu_resources(mem_mb=16000, runtime=120, per_input_mb=0.0, per_gb_minutes=0.0, estimate=None):
    """Memory and runtime of a job that needs one GPU (the rule is listed in GPU_RULES).

    Memory and runtime scale with the input like the CPU helpers. The GPU itself
    is requested by the profile alone (set-resources keyed by rule name), with
    the partition and exactly one of `gpu: 1` -> sbatch --gpus=1 or
    `gres: "gpu:1"` -> sbatch --gres=gpu:1, so that switching between the two
    is one line there and the sbatch line never carries both.
    """
    return {
        "mem_mb": scaled_mem_mb(base=mem_mb, per_input_mb=per_input_mb, estimate=estimate),
        "runtime": scaled_runtime(base=runtime, per_gb=per_gb_minutes, estimate=estimate),
    }


def _training_setting(key):
    """Config training.<key>; its schema default where the config has no such key (a Snakefile
    that includes this file without validating its config)."""
    section = config.get("training") or {}
    if key in section:
        return section[key]
    from masterkey.core.config import load_schema

    return load_schema()["properties"]["training"]["properties"][key]["default"]


def training_threads(wildcards):
    """CPUs of a multi-GPU training job (TRAINING_RULES): one per torchrun process plus its data
    loader workers, training.gpus x (training.workers + 1), at most --cores (available_cores())."""
    wanted = int(_training_setting("gpus")) * (int(_training_setting("workers")) + 1)
    return max(1, min(wanted, available_cores()))


def _raw(value):
    """A profile's resource value as given (set-resources values may arrive wrapped)."""
    return str(getattr(value, "raw", value) or "")


def profile_gpu_block():
    """How the profile's GPU block (set-resources of GPU_RULES) asks for a GPU.

    Returns ``(uses_gres, model)``: True when it asks with ``gres: "gpu:..."`` (sbatch --gres)
    rather than ``gpu: 1`` (sbatch --gpus), and its GPU model (``gpu_model``, or the middle field
    of ``gres: "gpu:<model>:1"``) or None for any GPU.
    """
    uses_gres, model = False, None
    for name, resources in workflow.resource_settings.overwrite_resources.items():
        if name not in GPU_RULES:
            continue
        parts = [part.strip() for part in _raw(resources.get("gres")).split(",")]
        gpu_gres = [part for part in parts if part.startswith("gpu")]
        if gpu_gres:
            uses_gres = True
            fields = gpu_gres[0].split(":")
            model = model or (fields[1] if len(fields) == 3 else None)
        model = model or _raw(resources.get("gpu_model")) or None
    return uses_gres, model


def gpu_request(count):
    """Resources that ask Slurm for ``count`` GPUs the way the profile's GPU block asks for one.

    ``{"gpu": count}`` -> sbatch --gpus=count (``gpu_model`` added when the block names a model:
    --gpus=<model>:count), or ``{"gres": "gpu:count"}`` -> sbatch --gres=gpu:count (with the
    model inside, "gpu:<model>:count") after the profile's switch to gres. Locally these limit
    nothing unless --resources names them.
    """
    uses_gres, model = profile_gpu_block()
    if uses_gres:
        return {"gres": f"gpu:{model}:{count}" if model else f"gpu:{count}"}
    return {"gpu": count, "gpu_model": model} if model else {"gpu": count}


def training_resources(mem_mb=64000, runtime=24 * 60, per_input_mb=0.0, per_gb_minutes=0.0, estimate=None):
    """Memory, runtime and GPUs of a multi-GPU training job (the rule is listed in TRAINING_RULES).

    Memory (MB, the whole job) and runtime (minutes) as :func:`gpu_resources`, doubled on the
    retry; GPUs: config ``training.gpus`` (:func:`gpu_request`), one torchrun process each.
    A run killed by its time limit resumes from its last checkpoint when rerun.
    """
    resources = gpu_resources(mem_mb, runtime, per_input_mb, per_gb_minutes, estimate)
    return {**resources, **gpu_request(int(_training_setting("gpus")))}


def check_gpu_requests():
    """Refuse a profile that asks for a rule's GPU twice (sbatch --gpus and a gpu --gres), or that
    sets the GPU count of a training rule (it comes from config training.gpus)."""
    for name, resources in workflow.resource_settings.overwrite_resources.items():
        gres = _raw(resources.get("gres"))
        if name in TRAINING_RULES and ("gpu" in resources or "gpu" in gres):
            raise _WorkflowError(
                f"the profile sets the GPUs of the training rule {name} (gpu/gres); a training job "
                "asks for config training.gpus GPUs in the form of the profile's GPU block. Remove "
                f"that line from set-resources.{name} and set training.gpus in the config instead"
            )
        gpus = {"gpu", "gpu_model"} & set(resources)
        if gpus and "gpu" in gres:
            raise _WorkflowError(
                f"the profile asks twice for the GPU of {name}, with {sorted(gpus)} (sbatch --gpus) "
                f"and gres={gres!r} (sbatch --gres). Keep one line in the profile's GPU block: `gpu: 1` "
                f'(with gpu_model for a model) or `gres: "gpu:1"` (a model goes inside: "gpu:a100:1")'
            )


check_gpu_requests()
