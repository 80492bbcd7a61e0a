"""Classified share beside each network's ImageNet top-1, across model families ([A] Section 4).

[A] reports that better ImageNet models have a larger share of depthwise kernels that fall into
the identifiable clusters (docs/methods.md section 4.6).  :func:`share_vs_accuracy` puts the
classified share of every model and kernel size (from the classification table of
:func:`masterkey.clustering.clusters.classification_table`) beside the model's family and its
published top-1, and :func:`accuracy_trend` answers the question per kernel size with Spearman's
rank correlation over the models that have a published top-1.  Because a small kernel has few
degrees of freedom, a random kernel often reaches the classification threshold by chance (a
centred 3x3 kernel has 8; the cosine of two random ones has standard deviation ``1/sqrt(8)``), so
every row carries the share that random kernels would reach against the same prototypes
(:func:`chance_share`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import timm
from scipy.stats import spearmanr

from ..kernels.similarity import centre_norm

__all__ = [
    "ALL_SIZES",
    "SHARE_COLUMNS",
    "model_family",
    "chance_share",
    "share_vs_accuracy",
    "accuracy_trend",
    "share_caption",
]

ALL_SIZES = "all"
"""``kernel_size`` of the rows that pool every square size of a model."""
SHARE_COLUMNS = [
    "model",
    "family",
    "architecture",
    "kernel_size",
    "kernels",
    "classified",
    "share",
    "chance_share",
    "mean_cosine",
    "published_top1",
]

_FAMILY_NAMES = {
    "convnext": "ConvNeXt",
    "efficientnet": "EfficientNet",
    "mobilenetv3": "MobileNetV3",
    "inception_next": "InceptionNeXt",
    "repvit": "RepViT",
    "byobnet": "MobileOne",
    "fastvit": "FastViT",
}


def model_family(architecture: str) -> str:
    """The model family of a timm architecture: its timm module, with the papers' spelling.

    ConvNeXt V2 is told apart from ConvNeXt (same timm module, different training: FCMAE).
    Unknown modules keep their module name; a name timm does not know is returned as given.

    >>> model_family("tf_efficientnet_lite0"), model_family("convnextv2_tiny"), model_family("convnext_atto")
    ('EfficientNet', 'ConvNeXt V2', 'ConvNeXt')
    """
    if not timm.is_model(architecture):
        return architecture
    module = timm.models.model_entrypoint(architecture).__module__.rsplit(".", 1)[-1]
    family = _FAMILY_NAMES.get(module, module)
    return "ConvNeXt V2" if architecture.startswith("convnextv2") else family


def chance_share(
    prototypes: np.ndarray, threshold: float, num: int = 20_000, seed: int = 0, flip_sign: bool = False
) -> float:
    """Share of random kernels whose largest signed cosine to one of ``prototypes`` reaches ``threshold``.

    The chance level of the classified share ([A] Section 4; docs/methods.md section 4.6): kernels
    with i.i.d. standard normal entries, centre-normed like the pool (and sign-flipped like it
    when ``flip_sign``), each compared with its *best* prototype, which bounds from above what a
    cluster assignment could give them.

    Parameters
    ----------
    prototypes : array ``(k, n, n)``
        The cluster prototypes of one kernel size (any scale: they are centre-normed here).
    threshold : float
        The classification threshold (a cosine in [0, 1]).
    num : int
        Number of random kernels.
    seed : int
        Seed of the random kernels.
    flip_sign : bool
        Negate a random kernel whose entry of largest magnitude is negative (``clustering.flip_sign``).

    Returns
    -------
    float
        The share in [0, 1].

    Raises
    ------
    ValueError
        If ``prototypes`` is not a non-empty ``(k, n, n)`` array.

    For one prototype the signed cosine of a random centred kernel with ``d = n^2 - 1`` degrees of
    freedom has ``(1 + c) / 2 ~ Beta((d - 1) / 2, (d - 1) / 2)``; at threshold 0 the share is 1/2:

    >>> round(chance_share(np.eye(3)[None], threshold=0.0, num=40_000), 2)
    0.5
    """
    prototypes = np.asarray(prototypes, dtype=np.float64)
    if prototypes.ndim != 3 or not len(prototypes):
        raise ValueError(f"prototypes must have shape (k, n, n), got {prototypes.shape}")
    size = prototypes.shape[1:]
    kernels = centre_norm(np.random.default_rng([seed, 0xC4A]).standard_normal((num, *size)))
    flat = kernels.reshape(num, -1)
    if flip_sign:
        largest = flat[np.arange(num), np.abs(flat).argmax(axis=1)]
        flat = flat * np.where(largest < 0, -1.0, 1.0)[:, None]
    cosines = flat @ centre_norm(prototypes).reshape(len(prototypes), -1).T
    return float((cosines.max(axis=1) >= threshold).mean())


def share_vs_accuracy(
    classification: pd.DataFrame, models: Mapping[str, Mapping], chance: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """One row per model and kernel size (and one pooling all its sizes): share and top-1.

    Parameters
    ----------
    classification : pandas.DataFrame
        The classification table (rows with ``level == "model"`` are used; columns ``model``,
        ``kernel_size``, ``kernels``, ``classified``, ``mean_cosine``).
    models : mapping of model name to mapping
        Per model ``architecture`` (timm name without tag) and ``published_top1`` (percent, or
        None), in table order.
    chance : mapping of kernel size key to float, optional
        :func:`chance_share` of each size's prototypes (NaN where missing).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SHARE_COLUMNS`; ``kernel_size`` is ``"3x3"`` ... or :data:`ALL_SIZES`;
        ``share = classified / kernels``; ``mean_cosine`` and ``chance_share`` of the pooled rows
        are kernel-weighted.

    Raises
    ------
    ValueError
        If a model of ``models`` has no row in ``classification`` (the table is stale).

    >>> c = pd.DataFrame({"level": "model", "model": ["m", "m"], "kernel_size": ["3x3", "5x5"],
    ...                   "kernels": [30, 10], "classified": [27, 5], "mean_cosine": [0.8, 0.4]})
    >>> t = share_vs_accuracy(c, {"m": {"architecture": "tf_efficientnet_lite0", "published_top1": 75.1}})
    >>> t[["kernel_size", "kernels", "share", "mean_cosine"]].values.tolist()
    [['3x3', 30, 0.9, 0.8], ['5x5', 10, 0.5, 0.4], ['all', 40, 0.8, 0.7]]
    """
    per_model = classification[classification["level"] == "model"]
    chance = dict(chance or {})
    rows = []
    for name, info in models.items():
        part = per_model[per_model["model"] == name]
        if part.empty:
            raise ValueError(f"the classification table has no row of model {name!r}; it is stale")
        base = {
            "model": name,
            "family": model_family(info["architecture"]),
            "architecture": info["architecture"],
            "published_top1": info.get("published_top1"),
        }
        for _, row in part.sort_values("kernel_size", key=_size_order).iterrows():
            rows.append({**base, **_share(row["kernel_size"], [row], chance)})
        if len(part) > 1:
            rows.append({**base, **_share(ALL_SIZES, [r for _, r in part.iterrows()], chance)})
    table = pd.DataFrame(rows, columns=SHARE_COLUMNS)
    table["published_top1"] = pd.to_numeric(table["published_top1"], errors="coerce")
    return table


def _size_order(sizes: pd.Series) -> pd.Series:
    return sizes.map(lambda key: int(str(key).split("x")[0]))


def _share(kernel_size: str, rows: list, chance: Mapping[str, float]) -> dict:
    kernels = int(sum(r["kernels"] for r in rows))
    classified = int(sum(r["classified"] for r in rows))

    def weighted(values) -> float:
        return (
            float(sum(v * r["kernels"] for v, r in zip(values, rows, strict=True)) / kernels)
            if kernels
            else np.nan
        )

    cosine = weighted([r["mean_cosine"] for r in rows])
    level = weighted([chance.get(r["kernel_size"], np.nan) for r in rows])
    return {
        "kernel_size": kernel_size,
        "kernels": kernels,
        "classified": classified,
        "share": classified / kernels if kernels else np.nan,
        "chance_share": level,
        "mean_cosine": cosine,
    }


def accuracy_trend(table: pd.DataFrame) -> pd.DataFrame:
    """Per kernel size: does the classified share grow with published top-1 across models?

    Parameters
    ----------
    table : pandas.DataFrame
        The result of :func:`share_vs_accuracy`.

    Returns
    -------
    pandas.DataFrame
        Columns ``kernel_size``, ``models`` (with a published top-1), ``spearman_rho`` (NaN with
        fewer than 3 models or constant values), ``monotonic`` (True when ordering the models by
        top-1 never lowers the share; None with fewer than 2 models).

    >>> t = pd.DataFrame({"kernel_size": "3x3", "published_top1": [75.1, 76.7, 77.6],
    ...                   "share": [0.80, 0.85, 0.90]})
    >>> accuracy_trend(t).values.tolist()
    [['3x3', 3, 1.0, True]]
    """
    rows = []
    known = table.dropna(subset=["published_top1", "share"])
    for size, part in known.groupby("kernel_size", sort=False):
        part = part.sort_values("published_top1")
        rho = np.nan
        if len(part) >= 3 and part["share"].nunique() > 1 and part["published_top1"].nunique() > 1:
            rho = float(spearmanr(part["published_top1"], part["share"]).statistic)
        monotonic = bool((np.diff(part["share"].to_numpy()) >= 0).all()) if len(part) >= 2 else None
        rows.append({"kernel_size": size, "models": len(part), "spearman_rho": rho, "monotonic": monotonic})
    return pd.DataFrame(rows, columns=["kernel_size", "models", "spearman_rho", "monotonic"])


def share_caption(threshold: float, trend: pd.DataFrame) -> str:
    """Caption of the share-vs-accuracy table, with the answer per kernel size."""
    answers = [
        f"{row.kernel_size}: rho = {row.spearman_rho:.2f} over {row.models} models"
        if np.isfinite(row.spearman_rho)
        else f"{row.kernel_size}: {row.models} model(s), no rank correlation"
        for row in trend.itertuples()
    ]
    summary = "; ".join(answers) if answers else "no model has a published top-1 in the config"
    return (
        f"Classified share (cosine to the cluster prototype >= {threshold}) per model and kernel size, "
        f"beside the model family and its published ImageNet top-1 (%); chance_share: the share that "
        f"random kernels of the same size reach against the same prototypes. Spearman rank correlation "
        f"of share and top-1 ({summary})"
    )
