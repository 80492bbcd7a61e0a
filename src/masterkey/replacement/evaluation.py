"""Replacing the depthwise kernels of a network and evaluating it ([B] Sec. 5, [Q]; docs/methods.md s. 5).

Each function returns the JSON record that the workflow stores per model and variant
(``results/replacement/{model}/{variant}.json``) and that :mod:`masterkey.replacement.tables`
reads: ``model``, ``dataset``, ``variant``, the metrics of
:func:`masterkey.training.evaluate.evaluate` (``top1``, ``top5``, ``images``, ``seconds``,
``images_per_second``, ``device``) and the summary of :func:`~.build.build_variant`
(``replaced``, ``kept``, ``relative_change_median``, ``relative_change_mean``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from ..core.config import DEMO_MODEL
from ..core.errors import ConfigError, StaleFileError
from ..core.io import read_npy, read_parquet
from ..data.demo import DemoSettings, demo_dataset
from ..data.evalcache import EvalSet, load_eval_cache
from ..data.preprocessing import preprocessing_for_model
from ..data.published import load_master_key_filters
from ..kernels.store import load_index, load_kernels
from ..nets.depthwise import apply_kernels
from ..scalespace.fitting import METHODS
from ..training.evaluate import evaluate
from .build import VariantInputs, build_variant
from .variants import Variant, idealized_name, parse_variant, variant_needs

__all__ = [
    "load_variant_inputs",
    "load_eval_set",
    "apply_variant",
    "evaluate_variant",
    "variant_record",
    "best_idealized_method",
    "evaluate_stages",
]


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
        inputs.master_keys = read_npy(paths["master_keys"])
        if len(inputs.master_keys) != variant.num_keys:
            raise StaleFileError(
                paths["master_keys"],
                f"holds {len(inputs.master_keys)} master keys, variant {variant.name} "
                f"expects {variant.num_keys}",
            )
    return inputs


def load_eval_set(meta: dict, demo: DemoSettings | None = None, seed: int = 0, cache_path=None) -> EvalSet:
    """The evaluation set of a checkpoint (``meta``: its sidecar): the demo's held-out crops for the
    demo model, else the cached ImageNet validation images checked against the model's
    preprocessing."""
    if meta.get("name") == DEMO_MODEL:
        if demo is None:
            raise ValueError("the demo model is evaluated on the demo split; the demo settings are missing")
        return demo_dataset(demo, seed).eval_set()
    if cache_path is None:
        raise ConfigError("imagenet_val", f"model {meta.get('name')} needs the ImageNet validation images")
    return load_eval_cache(cache_path, preprocessing_for_model(meta["timm_name"]))


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
    seed: int = 0,
    batch_size: int = 128,
    max_images: int | None = None,
    device=None,
) -> dict:
    """Build ``variant``, write it into ``model`` (in place) and evaluate it on ``eval_set``;
    returns its record (see the module docstring)."""
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    summary = apply_variant(model, variant, inputs, seed=seed)
    metrics = evaluate(model, eval_set, batch_size=batch_size, device=device, max_images=max_images)
    return variant_record(model_name, eval_set, variant.name, metrics, summary)


def variant_record(
    model_name: str, eval_set: EvalSet, variant_name: str, metrics: dict, summary: dict
) -> dict:
    """The record of one model and variant (see the module docstring): its names, the metrics of
    :func:`masterkey.training.evaluate.evaluate` and the replacement summary."""
    return {"model": model_name, "dataset": eval_set.name, "variant": variant_name, **metrics, **summary}


def best_idealized_method(results: Sequence[dict]) -> str:
    """The fitting method whose ``idealized-<method>`` variant has the best top-1 (then top-5;
    ties go to the earlier method of :data:`~masterkey.scalespace.fitting.METHODS`)."""
    scored = []
    for record in results:
        variant = parse_variant(record["variant"])
        if variant.kind == "idealized" and variant.stage is None:
            scored.append((-record["top1"], -record["top5"], METHODS.index(variant.method), variant.method))
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

    The stages are those of the kernel index.  Returns ``{"model", "method", "stages": [record per
    stage, with "stage" and "method" added]}``; ``evaluation`` goes to :func:`evaluate_variant`.
    """
    records = []
    for stage in sorted(inputs.index["stage"].unique().tolist()):  # every build writes all kernels
        record = evaluate_variant(model, model_name, idealized_name(method, stage), inputs, eval_set,
                                  **evaluation)  # fmt: skip
        records.append({**record, "stage": stage, "method": method})
        print(records[-1])
    return {"model": model_name, "method": method, "stages": records}
