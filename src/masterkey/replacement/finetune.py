"""Training with frozen depthwise filters: [B]'s fine-tuning and [Q]'s training from scratch.

Both studies train a network whose depthwise convolution *weights* are frozen
(``requires_grad = False``: neither the optimiser nor its weight decay touches them) while
everything else trains - the depthwise biases, pointwise layers, norms and head - with one
recipe through the training engine (:func:`masterkey.training.engine.train`); docs/methods.md
section 5.

* [B] Sec. 5 (:func:`finetune_frozen_task`, rule ``finetune_frozen``): a checkpoint's depthwise
  kernels replaced by a variant (``idealized-<method>``, ``masterkey-<K>``,
  ``masterkey-published``, ...), frozen, fine-tuned; ``learned`` (the network's own kernels,
  frozen, same recipe) is the fair baseline.  ``learnable-<method>`` and
  ``learnable-sampled-<method>`` ([B]'s learnable-scale experiment) instead turn every fitted
  depthwise convolution into idealized filters whose scales, amplitudes and offsets train with the
  rest (:func:`~masterkey.nets.scalespace_conv.to_scalespace`; the discrete analogue of the Gaussian
  or [B]'s sampled one); the trained network is stored with plain convolutions again, its initial
  and trained scales in the sidecar (``scales``).
* [Q] (:func:`frozen_keys_task`, rule ``train_frozen_keys``): the architecture trained from
  scratch with every depthwise filter frozen to one of ``K`` keys (published, own, or random;
  :mod:`.frozen`), only the per-channel bias learning, against the same recipe with learned
  filters.

Training data (:func:`training_data`): the demo model trains on its crops (``demo``); timm
models on ``imagenet_train`` (class folders, timm's training transform at the model's input
size).  Each task runs in every process of a torchrun job
(:func:`masterkey.training.distributed.launch`); rank 0 writes the trained checkpoint (its
sidecar holds the replacement and training summaries) and the metrics CSV.
"""

from __future__ import annotations

import shutil

import timm
from torch import nn

from ..clustering.master_keys import load_master_keys
from ..core.config import DEMO_MODEL
from ..core.errors import StaleFileError
from ..data.demo import DemoSettings, demo_dataset
from ..data.published import load_master_key_filters
from ..data.training_sets import DemoCrops
from ..nets.checkpoints import load_checkpoint, model_metadata, save_trained
from ..nets.demo import create_demo_network, evaluate_demo
from ..nets.scalespace_conv import bake_scalespace, scale_frame, to_scalespace
from ..training.datasets import imagenet_training_data
from ..training.distributed import distributed_context, launch
from ..training.engine import RunSettings, train
from ..training.recipe import Recipe
from ..training.sampling import seed_everything
from .evaluation import apply_variant, load_variant_inputs
from .frozen import freeze_depthwise, install_frozen_keys, random_keys, reference_by_layer
from .variants import is_finetune_only, parse_variant

__all__ = [
    "LEARNED_KEYS",
    "RANDOM_PREFIX",
    "frozen_keys_name",
    "training_data",
    "training_runtime",
    "finetune_frozen_task",
    "frozen_keys_task",
    "launch_task",
]

LEARNED_KEYS = "learned"
"""[Q]'s reference run: the same architecture and recipe with learned depthwise filters."""
RANDOM_PREFIX = "random-"
"""[Q]'s control: ``random-<K>``, K random frozen filters."""


def frozen_keys_name(keys: str, num_keys: int) -> str:
    """The run name of a [Q] setting: ``published``, ``<K>`` (own keys) or ``random`` ->
    ``keys-published``, ``keys-8``, ``random-8``; ``learned`` stays.

    >>> [frozen_keys_name(k, 8) for k in ("learned", "published", "own", "random")]
    ['learned', 'keys-published', 'keys-8', 'random-8']
    """
    return {
        "learned": LEARNED_KEYS,
        "published": "keys-published",
        "own": f"keys-{num_keys}",
        "random": f"{RANDOM_PREFIX}{num_keys}",
    }[keys]


def training_data(
    model_name: str,
    meta: dict,
    recipe: Recipe,
    *,
    demo: dict,
    imagenet_train: str | None,
    seed: int,
    eval_cache: str | None = None,
    eval_stride: int = 5,
):
    """``(dataset, num_classes, evaluation)`` of a model: the demo's crops and held-out
    evaluation for the demo model; otherwise the ImageNet-1k training folders (config
    ``imagenet_train``, :func:`~masterkey.data.training_sets.image_folder_dataset`; a missing path
    is a ``ConfigError``) with ``recipe``'s timm transform at the model's input size, evaluated
    during training on every ``eval_stride``-th image of the ImageNet validation cache
    ``eval_cache`` when given (``val_accuracy``; the cache is ordered by class, so a stride keeps
    every class), else not at all."""
    if model_name == DEMO_MODEL:
        dataset = demo_dataset(DemoSettings.from_section(demo), seed)
        return DemoCrops(dataset), dataset.num_classes, lambda model: evaluate_demo(model, dataset)
    return imagenet_training_data(meta["timm_name"], recipe, imagenet_train, eval_cache, eval_stride)


def _trainable_copy(
    weights, meta_path, drop_path: float, num_classes: int, seed: int
) -> tuple[nn.Module, dict]:
    """The checkpoint rebuilt for training: stochastic depth ``drop_path`` and a head of
    ``num_classes`` (a new, randomly initialised head where the checkpoint has none or another
    size, e.g. an FCMAE pre-trained backbone)."""
    stored, meta = load_checkpoint(weights, meta_path, reparameterize=False)
    kwargs = {**meta.get("model_kwargs", {}), "num_classes": num_classes}
    seed_everything(seed)  # a new head's initialisation
    model = timm.create_model(meta["timm_name"], pretrained=False, drop_path_rate=drop_path, **kwargs)
    missing, unexpected = model.load_state_dict(stored.state_dict(), strict=False)
    head = model.pretrained_cfg.get("classifier", "head")
    foreign = [k for k in (*missing, *unexpected) if not k.startswith(head)]
    if foreign:
        raise StaleFileError(weights, f"does not match {meta['timm_name']} outside its head: {foreign[:3]}")
    return model, {**meta, "model_kwargs": kwargs, "new_head": bool(missing or unexpected)}


def training_runtime(model_name: str, run: dict) -> RunSettings:
    """The runtime of a training job: the demo model always trains like the demo network itself
    (one CPU process, float32, crops drawn in the main process), so that its runs compare with it."""
    if model_name == DEMO_MODEL:
        run = {**run, "device": "cpu", "workers": 0}
    return RunSettings.from_section(run)


def _save_run(run, meta: dict, name: str, extra: dict, outputs: dict) -> None:
    """Rank 0: the trained network like any checkpoint (:func:`~masterkey.nets.checkpoints.save_trained`:
    its weight EMA when the recipe keeps one), its sidecar and the metrics CSV."""
    sidecar = model_metadata(
        run.model, meta["name"], source=f"trained by rule {name}", model_kwargs=meta.get("model_kwargs", {})
    )
    save_trained(run, {**sidecar, **extra}, outputs)


def _job(model_name, inputs, recipe, run, demo, imagenet_train, seed, eval_cache):
    """What both tasks start with: the recipe, the runtime and process group, the checkpoint's
    sidecar and the training data of :func:`training_data`."""
    recipe = Recipe.from_section(recipe)
    settings = training_runtime(model_name, run)
    context = distributed_context(settings.device)
    _, meta = load_checkpoint(inputs["weights"], inputs["meta"], reparameterize=False)
    data = training_data(
        model_name, meta, recipe, demo=demo, imagenet_train=imagenet_train, seed=seed, eval_cache=eval_cache
    )
    return recipe, settings, context, meta, data


def _train_and_save(model, data, recipe, settings, context, seed, run_dir, desc, save) -> None:
    """Train with the engine; rank 0 then calls ``save(result)`` and removes the run directory
    (its checkpoint is only needed by a killed run)."""
    dataset, num_classes, evaluation = data
    result = train(
        model,
        dataset,
        recipe,
        num_classes=num_classes,
        seed=seed,
        run_dir=run_dir,
        settings=settings,
        evaluation=evaluation,
        context=context,
        desc=desc,
    )
    if context.is_main:
        save(result)
        shutil.rmtree(run_dir, ignore_errors=True)


def launch_task(task: str, model_name: str, training: dict, threads: int, **params) -> None:
    """A rule script's call: ``task`` on the torchrun processes of ``model_name``'s runtime
    (:func:`training_runtime`), with the rule's ``training`` params and ``params``."""
    nproc = training_runtime(model_name, training["run"]).num_processes()
    launch(task, {"model_name": model_name, **training, **params}, nproc, threads=threads)


def finetune_frozen_task(
    *,
    model_name: str,
    variant: str,
    inputs: dict,
    recipe: dict,
    run: dict,
    demo: dict,
    imagenet_train: str | None,
    seed: int,
    run_dir: str,
    outputs: dict,
    eval_cache: str | None = None,
) -> None:
    """[B]'s frozen-filter fine-tuning of one (model, variant); a torchrun task.

    ``inputs``: paths ``weights``, ``meta``, ``kernels``, ``index`` and what the variant needs
    (:func:`~masterkey.replacement.variants.variant_input_paths`); ``recipe``: the recipe mapping
    (the demo's fine-tuning recipe, or ``replacement.finetune.recipe`` for timm models);
    ``run``: the ``training`` section; ``outputs``: ``weights``, ``meta``, ``metrics``.
    """
    recipe_, settings, context, meta, data = _job(
        model_name, inputs, recipe, run, demo, imagenet_train, seed, eval_cache
    )
    model, meta = _trainable_copy(inputs["weights"], inputs["meta"], recipe_.drop_path, data[1], seed)
    parsed, variant_inputs = parse_variant(variant), load_variant_inputs(variant, inputs)
    if is_finetune_only(parsed):  # learnable-[sampled-]<method>: the scales train with everything else
        model, conversion = to_scalespace(model, variant_inputs.fits, variant_inputs.index, parsed.method,
                                          gaussian=parsed.gaussian)  # fmt: skip
        initial = scale_frame(model)
        extra = {"replacement": {"variant": variant, "layers": len(conversion.layers),
                                 "channels": conversion.channels, "gaussian": parsed.gaussian}}  # fmt: skip

        def save(result):
            trained = result.ema if result.ema is not None else result.model
            scales = {"initial": _columns(initial), "trained": _columns(scale_frame(trained))}
            for network in (result.model, result.ema):
                if network is not None:
                    bake_scalespace(network)
            _save_run(result, meta, "finetune_frozen", {**extra, "scales": scales}, outputs)

    else:
        summary = apply_variant(model, parsed, variant_inputs, seed=seed)
        frozen = freeze_depthwise(model)
        extra = {"replacement": {"variant": variant, **summary}, "frozen_parameters": len(frozen)}

        def save(result):
            _save_run(result, meta, "finetune_frozen", extra, outputs)

    _train_and_save(model, data, recipe_, settings, context, seed + 2, run_dir, f"finetune {variant}", save)


def _columns(frame) -> dict[str, list]:
    """A frame as plain lists per column (for the JSON sidecar; NaN becomes None)."""
    return {c: [None if isinstance(v, float) and v != v else v for v in frame[c].tolist()] for c in frame}


def frozen_keys_task(
    *,
    model_name: str,
    keys: str,
    num_keys: int,
    inputs: dict,
    recipe: dict,
    assignment: str = "best",
    run: dict,
    demo: dict,
    imagenet_train: str | None,
    seed: int,
    run_dir: str,
    outputs: dict,
    eval_cache: str | None = None,
) -> None:
    """[Q]'s training from scratch with frozen depthwise filters; a torchrun task.

    ``keys``: ``learned`` (no frozen filters), ``published`` (the published 8, ``inputs
    ["published"]``), ``own`` (``inputs["master_keys"]``, the ``num_keys`` own keys of every
    kernel size) or ``random`` (``num_keys`` random filters per size,
    :func:`~.frozen.random_keys` seeded from ``seed``).  Channel assignment
    (:func:`~.frozen.assign_keys`), the same for every kind of keys so that the runs differ only in
    the filters: ``best``, each channel the key of largest ``|cos|`` to its kernel in the trained
    reference network of the same architecture (``inputs["kernels"]``/``["index"]``: the demo
    model, or the pretrained checkpoint); ``even``, channel ``c`` takes key ``c mod K``.  The
    architecture and its initialisation are those of ``model_name`` (the demo network from the
    config seed, or the timm architecture untrained, initialised from ``seed``).
    """
    recipe_, settings, context, meta, data = _job(
        model_name, inputs, recipe, run, demo, imagenet_train, seed, eval_cache
    )
    num_classes = data[1]
    if model_name == DEMO_MODEL:
        model = create_demo_network(DemoSettings.from_section(demo), num_classes, seed)
    else:
        kwargs = {**meta.get("model_kwargs", {}), "num_classes": num_classes}
        seed_everything(seed)
        model = timm.create_model(
            meta["timm_name"], pretrained=False, drop_path_rate=recipe_.drop_path, **kwargs
        )
        meta = {**meta, "model_kwargs": kwargs}
    summary = {"keys": keys, "num_keys": num_keys, "assignment": assignment}
    if keys != LEARNED_KEYS:
        reference = reference_by_layer(inputs["kernels"], inputs["index"])
        if keys == "published":
            bank = load_master_key_filters(inputs["published"])
        elif keys == "own":
            bank = load_master_keys(inputs["master_keys"], num_keys)
        else:
            sizes = {array.shape[-1] for array in reference.values()}
            bank = {f"{k}x{k}": random_keys(num_keys, k, seed + k) for k in sorted(sizes)}
        summary.update(install_frozen_keys(model, bank, reference if assignment == "best" else None))
    desc = f"train {frozen_keys_name(keys, num_keys)}"
    _train_and_save(
        model, data, recipe_, settings, context, seed + 1, run_dir, desc,
        lambda result: _save_run(result, meta, "train_frozen_keys", {"frozen_keys": summary}, outputs),
    )  # fmt: skip
