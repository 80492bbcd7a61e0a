"""Replacing the depthwise kernels of a network and evaluating it ([B] Sec. 5, [Q]; docs/methods.md s. 5).

A model is evaluated on up to two datasets (:data:`DATASETS`): its labelled set, when it has one
(:data:`HELDOUT`, the demo's held-out crops; :data:`IMAGENET_VAL`, the cached ImageNet-1k
validation images), and the unlabelled natural-image set of photographs shipped inside installed
packages (:data:`NATURAL`, :mod:`masterkey.data.natural`), in the model's own preprocessing.
Fidelity is measured against the *reference logits* of the unmodified network on the same set
(:func:`reference_logits`, computed once per model and dataset).

Each function returns the JSON record that the workflow stores per model, dataset and variant
(``results/replacement/{model}/{dataset}/{variant}.json``) and that
:mod:`masterkey.replacement.tables` reads: ``model``, ``dataset``, ``variant``, the metrics of
:func:`masterkey.training.evaluate.evaluate` (``top1``, ``top5`` on labelled sets; ``agreement``,
``kl`` (nats) when reference logits are given; ``images``, ``seconds``, ``images_per_second``,
``device``) and the summary of :func:`~.build.build_variant` (``replaced``, ``kept``,
``relative_change_median``, ``relative_change_mean``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from torch import nn

from ..clustering.master_keys import load_master_keys
from ..core.config import DEMO_MODEL
from ..core.errors import ConfigError, StaleFileError
from ..core.io import read_npy, read_parquet
from ..data.demo import DemoSettings, demo_dataset
from ..data.evalcache import EvalSet, load_eval_cache
from ..data.natural import NATURAL_SET, UNLABELLED, natural_eval_set
from ..data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, preprocessing_for_model
from ..data.published import load_master_key_filters
from ..kernels.store import load_index, load_kernels
from ..nets.depthwise import apply_kernels
from ..scalespace.fitting import METHODS
from ..training.evaluate import Fidelity, Logits, Metric, TopK, evaluate
from .build import VariantInputs, build_variant
from .variants import Variant, finetuned_name, idealized_name, parse_variant, variant_needs

__all__ = [
    "HELDOUT",
    "IMAGENET_VAL",
    "NATURAL",
    "DATASETS",
    "load_variant_inputs",
    "model_preprocessing",
    "load_eval_set",
    "reference_logits",
    "load_reference_logits",
    "load_evaluations",
    "evaluation_metrics",
    "apply_variant",
    "evaluate_variant",
    "variant_record",
    "best_idealized_method",
    "evaluate_stages",
    "evaluate_trained",
]

HELDOUT = "heldout"
"""The demo model's labelled set: its held-out validation crops."""
IMAGENET_VAL = "imagenet_val"
"""The labelled set of timm models: the ImageNet-1k validation images (config ``imagenet_val``)."""
NATURAL = NATURAL_SET
"""The unlabelled natural-image set of every model (:mod:`masterkey.data.natural`)."""
DATASETS = (HELDOUT, IMAGENET_VAL, NATURAL)


def load_variant_inputs(variant: Variant | str, paths: Mapping[str, str]) -> VariantInputs:
    """The kernels (``paths["kernels"]``, ``paths["index"]``) and whatever else ``variant`` needs
    (``paths["fits"]``, ``paths["master_keys"]`` or ``paths["published"]``), read and checked."""
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    known = ("kernels", "index", "fits", "master_keys", "published")
    inputs = VariantInputs(
        load_kernels(paths["kernels"]),
        load_index(paths["index"]),
        paths={name: str(paths.get(name)) for name in known if paths.get(name)},
    )
    needs = variant_needs(variant)
    if "fits" in needs:
        inputs.fits = read_parquet(paths["fits"])
    if "published" in needs:
        inputs.master_keys = load_master_key_filters(paths["published"])
    if "master_keys" in needs:
        inputs.master_keys = load_master_keys(paths["master_keys"], variant.num_keys)
    return inputs


def model_preprocessing(meta: dict, demo: DemoSettings | None = None) -> Preprocessing:
    """The evaluation preprocessing of a checkpoint (``meta``: its sidecar): timm's of its timm
    name; for the demo model a square ``demo.crop_size`` input (shorter side resized, centre crop,
    bilinear) with the ImageNet mean/std it was trained with."""
    if meta.get("name") != DEMO_MODEL:
        return preprocessing_for_model(meta["timm_name"])
    if demo is None:
        raise ValueError("the demo model's preprocessing needs the demo settings")
    size = (3, demo.crop_size, demo.crop_size)
    return Preprocessing(size, 1.0, "center", "bilinear", IMAGENET_MEAN, IMAGENET_STD)


def load_eval_set(
    dataset: str,
    meta: dict,
    *,
    demo: DemoSettings | None = None,
    seed: int = 0,
    cache_path=None,
    natural_images: int = 256,
) -> EvalSet:
    """The evaluation set ``dataset`` (one of :data:`DATASETS`) of a checkpoint (``meta``: its
    sidecar), named ``dataset``: the demo's held-out crops, the cached ImageNet validation images
    (``cache_path``, checked against the model's preprocessing) or ``natural_images`` natural
    inputs in the model's preprocessing (seeded by ``seed``)."""
    if dataset == NATURAL:
        return natural_eval_set(model_preprocessing(meta, demo), natural_images, seed)
    if dataset == HELDOUT:
        if meta.get("name") != DEMO_MODEL or demo is None:
            raise ValueError("the held-out split belongs to the demo model and needs the demo settings")
        eval_set = demo_dataset(demo, seed).eval_set()
    elif dataset == IMAGENET_VAL:
        if cache_path is None:
            needs = f"model {meta.get('name')} needs the ImageNet validation images"
            raise ConfigError("imagenet_val", needs)
        eval_set = load_eval_cache(cache_path, preprocessing_for_model(meta["timm_name"]))
    else:
        raise ValueError(f"unknown evaluation set {dataset!r}; known: {', '.join(DATASETS)}")
    return dataclasses.replace(eval_set, name=dataset)


def reference_logits(model: nn.Module, eval_set: EvalSet, **evaluation) -> np.ndarray:
    """The logits of ``model`` (unmodified) on ``eval_set``: float32 ``(N, C)``, in input order;
    ``evaluation`` (``batch_size``, ``max_images``, ``device``) goes to :func:`evaluate`."""
    logits = Logits()
    evaluate(model, eval_set, [logits], **evaluation)
    return logits.logits


def load_reference_logits(path, eval_set: EvalSet, max_images: int | None = None) -> np.ndarray:
    """The reference logits stored at ``path`` (:func:`reference_logits`), checked to have one
    row per input evaluated (``StaleFileError`` naming ``path`` otherwise)."""
    logits = read_npy(path)
    count = len(eval_set) if max_images is None else min(int(max_images), len(eval_set))
    if logits.ndim != 2 or len(logits) != count:
        raise StaleFileError(
            path, f"holds logits of shape {logits.shape} but {count} inputs of {eval_set.name} are evaluated"
        )
    return logits


def load_evaluations(
    reference_paths: Mapping[str, str], meta: dict, *, max_images: int | None = None, **eval_set_options
) -> dict[str, tuple[EvalSet, np.ndarray]]:
    """``{dataset: (eval_set, reference_logits)}`` for every dataset of ``reference_paths``
    (:func:`load_eval_set` with ``eval_set_options``, :func:`load_reference_logits`), the
    evaluations of :func:`masterkey.replacement.finetune.finetune_variant`."""
    evaluations = {}
    for dataset, path in reference_paths.items():
        eval_set = load_eval_set(dataset, meta, **eval_set_options)
        evaluations[dataset] = (eval_set, load_reference_logits(path, eval_set, max_images))
    return evaluations


def evaluation_metrics(eval_set: EvalSet, reference: np.ndarray | None = None) -> list[Metric]:
    """Top-1/top-5 accuracy when ``eval_set`` is labelled, fidelity (agreement, KL) when
    ``reference`` logits are given; ``ValueError`` when neither applies."""
    metrics: list[Metric] = [] if (eval_set.labels == UNLABELLED).any() else [TopK((1, 5))]
    if reference is not None:
        metrics.append(Fidelity(reference))
    if not metrics:
        raise ValueError(f"evaluation set {eval_set.name} has no labels; fidelity needs reference logits")
    return metrics


def apply_variant(model: nn.Module, variant: Variant | str, inputs: VariantInputs, seed: int = 0) -> dict:
    """Build ``variant`` (:func:`~.build.build_variant`) and write it into ``model`` (in place);
    returns the summary of the replacement."""
    new, summary = build_variant(variant, inputs, seed=seed)
    apply_kernels(model, new, inputs.index, inputs.paths.get("index"))
    return summary


def evaluate_variant(
    model: nn.Module,
    model_name: str,
    variant: Variant | str,
    inputs: VariantInputs,
    eval_set: EvalSet,
    *,
    reference: np.ndarray | None = None,
    seed: int = 0,
    batch_size: int = 128,
    max_images: int | None = None,
    device=None,
) -> dict:
    """Build ``variant``, write it into ``model`` (in place) and evaluate it on ``eval_set`` in one
    pass: accuracy where it has labels, fidelity to the ``reference`` logits (of the unmodified
    network on the same inputs) where given (:func:`evaluation_metrics`); returns its record (see
    the module docstring)."""
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    summary = apply_variant(model, variant, inputs, seed=seed)
    metrics = evaluate(model, eval_set, evaluation_metrics(eval_set, reference), batch_size=batch_size,
                       device=device, max_images=max_images)  # fmt: skip
    return variant_record(model_name, eval_set, variant.name, metrics, summary)


def evaluate_trained(
    model: nn.Module,
    meta: dict,
    model_name: str,
    dataset: str,
    reference_path,
    *,
    batch_size: int = 128,
    max_images: int | None = None,
    **eval_set_options,
) -> dict:
    """The record of a network trained with frozen replaced kernels (rule ``finetune_frozen``;
    ``meta``: its sidecar, with the ``replacement`` and ``training`` summaries) on ``dataset``:
    variant ``finetuned-<variant>``, the metrics of :func:`evaluation_metrics` against the
    unmodified network's reference logits, the replacement summary and ``finetune_steps``,
    ``train_seconds``, ``final_train_loss`` (mean of the last logged tenth of the run)."""
    eval_set = load_eval_set(dataset, meta, **eval_set_options)
    reference = (
        None if reference_path is None else load_reference_logits(reference_path, eval_set, max_images)
    )
    if reference is not None and reference.shape[1:] != (meta.get("num_classes", reference.shape[1]),):
        reference = None  # a new head (another class set): accuracy only
    metrics = evaluate(model, eval_set, evaluation_metrics(eval_set, reference), batch_size=batch_size,
                       max_images=max_images)  # fmt: skip
    replacement = dict(meta.get("replacement", {}))
    variant = replacement.pop("variant")
    training = meta.get("training", {})
    extra = {"finetune_steps": training.get("updates"), "train_seconds": training.get("train_seconds"),
             "final_train_loss": training.get("final_train_loss")}  # fmt: skip
    return {**variant_record(model_name, eval_set, finetuned_name(variant), metrics, replacement), **extra}


def variant_record(
    model_name: str, eval_set: EvalSet, variant_name: str, metrics: dict, summary: dict
) -> dict:
    """The record of one model and variant (see the module docstring): its names, the metrics of
    :func:`masterkey.training.evaluate.evaluate` and the replacement summary."""
    return {"model": model_name, "dataset": eval_set.name, "variant": variant_name, **metrics, **summary}


def _labelled(record: Mapping) -> bool:
    return record.get("top1") is not None and not math.isnan(record["top1"])


def best_idealized_method(results: Sequence[dict]) -> str:
    """The fitting method whose ``idealized-<method>`` variant has the best top-1 (then top-5) on
    a labelled set, or the best agreement (then the smallest KL) on an unlabelled one; ties go to
    the earlier method of :data:`~masterkey.scalespace.fitting.METHODS`."""
    scored = []
    for record in results:
        variant = parse_variant(record["variant"])
        if variant.kind == "idealized" and variant.stage is None:
            labelled = _labelled(record)
            score = (-record["top1"], -record["top5"]) if labelled else (-record["agreement"], record["kl"])
            scored.append((*score, METHODS.index(variant.method), variant.method))
    if not scored:
        raise ValueError("no idealized-<method> results to choose the best method from")
    return min(scored)[-1]


def evaluate_stages(
    model: nn.Module,
    model_name: str,
    method: str,
    inputs: VariantInputs,
    eval_set: EvalSet,
    **evaluation,
) -> dict:
    """Replace one stage at a time by ``idealized-<method>`` (the others learned) and evaluate.

    The stages are those of the kernel index.  Returns ``{"model", "dataset", "method", "stages":
    [record per stage, with "stage" and "method" added]}``; ``evaluation`` (e.g. ``reference``)
    goes to :func:`evaluate_variant`.
    """
    records = []
    for stage in sorted(inputs.index["stage"].unique().tolist()):  # every build writes all kernels
        record = evaluate_variant(model, model_name, idealized_name(method, stage), inputs, eval_set,
                                  **evaluation)  # fmt: skip
        records.append({**record, "stage": stage, "method": method})
        print(records[-1])
    return {"model": model_name, "dataset": eval_set.name, "method": method, "stages": records}
