"""Building the kernels of every replacement variant ([B] Section 5, [Q]; docs/methods.md section 5).

Every variant maps the kernel arrays of a model (``arrays[key]`` of shape ``(N, kh, kw)`` with the
kernel store of :mod:`masterkey.kernels.store`) to new arrays of the same shapes;
:func:`masterkey.nets.depthwise.apply_kernels` then writes them into the depthwise convolutions,
leaving every other weight untouched.  Each builder registers its kind in
:mod:`masterkey.replacement.variants`.

Variants:

* ``learned``: the kernels themselves (the baseline).
* ``idealized-<method>`` (``<method>`` in A, B, C1, C2, D1, D2): each kernel ``h`` is replaced by
  its own fitted template ``t`` (its automatically selected type with the method's scales, from
  ``results/fits/{model}.parquet``), mapped back by least squares, ``h' = a t + b`` with
  ``(a, b) = argmin ||a t + b - h||_2`` (:func:`masterkey.kernels.similarity.affine_map`), so that
  the kernel's mean
  is kept exactly and its amplitude (and sign) by the best scalar.  Kernels without a fit
  (degenerate: constant or all zero) get ``a = 0``, i.e. their mean.
* ``masterkey-<K>`` / ``masterkey-published``: each kernel is replaced by the best of the ``K``
  master key filters ``x`` of its own size (own clustering: ``K`` keys per clustered size; the 8
  published ones: 7x7 only), ``h' = a x + b`` by least squares; "best" is the key with the smallest
  least-squares residual, which is the largest ``|cos|`` between the centred kernel and the centred
  key (residual^2 = ``||h_c||^2 (1 - cos^2)``).
* ``random``: ``h' = mean(h) + ||h - mean(h)|| z / ||z||`` with ``z`` a centred Gaussian sample:
  same mean and same norm as ``h`` (``||h'||^2 = k^2 mean^2 + ||h_c||^2``), no structure.
* ``shuffled``: the kernels of each layer permuted across its channels (a seeded permutation).
* ``stage<i>-idealized-<method>``: ``idealized-<method>`` in stage ``i`` only, learned elsewhere.

Kernels whose shape has no counterpart in the replacement (e.g. band kernels ``1x9`` for
idealized models, or a size without master keys) are kept and counted as *kept*.
All randomness comes from ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, StaleFileError
from ..kernels.similarity import affine_map, best_match
from ..kernels.store import kernel_key, square_kernel_sizes
from ..scalespace.fitting import METHODS
from ..scalespace.models import templates_from_fits
from .variants import LEARNED, PUBLISHED_KEYS, Variant, idealized_name, parse_variant, register_variant

__all__ = [
    "VariantInputs",
    "idealized_kernels",
    "masterkey_kernels",
    "random_kernels",
    "shuffled_kernels",
    "restrict_to_stage",
    "build_variant",
]

_METHODS = "|".join(METHODS)
_INPUT_FIELD = {"fits": "fits", "master_keys": "master_keys", "published": "master_keys"}
"""The :class:`VariantInputs` field that holds each input (own or published master keys alike)."""


@dataclass
class VariantInputs:
    """What the builders read: the model's kernel ``arrays`` and ``index`` (kernel store), and as
    the variant needs them its ``fits`` table, the ``master_keys`` (``{"7x7": (K, 7, 7), ...}`` or
    one ``(K, k, k)`` array, e.g. the published 8); ``paths`` names
    the files they came from (keys of :func:`~masterkey.replacement.evaluation.load_variant_inputs`),
    so that errors about a stale file can name it."""

    arrays: dict[str, np.ndarray]
    index: pd.DataFrame
    fits: pd.DataFrame | None = None
    master_keys: dict[str, np.ndarray] | np.ndarray | None = None
    paths: dict = field(default_factory=dict)


def _unchanged(arrays: dict[str, np.ndarray]):
    return dict(arrays), {key: np.zeros(len(array), bool) for key, array in arrays.items()}


@register_variant(LEARNED, LEARNED)
def learned_kernels(inputs: VariantInputs, variant: Variant, seed: int):
    """The kernels themselves (the baseline variant ``learned``; docs/methods.md section 5).

    Parameters
    ----------
    inputs : VariantInputs
        Only ``inputs.arrays`` is used.
    variant : Variant
        Unused (the common builder signature).
    seed : int
        Unused.

    Returns
    -------
    new_arrays : dict of str to array ``(N, kh, kw)``
        The same arrays.
    replaced : dict of str to bool array ``(N,)``
        All False: nothing is replaced.

    >>> import numpy as np, pandas as pd
    >>> inputs = VariantInputs({"3x3": np.ones((2, 3, 3))}, pd.DataFrame())
    >>> new, replaced = learned_kernels(inputs, None, 0)
    >>> new["3x3"] is inputs.arrays["3x3"], replaced["3x3"].tolist()
    (True, [False, False])
    """
    return _unchanged(inputs.arrays)


@register_variant(
    "idealized",
    rf"(?:stage(?P<stage>\d+)-)?idealized-(?P<method>{_METHODS})",
    needs=("fits",),
    defaults=lambda keys: [idealized_name(method) for method in METHODS],
    forms=(f"idealized-<method> with method in {', '.join(METHODS)}", "stage<i>-idealized-<method>"),
)
def idealized_variant(inputs: VariantInputs, variant: Variant, seed: int):
    """Registered builder of the kind ``idealized``: :func:`idealized_kernels` applied to ``inputs``.

    The common builder signature of :func:`~masterkey.replacement.variants.register_variant`:
    ``(inputs, variant, seed) -> (new_arrays, replaced)`` (docs/methods.md section 5).
    """
    return idealized_kernels(inputs.arrays, inputs.fits, variant.method, inputs.paths.get("fits"))


def idealized_kernels(arrays: dict[str, np.ndarray], fits: pd.DataFrame, method: str, fits_path=None):
    """Each kernel replaced by ``a t + b`` of its own fitted template for ``method``.

    ``idealized-<method>`` of [B] Sec. 5 (docs/methods.md section 5): ``t`` is the template of the
    kernel's type at the method's fitted scales (:func:`~masterkey.scalespace.models.templates_from_fits`),
    ``(a, b)`` the least-squares affine fit (:func:`~masterkey.kernels.similarity.affine_map`).

    Parameters
    ----------
    arrays : dict of str to array ``(N, kh, kw)``
        The model's kernel store (``h[row, col]``, docs/methods.md section 1).
    fits : pandas.DataFrame
        The model's fits table (columns ``method``, ``kernel_size``, ``filter``, ``type``,
        ``sigma_x``, ``sigma_y`` in grid spacings, ``alpha``).
    method : str
        One of :data:`~masterkey.scalespace.fitting.METHODS`.
    fits_path : path, optional
        The file ``fits`` was read from, named when it turns out stale.

    Returns
    -------
    new_arrays : dict of str to array ``(N, kh, kw)``
        Same keys, shapes and dtypes.
    replaced : dict of str to bool array ``(N,)``
        The kernels that got a template (degenerate ones get their mean and count as replaced;
        shapes without a scale-space model are kept).

    Raises
    ------
    ValueError
        For an unknown method, or fits that do not match the kernels when ``fits_path`` is None.
    StaleFileError
        Naming ``fits_path`` when the fits do not match the kernels.

    A kernel that is an affine image of its fitted template is reproduced; band kernels are kept:

    >>> import numpy as np, pandas as pd
    >>> from masterkey.scalespace.templates import idealized_templates
    >>> t = idealized_templates("dx", 7, 1.2, 0.9)
    >>> arrays = {"7x7": np.stack([2 * t + 0.3, -t]), "1x9": np.ones((1, 1, 9))}
    >>> fits = pd.DataFrame({"method": "D1", "kernel_size": "7x7", "filter": [0, 1], "type": "dx",
    ...                      "sigma_x": 1.2, "sigma_y": 0.9, "alpha": np.nan})
    >>> new, replaced = idealized_kernels(arrays, fits, "D1")
    >>> bool(np.allclose(new["7x7"], arrays["7x7"])), replaced["1x9"].tolist()
    (True, [False])
    """
    if method not in METHODS:
        raise ValueError(f"unknown fitting method {method!r}; use one of {', '.join(METHODS)}")
    by_method = fits[fits["method"] == method]
    new, replaced = _unchanged(arrays)
    for key in square_kernel_sizes(arrays):
        array = arrays[key]
        part = by_method[by_method["kernel_size"] == key].sort_values("filter")
        if len(part) != len(array) or not np.array_equal(part["filter"].to_numpy(), np.arange(len(array))):
            reason = (
                f"has {len(part)} rows for method {method} and kernel size {key} but the model has "
                f"{len(array)} such kernels; the fits are stale"
            )
            raise StaleFileError(fits_path, reason) if fits_path else ValueError(f"the fits table {reason}")
        new[key] = affine_map(templates_from_fits(part, array.shape[-1]), array).astype(array.dtype)
        replaced[key] = np.ones(len(array), bool)
    return new, replaced


def _masterkey_needs(variant: Variant) -> tuple[str, ...]:
    return ("published",) if variant.num_keys is None else ("master_keys",)


@register_variant(
    "learnable",
    rf"learnable(?:-(?P<gaussian>sampled))?-(?P<method>{_METHODS})",
    needs=("fits",),
    defaults=lambda keys: [],
    forms=("learnable-<method>", "learnable-sampled-<method>"),
    finetune_only=True,
)
def learnable_variant(inputs: VariantInputs, variant: Variant, seed: int):
    """The kind ``learnable`` has no zero-shot kernels: its scales train
    (:func:`masterkey.replacement.finetune.finetune_frozen_task` converts the network with
    :func:`masterkey.nets.scalespace_conv.to_scalespace`); at initialisation ``learnable-<method>``
    equals ``idealized-<method>``.  Raises ``ConfigError``."""
    why = f"{variant.name} trains its scales: it exists only fine-tuned (replacement.finetune.variants)"
    raise ConfigError("replacement.variants", why)


@register_variant(
    "masterkey",
    rf"masterkey-(?P<keys>[1-9]\d*|{PUBLISHED_KEYS})",
    needs=_masterkey_needs,
    defaults=lambda keys: [f"masterkey-{keys}", f"masterkey-{PUBLISHED_KEYS}"],
    forms=("masterkey-<K>", f"masterkey-{PUBLISHED_KEYS}"),
)
def masterkey_variant(inputs: VariantInputs, variant: Variant, seed: int):
    """Registered builder of the kind ``masterkey``: :func:`masterkey_kernels` applied to ``inputs``.

    The common builder signature of :func:`~masterkey.replacement.variants.register_variant`:
    ``(inputs, variant, seed) -> (new_arrays, replaced)`` (docs/methods.md section 5).
    """
    return masterkey_kernels(inputs.arrays, inputs.master_keys)


def _keys_by_size(keys) -> dict[str, np.ndarray]:
    """``{"kxk": (K, k, k)}`` from such a mapping or from one ``(K, k, k)`` array (keyed by its size)."""
    if not isinstance(keys, dict):
        keys = np.asarray(keys)
        keys = {kernel_key(*keys.shape[1:]) if keys.ndim == 3 else "?": keys}
    out = {}
    for size, array in keys.items():
        array = np.asarray(array)
        if array.ndim != 3 or not len(array) or kernel_key(*array.shape[1:]) != size:
            raise ValueError(
                f"master key filters of size {size} must have shape (K, kh, kw), got {array.shape}"
            )
        out[size] = array
    if not out:
        raise ValueError("no master key filters")
    return out


def masterkey_kernels(arrays: dict[str, np.ndarray], keys):
    """Each kernel replaced by ``a x + b`` of the best master key ``x`` of its own size (largest
    ``|cos|`` of the centred arrays, :func:`masterkey.kernels.similarity.best_match`).

    ``masterkey-<K>`` / ``masterkey-published`` ([Q]; docs/methods.md section 5).

    Parameters
    ----------
    arrays : dict of str to array ``(N, kh, kw)``
        The model's kernel store.
    keys : dict of str to array ``(K, k, k)``, or array ``(K, k, k)``
        Master key filters per kernel size (``{"3x3": ..., "7x7": ...}``, the file
        ``master_keys_<K>.npz``), or one array keyed by its own size (the published 7x7 filters);
        convention of docs/methods.md section 1.

    Returns
    -------
    new_arrays : dict of str to array ``(N, kh, kw)``
        Same keys, shapes and dtypes; arrays of a size without keys are kept.
    replaced : dict of str to bool array ``(N,)``
        True for the kernels of a size with keys; all False when the model has no such kernel
        (the record's ``replaced`` count is then 0).

    Raises
    ------
    ValueError
        If a key array is not a non-empty ``(K, k, k)`` array of its key's size, or a key is
        constant.

    Affine images of the keys (either sign) are reproduced exactly; a size without keys is kept:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> keys = {"5x5": rng.normal(size=(2, 5, 5)), "3x3": rng.normal(size=(2, 3, 3))}
    >>> arrays = {"5x5": np.stack([-keys["5x5"][1] + 2, 3 * keys["5x5"][0]]), "7x7": np.zeros((2, 7, 7))}
    >>> new, replaced = masterkey_kernels(arrays, keys)
    >>> bool(np.allclose(new["5x5"], arrays["5x5"])), replaced["5x5"].tolist(), replaced["7x7"].tolist()
    (True, [True, True], [False, False])
    """
    keys = _keys_by_size(keys)
    new, replaced = _unchanged(arrays)
    for size, array in arrays.items():
        filters = keys.get(size)
        if filters is None or not len(array):
            continue
        best, _ = best_match(array, filters)
        new[size] = affine_map(filters[best], array).astype(array.dtype)
        replaced[size] = np.ones(len(array), bool)
    return new, replaced


@register_variant("random", "random")
def random_variant(inputs: VariantInputs, variant: Variant, seed: int):
    """Registered builder of the kind ``random``: :func:`random_kernels` applied to ``inputs``.

    The common builder signature of :func:`~masterkey.replacement.variants.register_variant`:
    ``(inputs, variant, seed) -> (new_arrays, replaced)`` (docs/methods.md section 5).
    """
    return random_kernels(inputs.arrays, seed)


@register_variant("shuffled", "shuffled")
def shuffled_variant(inputs: VariantInputs, variant: Variant, seed: int):
    """Registered builder of the kind ``shuffled``: :func:`shuffled_kernels` applied to ``inputs``.

    The common builder signature of :func:`~masterkey.replacement.variants.register_variant`:
    ``(inputs, variant, seed) -> (new_arrays, replaced)`` (docs/methods.md section 5).
    """
    return shuffled_kernels(inputs.arrays, inputs.index, seed)


def random_kernels(arrays: dict[str, np.ndarray], seed: int):
    """Random kernels with each kernel's mean and norm (centred Gaussian direction).

    The ``random`` control (docs/methods.md section 5): ``h' = mean h + ||h - mean h|| z / ||z||``
    with ``z`` a centred standard normal sample, so ``mean h' = mean h`` and ``||h'|| = ||h||``.

    Parameters
    ----------
    arrays : dict of str to array ``(N, kh, kw)``
    seed : int
        Seed of the random directions.

    Returns
    -------
    new_arrays : dict of str to array ``(N, kh, kw)``
        Same keys, shapes and dtypes.
    replaced : dict of str to bool array ``(N,)``
        All True.

    >>> import numpy as np
    >>> h = np.random.default_rng(1).normal(size=(4, 3, 3))
    >>> new = random_kernels({"3x3": h}, seed=0)[0]["3x3"]
    >>> norms = [np.linalg.norm(a.reshape(4, -1), axis=1) for a in (new, h)]
    >>> bool(np.allclose(new.mean(axis=(1, 2)), h.mean(axis=(1, 2)))), bool(np.allclose(*norms))
    (True, True)
    """
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
    """The kernels of every layer permuted across its channels (seeded, per layer).

    The ``shuffled`` control (docs/methods.md section 5).

    Parameters
    ----------
    arrays : dict of str to array ``(N, kh, kw)``
    index : pandas.DataFrame
        The kernel index (``layer``, ``kernel_size``, ``row``).
    seed : int
        Seed of the permutations.

    Returns
    -------
    new_arrays : dict of str to array ``(N, kh, kw)``
        Copies with the rows of each layer permuted among themselves.
    replaced : dict of str to bool array ``(N,)``
        All True.

    Each layer keeps its own set of kernels:

    >>> import numpy as np, pandas as pd
    >>> h = np.arange(4.0)[:, None, None] * np.ones((4, 3, 3))
    >>> index = pd.DataFrame({"layer": ["a", "a", "b", "b"], "kernel_size": "3x3", "row": [0, 1, 2, 3]})
    >>> new = shuffled_kernels({"3x3": h}, index, seed=1)[0]["3x3"]
    >>> sorted(new[:2, 0, 0].tolist()), sorted(new[2:, 0, 0].tolist())
    ([0.0, 1.0], [2.0, 3.0])
    """
    rng = np.random.default_rng([seed, 0x5AFF])
    new = {key: array.copy() for key, array in arrays.items()}
    for _, part in index.sort_values("row").groupby(["kernel_size", "layer"], sort=True):
        rows = part["row"].to_numpy()
        key = part["kernel_size"].iloc[0]
        new[key][rows] = arrays[key][rows[rng.permutation(len(rows))]]
    replaced = {key: np.ones(len(array), bool) for key, array in arrays.items()}
    return new, replaced


def restrict_to_stage(new: dict, replaced: dict, arrays: dict, index: pd.DataFrame, stage: int):
    """Keep the replacement only in ``stage`` (learned kernels elsewhere).

    The per-stage variants ``stage<i>-...`` (docs/methods.md section 5).

    Parameters
    ----------
    new, replaced : dict of str to array
        A builder's output: arrays ``(N, kh, kw)`` and masks ``(N,)``.
    arrays : dict of str to array ``(N, kh, kw)``
        The learned kernels.
    index : pandas.DataFrame
        The kernel index (``stage``, ``kernel_size``, ``row``).
    stage : int
        The stage to replace.

    Returns
    -------
    new_arrays : dict of str to array ``(N, kh, kw)``
    replaced : dict of str to bool array ``(N,)``
        ``replaced`` restricted to the stage.

    Raises
    ------
    ConfigError
        (``replacement.variants``) If the model has no such stage.

    >>> import numpy as np, pandas as pd
    >>> h = {"3x3": np.ones((4, 3, 3))}
    >>> index = pd.DataFrame({"stage": [0, 0, 1, 1], "kernel_size": "3x3", "row": [0, 1, 2, 3]})
    >>> new, mask = restrict_to_stage({"3x3": -h["3x3"]}, {"3x3": np.ones(4, bool)}, h, index, 1)
    >>> mask["3x3"].tolist(), new["3x3"][:, 0, 0].tolist()
    ([False, False, True, True], [1.0, 1.0, -1.0, -1.0])
    """
    stages = set(index["stage"].unique().tolist())
    if stage not in stages:
        raise ConfigError(
            "replacement.variants", f"stage {stage} does not exist; the model's stages are {sorted(stages)}"
        )
    out, mask = {}, {}
    for key, array in arrays.items():
        rows = index[index["kernel_size"] == key].sort_values("row")
        in_stage = np.zeros(len(array), bool)
        in_stage[rows["row"].to_numpy()] = rows["stage"].to_numpy() == stage
        mask[key] = replaced[key] & in_stage
        out[key] = np.where(mask[key][:, None, None], new[key], array)
    return out, mask


def build_variant(
    variant: Variant | str, inputs: VariantInputs, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict]:
    """The kernel arrays of ``variant`` and a summary (counts and how much the kernels changed).

    docs/methods.md section 5 ([B] Sec. 5, [Q]).

    Parameters
    ----------
    variant : Variant or str
        A variant name (grammar of :mod:`masterkey.replacement.variants`) or a parsed one.
    inputs : VariantInputs
        The model's kernels and index, and the fits / master keys the variant needs.
    seed : int
        Seed of the random variants.

    Returns
    -------
    new_arrays : dict of str to array ``(N, kh, kw)``
        Same keys, shapes and dtypes as ``inputs.arrays``.
    summary : dict
        ``replaced`` and ``kept`` (numbers of kernels), ``relative_change_median`` / ``_mean``
        (``||h' - h|| / ||h||`` over replaced kernels with ``||h|| > 0``).

    Raises
    ------
    ValueError
        When an input the variant needs is missing.
    ConfigError
        For an unknown variant name or stage.

    Kernels that are affine images of master keys do not change:

    >>> import numpy as np, pandas as pd
    >>> keys = np.random.default_rng(0).normal(size=(2, 5, 5))
    >>> arrays = {"5x5": np.stack([-keys[1] + 2, 3 * keys[0]]), "3x3": np.zeros((1, 3, 3))}
    >>> index = pd.DataFrame({"stage": 0, "kernel_size": ["5x5", "5x5", "3x3"], "row": [0, 1, 0]})
    >>> _, summary = build_variant("masterkey-2", VariantInputs(arrays, index, master_keys=keys))
    >>> summary["replaced"], summary["kept"], round(summary["relative_change_mean"], 9)
    (2, 1, 0.0)
    """
    from .variants import variant_kinds, variant_needs

    variant = parse_variant(variant) if isinstance(variant, str) else variant
    for needed in variant_needs(variant):
        if getattr(inputs, _INPUT_FIELD[needed]) is None:
            raise ValueError(f"variant {variant.name} needs its input {needed!r}")
    arrays, index = inputs.arrays, inputs.index
    new, replaced = variant_kinds()[variant.kind].build(inputs, variant, seed)
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
