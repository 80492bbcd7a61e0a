"""Replace the learned depthwise kernels of a network (methods.md section 5, [B] Section 5, [Q]).

Every variant maps the kernel arrays of a model (``arrays[key]`` of shape ``(N, kh, kw)`` with the
kernel index of :mod:`masterkey.kernels`) to new arrays of the same shapes; :func:`apply_kernels`
then writes them into the depthwise convolutions, leaving every other weight untouched.

Variants (:func:`parse_variant`):

* ``learned``: the kernels themselves (the baseline).
* ``idealized-<method>`` (``<method>`` in A, B, C1, C2, D1, D2): each kernel ``h`` is replaced by
  its own fitted template ``t`` (its automatically selected type with the method's scales, from
  ``results/fits/{model}.parquet``), mapped back by least squares, ``h' = a t + b`` with
  ``(a, b) = argmin ||a t + b - h||_2`` (:func:`least_squares_affine`), so that the kernel's mean
  is kept exactly and its amplitude (and sign) by the best scalar.  Kernels without a fit
  (degenerate: constant or all zero) get ``a = 0``, i.e. their mean.
* ``masterkey-<K>`` / ``masterkey-published``: each kernel is replaced by the best of the ``K``
  master key filters ``x`` (own clustering, or the 8 published ones), ``h' = a x + b`` by least
  squares; "best" is the key with the smallest least-squares residual, which is the largest
  ``|cos|`` between the centred kernel and the centred key (residual^2 = ``||h_c||^2 (1 - cos^2)``).
* ``random``: ``h' = mean(h) + ||h - mean(h)|| z / ||z||`` with ``z`` a centred Gaussian sample:
  same mean and same norm as ``h`` (``||h'||^2 = k^2 mean^2 + ||h_c||^2``), no structure.
* ``shuffled``: the kernels of each layer permuted across its channels (a seeded permutation).
* ``stage<i>-idealized-<method>``: ``idealized-<method>`` in stage ``i`` only, learned elsewhere.

Kernels whose shape has no counterpart in the replacement (e.g. band kernels ``1x9`` for
idealized models, or any size other than the master keys' size) are kept and counted as *kept*.
All randomness comes from ``seed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import UserError
from .fitting import METHODS
from .kernels import find_depthwise_convs
from .scalespace import model_templates

LEARNED = "learned"
CONTROLS = ("random", "shuffled")
PUBLISHED_KEYS = "published"

_VARIANT = re.compile(
    r"^(?:(?P<learned>learned)|(?P<control>random|shuffled)"
    r"|(?:stage(?P<stage>\d+)-)?idealized-(?P<method>[A-Z][0-9]?)"
    r"|masterkey-(?P<keys>\d+|published))$"
)


@dataclass(frozen=True)
class Variant:
    """A parsed variant name (see the module docstring)."""

    name: str
    kind: str  # "learned" | "idealized" | "masterkey" | "random" | "shuffled"
    method: str | None = None
    num_keys: int | None = None  # None for the published 8
    stage: int | None = None


def parse_variant(name: str) -> Variant:
    """Parse a variant name; unknown names raise :class:`UserError` listing the valid forms."""
    match = _VARIANT.match(str(name))
    if match is None or (match["method"] and match["method"] not in METHODS):
        raise UserError(
            f"unknown replacement variant {name!r}; valid: learned, random, shuffled, "
            f"idealized-<method> with method in {', '.join(METHODS)}, stage<i>-idealized-<method>, "
            "masterkey-<K>, masterkey-published"
        )
    if match["learned"]:
        return Variant(name, "learned")
    if match["control"]:
        return Variant(name, match["control"])
    if match["method"]:
        stage = None if match["stage"] is None else int(match["stage"])
        return Variant(name, "idealized", method=match["method"], stage=stage)
    keys = match["keys"]
    if keys != PUBLISHED_KEYS and int(keys) < 1:
        raise UserError(f"replacement variant {name!r}: the number of master keys must be >= 1")
    return Variant(name, "masterkey", num_keys=None if keys == PUBLISHED_KEYS else int(keys))


def least_squares_affine(templates: np.ndarray, kernels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, ``(a, b) = argmin_{a,b} ||a t + b - h||_2`` over the kernel's entries.

    ``a = <t - mean t, h - mean h> / ||t - mean t||^2`` and ``b = mean h - a mean t``; a constant
    (or non-finite) template gets ``a = 0, b = mean h``.  Shapes ``(N, kh, kw)``; returns two
    ``(N,)`` float64 arrays.
    """
    t = np.asarray(templates, dtype=np.float64).reshape(len(templates), -1)
    h = np.asarray(kernels, dtype=np.float64).reshape(len(kernels), -1)
    if t.shape != h.shape:
        raise ValueError(f"templates {t.shape} and kernels {h.shape} differ in shape")
    usable = np.isfinite(t).all(axis=1)
    t = np.where(usable[:, None], t, 0.0)
    t_c = t - t.mean(axis=1, keepdims=True)
    h_mean = h.mean(axis=1)
    denominator = (t_c**2).sum(axis=1)
    ok = usable & (denominator > 1e-12 * np.maximum(1.0, (t**2).sum(axis=1)))
    a = np.where(ok, (t_c * (h - h_mean[:, None])).sum(axis=1) / np.where(ok, denominator, 1.0), 0.0)
    b = h_mean - a * t.mean(axis=1)
    return a, b


def _affine(templates: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    a, b = least_squares_affine(templates, kernels)
    t = np.nan_to_num(np.asarray(templates, dtype=np.float64))
    return a[:, None, None] * t + b[:, None, None]


def _square_odd(key: str, array: np.ndarray) -> bool:
    kh, kw = array.shape[1:]
    return kh == kw and kh % 2 == 1 and kh >= 3


def fitted_templates(kernels: np.ndarray, fits: pd.DataFrame) -> np.ndarray:
    """Templates ``(N, k, k)`` of one kernel size from its rows of a fits table for one method.

    ``fits`` has one row per kernel (column ``filter`` = row in ``kernels``) with ``type``,
    ``sigma_x``, ``sigma_y``, ``alpha``; kernels without a (finite) fit get NaN templates.
    """
    n, k = len(kernels), kernels.shape[-1]
    templates = np.full((n, k, k), np.nan)
    if fits["filter"].duplicated().any():
        raise UserError(
            "fits table has several rows per kernel for one method; it is corrupt - rerun fit_kernels"
        )
    if len(fits) and (fits["filter"].min() < 0 or fits["filter"].max() >= n):
        raise UserError(
            "fits table does not match the kernels (filter index out of range); rerun fit_kernels"
        )
    for model_type, part in fits.groupby("type", sort=True):
        rows = part["filter"].to_numpy()
        sx, sy = part["sigma_x"].to_numpy(float), part["sigma_y"].to_numpy(float)
        alpha = part["alpha"].to_numpy(float)
        finite = np.isfinite(sx) & np.isfinite(sy)
        if model_type == "id-lap":
            finite &= np.isfinite(alpha)
        rows, sx, sy, alpha = rows[finite], sx[finite], sy[finite], alpha[finite]
        if not len(rows):
            continue
        if model_type in ("lap", "id-lap"):
            sy = sx  # single-scale models
        templates[rows] = model_templates(model_type, k, sx, sy, alpha if model_type == "id-lap" else None)
    return templates


def idealized_kernels(arrays: dict[str, np.ndarray], fits: pd.DataFrame, method: str):
    """Each kernel replaced by ``a t + b`` of its own fitted template for ``method``.

    Returns ``(new_arrays, replaced)`` with ``replaced[key]`` a boolean mask of the kernels that
    got a template (degenerate ones get their mean and count as replaced; shapes without a
    scale-space model are kept).
    """
    if method not in METHODS:
        raise UserError(f"unknown fitting method {method!r}; use one of {', '.join(METHODS)}")
    by_method = fits[fits["method"] == method]
    new, replaced = {}, {}
    for key, array in arrays.items():
        if not _square_odd(key, array):
            new[key], replaced[key] = array, np.zeros(len(array), bool)
            continue
        part = by_method[by_method["kernel_size"] == key]
        if len(part) != len(array):
            raise UserError(
                f"fits table has {len(part)} rows for method {method} and kernel size {key} but the model "
                f"has {len(array)} such kernels; the fits are stale - rerun fit_kernels"
            )
        templates = fitted_templates(array, part)
        new[key] = _affine(templates, array).astype(array.dtype)
        replaced[key] = np.ones(len(array), bool)
    return new, replaced


def best_master_keys(kernels: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the best key per kernel (largest ``|cos|`` of the centred arrays) and that ``|cos|``."""
    h = np.asarray(kernels, dtype=np.float64).reshape(len(kernels), -1)
    x = np.asarray(keys, dtype=np.float64).reshape(len(keys), -1)
    h = h - h.mean(axis=1, keepdims=True)
    x = x - x.mean(axis=1, keepdims=True)
    x_norm = np.linalg.norm(x, axis=1)
    if (x_norm <= 1e-12).any() or not np.isfinite(x).all():
        raise UserError("master key filters contain a constant or non-finite filter; rebuild them")
    h_norm = np.linalg.norm(h, axis=1)
    cosine = (h @ (x / x_norm[:, None]).T) / np.where(h_norm > 0, h_norm, 1.0)[:, None]
    best = np.abs(cosine).argmax(axis=1)
    return best, np.abs(cosine[np.arange(len(h)), best])


def masterkey_kernels(arrays: dict[str, np.ndarray], keys: np.ndarray):
    """Each kernel of the keys' size replaced by ``a x + b`` of its best master key ``x``."""
    keys = np.asarray(keys)
    if keys.ndim != 3 or not len(keys):
        raise UserError(f"master key filters must have shape (K, k, k), got {keys.shape}")
    new, replaced = {}, {}
    for key, array in arrays.items():
        if array.shape[1:] != keys.shape[1:]:
            new[key], replaced[key] = array, np.zeros(len(array), bool)
            continue
        best, _ = best_master_keys(array, keys)
        new[key] = _affine(keys[best], array).astype(array.dtype)
        replaced[key] = np.ones(len(array), bool)
    if not any(mask.any() for mask in replaced.values()):
        raise UserError(
            f"no depthwise kernel of size {keys.shape[1]}x{keys.shape[2]} to replace by the master keys"
        )
    return new, replaced


def random_kernels(arrays: dict[str, np.ndarray], seed: int):
    """Random kernels with each kernel's mean and norm (centred Gaussian direction)."""
    rng = np.random.default_rng([seed, 0x5EED])
    new, replaced = {}, {}
    for key in sorted(arrays):
        array = arrays[key]
        flat = array.reshape(len(array), -1).astype(np.float64)
        mean = flat.mean(axis=1, keepdims=True)
        spread = np.linalg.norm(flat - mean, axis=1, keepdims=True)
        z = rng.standard_normal(flat.shape)
        z -= z.mean(axis=1, keepdims=True)
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        new[key] = (mean + spread * z).reshape(array.shape).astype(array.dtype)
        replaced[key] = np.ones(len(array), bool)
    return new, replaced


def shuffled_kernels(arrays: dict[str, np.ndarray], index: pd.DataFrame, seed: int):
    """The kernels of every layer permuted across its channels (seeded, per layer)."""
    rng = np.random.default_rng([seed, 0x5AFF])
    new = {key: array.copy() for key, array in arrays.items()}
    for _, part in index.sort_values("row").groupby(["kernel_size", "layer"], sort=True):
        rows = part["row"].to_numpy()
        key = part["kernel_size"].iloc[0]
        new[key][rows] = arrays[key][rows[rng.permutation(len(rows))]]
    replaced = {key: np.ones(len(array), bool) for key, array in arrays.items()}
    return new, replaced


def restrict_to_stage(new: dict, replaced: dict, arrays: dict, index: pd.DataFrame, stage: int):
    """Keep the replacement only in ``stage`` (learned kernels elsewhere)."""
    stages = set(index["stage"].unique().tolist())
    if stage not in stages:
        raise UserError(f"stage {stage} does not exist; the model's stages are {sorted(stages)}")
    out, mask = {}, {}
    for key, array in arrays.items():
        rows = index[index["kernel_size"] == key].sort_values("row")
        in_stage = np.zeros(len(array), bool)
        in_stage[rows["row"].to_numpy()] = rows["stage"].to_numpy() == stage
        mask[key] = replaced[key] & in_stage
        out[key] = np.where(mask[key][:, None, None], new[key], array)
    return out, mask


def build_variant(
    variant: Variant | str,
    arrays: dict[str, np.ndarray],
    index: pd.DataFrame,
    fits: pd.DataFrame | None = None,
    master_keys: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict]:
    """The kernel arrays of ``variant`` and a summary (counts and how much the kernels changed).

    Summary keys: ``replaced`` and ``kept`` (numbers of kernels), ``relative_change_median`` /
    ``_mean`` (``||h' - h|| / ||h||`` over replaced kernels with ``||h|| > 0``).
    """
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    if variant.kind == "learned":
        new = {key: array for key, array in arrays.items()}
        replaced = {key: np.zeros(len(array), bool) for key, array in arrays.items()}
    elif variant.kind == "idealized":
        if fits is None:
            raise UserError(f"variant {variant.name} needs the model's fits table")
        new, replaced = idealized_kernels(arrays, fits, variant.method)
    elif variant.kind == "masterkey":
        if master_keys is None:
            raise UserError(f"variant {variant.name} needs the master key filters")
        new, replaced = masterkey_kernels(arrays, master_keys)
    elif variant.kind == "random":
        new, replaced = random_kernels(arrays, seed)
    else:
        new, replaced = shuffled_kernels(arrays, index, seed)
    if variant.stage is not None:
        new, replaced = restrict_to_stage(new, replaced, arrays, index, variant.stage)
    changes = []
    for key, array in arrays.items():
        mask = replaced[key]
        if not mask.any():
            continue
        old = array[mask].reshape(mask.sum(), -1).astype(np.float64)
        diff = new[key][mask].reshape(mask.sum(), -1).astype(np.float64) - old
        norm = np.linalg.norm(old, axis=1)
        changes.append(np.linalg.norm(diff, axis=1)[norm > 0] / norm[norm > 0])
    change = np.concatenate(changes) if changes else np.zeros(0)
    total = sum(len(array) for array in arrays.values())
    count = int(sum(mask.sum() for mask in replaced.values()))
    summary = {
        "replaced": count,
        "kept": total - count,
        "relative_change_median": float(np.median(change)) if len(change) else 0.0,
        "relative_change_mean": float(change.mean()) if len(change) else 0.0,
    }
    return new, summary


def apply_kernels(model: nn.Module, arrays: dict[str, np.ndarray], index: pd.DataFrame) -> nn.Module:
    """Write ``arrays`` into the depthwise convolutions of ``model`` (in place; returns it).

    The layers and channels are matched through the kernel index; any mismatch between the
    model's depthwise layers and the index raises :class:`UserError` (stale kernels).
    """
    layers = {layer.name: layer for layer in find_depthwise_convs(model)}
    indexed = set(index["layer"].unique())
    if set(layers) != indexed:
        missing = sorted(set(layers) ^ indexed)[:3]
        raise UserError(
            f"the kernel index and the model's depthwise layers differ (e.g. {missing}); "
            "the kernels are stale - rerun extract_kernels"
        )
    with torch.no_grad():
        for name, part in index.groupby("layer", sort=False):
            module = layers[name].module
            part = part.sort_values("channel")
            key = part["kernel_size"].iloc[0]
            if key != layers[name].kernel_key or len(part) != module.out_channels:
                raise UserError(
                    f"layer {name}: index says {len(part)} kernels of {key}, model differs; "
                    "rerun extract_kernels"
                )
            kernels = np.asarray(arrays[key])[part["row"].to_numpy()]
            weight = torch.from_numpy(np.ascontiguousarray(kernels)).to(module.weight.dtype)
            module.weight.copy_(weight.unsqueeze(1).to(module.weight.device))
    return model


def default_variants(num_master_keys: int) -> list[str]:
    """All variants of a model when the config lists none (table order)."""
    return [
        LEARNED,
        *(f"idealized-{method}" for method in METHODS),
        f"masterkey-{num_master_keys}",
        f"masterkey-{PUBLISHED_KEYS}",
        *CONTROLS,
    ]


def evaluate_variant(
    model: nn.Module,
    arrays: dict[str, np.ndarray],
    index: pd.DataFrame,
    variant: Variant | str,
    eval_set,
    *,
    fits: pd.DataFrame | None = None,
    master_keys: np.ndarray | None = None,
    seed: int = 0,
    batch_size: int = 128,
    max_images: int | None = None,
    device=None,
) -> dict:
    """Build ``variant``, write it into ``model`` (in place) and evaluate it on ``eval_set``.

    Returns the record stored in ``results/replacement/{model}/{variant}.json``: ``variant``,
    ``top1``, ``top5``, ``images``, ``seconds`` (inference), ``images_per_second``, ``device`` and
    the replacement summary of :func:`build_variant`.
    """
    from .evaluation import evaluate

    variant = parse_variant(variant) if isinstance(variant, str) else variant
    summary = apply_variant(model, arrays, index, variant, fits=fits, master_keys=master_keys, seed=seed)
    metrics = evaluate(model, eval_set, batch_size=batch_size, device=device, max_images=max_images)
    return {"variant": variant.name, **metrics, **summary}


def apply_variant(model: nn.Module, arrays, index, variant: Variant | str, *, fits=None, master_keys=None,
                  seed: int = 0) -> dict:  # fmt: skip
    """Build ``variant`` (:func:`build_variant`), write it into ``model``; returns the summary."""
    new, summary = build_variant(variant, arrays, index, fits=fits, master_keys=master_keys, seed=seed)
    apply_kernels(model, new, index)
    return summary


def best_idealized_method(results: list[dict]) -> str:
    """The fitting method whose ``idealized-<method>`` variant has the best top-1 (then top-5;
    ties go to the earlier method of :data:`METHODS`)."""
    scored = []
    for record in results:
        variant = parse_variant(record["variant"])
        if variant.kind == "idealized" and variant.stage is None:
            scored.append((-record["top1"], -record["top5"], METHODS.index(variant.method), variant.method))
    if not scored:
        raise UserError("no idealized-<method> results to choose the best method from")
    return min(scored)[-1]


TABLE_COLUMNS = [
    "model",
    "variant",
    "dataset",
    "top1",
    "top5",
    "top1_drop",
    "top5_drop",
    "images",
    "replaced",
    "kept",
    "relative_change_median",
]


def _with_drops(table: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    learned = baseline.set_index("model")
    table = table.copy()
    for metric in ("top1", "top5"):
        table[f"{metric}_drop"] = table["model"].map(learned[metric]) - table[metric]
    return table


def replacement_table(results: list[dict], variants: list[str] | None = None) -> pd.DataFrame:
    """One row per model and variant, the learned baseline first; drops are baseline minus variant
    (in accuracy units, positive = worse).  ``results`` are the per-variant records with ``model``
    and ``dataset`` added; ``variants`` fixes the row order within a model."""
    table = pd.DataFrame.from_records(results)
    missing = set(table["model"]) - set(table.loc[table["variant"] == LEARNED, "model"])
    if missing:
        raise UserError(f"no learned baseline for model(s) {sorted(missing)}; evaluate the 'learned' variant")
    order = list(variants or [])
    order = [LEARNED] + [v for v in order if v != LEARNED]
    rank = {name: i for i, name in enumerate(order)}
    table["_rank"] = table["variant"].map(lambda v: rank.get(v, len(rank)))
    model_rank = {name: i for i, name in enumerate(dict.fromkeys(table["model"]))}
    table["_model"] = table["model"].map(model_rank)
    table = table.sort_values(["_model", "_rank", "variant"], kind="stable").drop(columns=["_rank", "_model"])
    table = _with_drops(table, table[table["variant"] == LEARNED])
    return table[TABLE_COLUMNS].reset_index(drop=True)


def stages_table(stage_results: list[dict], baselines: list[dict]) -> pd.DataFrame:
    """Per model and stage: accuracy with only that stage replaced by the best idealized method."""
    table = pd.DataFrame.from_records(stage_results)
    table = _with_drops(table, pd.DataFrame.from_records(baselines))
    columns = ["model", "stage", "method", "variant", "top1", "top5", "top1_drop", "top5_drop", "replaced"]
    return table[columns].sort_values(["model", "stage"], kind="stable").reset_index(drop=True)


def load_rule_variant_inputs(variant: Variant | str, inputs):
    """:func:`load_variant_inputs` from a rule's named inputs (``kernels``, ``index`` and, as the
    variant needs them, ``fits``, ``master_keys``, ``published``)."""
    return load_variant_inputs(
        variant, inputs.kernels, inputs.index, inputs.get("fits"), inputs.get("master_keys"),
        inputs.get("published"),
    )  # fmt: skip


def load_variant_inputs(
    variant: Variant | str,
    kernels_path,
    index_path,
    fits_path=None,
    master_keys_path=None,
    published_path=None,
):
    """Kernel arrays, index and (as the variant needs them) fits and master keys from rule inputs."""
    from .kernels import load_kernels
    from .published import load_master_key_filters

    variant = parse_variant(variant) if isinstance(variant, str) else variant
    arrays = load_kernels(kernels_path)
    index = _read_parquet(index_path, "kernel index", "extract_kernels")
    fits = _read_parquet(fits_path, "fits table", "fit_kernels") if variant.kind == "idealized" else None
    keys = None
    if variant.kind == "masterkey":
        if variant.num_keys is None:
            keys = load_master_key_filters(published_path)
        else:
            keys = _read_npy(master_keys_path)
            if len(keys) != variant.num_keys:
                raise UserError(
                    f"{master_keys_path} holds {len(keys)} master keys, variant {variant.name} "
                    f"expects {variant.num_keys}; rerun select_master_keys"
                )
    return arrays, index, fits, keys


def _read_parquet(path, what: str, rule: str) -> pd.DataFrame:
    if path is None:
        raise UserError(f"the {what} is needed but was not given")
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist; run the {rule} rule") from None
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise UserError(
            f"{what} {path} is unreadable ({type(err).__name__}); delete it and rerun {rule}"
        ) from None


def _read_npy(path) -> np.ndarray:
    try:
        return np.load(path)
    except FileNotFoundError:
        raise UserError(f"master key file {path} does not exist; run select_master_keys") from None
    except (ValueError, OSError) as err:
        raise UserError(f"master key file {path} is unreadable ({err}); delete it and rerun") from None


def load_eval_set(meta: dict, demo: dict | None = None, seed: int = 0, cache_path=None):
    """The evaluation set of a checkpoint: the demo's held-out split for the demo model (``meta``
    of a demo checkpoint), else the cached ImageNet validation set checked against the model's
    preprocessing."""
    from .evaluation import demo_eval_set, load_eval_cache, preprocessing_for_model

    if meta.get("name") == "demo":
        if demo is None:
            raise UserError("the demo model is evaluated on the demo split; the demo config is missing")
        return demo_eval_set(demo, seed)
    if cache_path is None:
        raise UserError(
            f"model {meta.get('name')}: no evaluation cache given; set imagenet_val in the config"
        )
    return load_eval_cache(cache_path, preprocessing_for_model(meta["timm_name"]))
