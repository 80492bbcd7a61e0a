"""Figures of the NIFF study ([D]; docs/methods.md section 7): kernel mass ratio, kernels, PCA.

* :func:`plot_kmr_curves`: per stage, the kernel mass ratio ``KMR(s)`` against the window size
  ``s`` (grid spacings of the stage's feature map): mean over the stage's kernels with a band of
  +-1 standard deviation, trained and at initialisation, and the plain network's 7x7 kernels as
  markers; dotted lines at the effective-size levels (:data:`~masterkey.niff.kmr.LEVELS`).
* :func:`plot_kernel_gallery`: per stage, the channels of the stage's last NIFF layer with the
  largest trained l2 norm, full size and magnified to the centre, trained and at initialisation.
* :func:`plot_kernel_pca`: per stage, the mean and the leading principal components (mean removed)
  of the stage's trained, l2-normalised kernels with their explained variance ratio, shown inside
  the central window that holds :data:`PCA_SHOWN_MASS` of their l1 mass (at least 7x7).

The frame's ``kernel_size`` column is the NIFF layer's map size (``"56x56"``; ``"7x7"`` for the
plain network's kernels).

Inputs are the objects of :mod:`masterkey.niff.analysis`: ``frame``, the long KMR table of
:func:`~masterkey.niff.analysis.kmr_frame` (``state`` ``"trained"``, ``"init"`` or ``"plain"``),
and ``kernels``, ``{state: {layer: (C, H, W)}}`` of centred spatial kernels (origin at index
``(H // 2, W // 2)``, :func:`~masterkey.niff.analysis.spatial_kernels`).  Kernels are drawn with
:func:`~.style.show_kernel` (top row = largest ``y``).

:mod:`masterkey.niff` and :mod:`masterkey.nets` import timm (seconds), so their helpers are
imported inside the functions that use them: ``import masterkey.plotting`` stays as light as it was.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, NullLocator

from ..kernels.conventions import kernel_mass_ratio
from .style import COLUMN_WIDTH, TEXT_WIDTH, apply_style, show_kernel

__all__ = [
    "STATE_LABELS",
    "plot_kmr_curves",
    "gallery_channels",
    "plot_kernel_gallery",
    "kernel_pca",
    "display_window",
    "plot_kernel_pca",
]

STATE_LABELS = {
    "trained": "NIFF trained",
    "init": "NIFF at init (same seed)",
    "plain": "plain 7x7 (ConvNeXt)",
}
"""Legend text of the ``state`` values of a KMR frame."""
NIFF_STATES = ("trained", "init")
STATE_COLOURS = {"trained": "C0", "init": "C1", "plain": "0.15"}
PLAIN_SIZES = (3, 5, 7)
"""Windows at which the plain network's 7x7 kernels are marked (docs/methods.md section 7)."""
KMR_COLUMNS = ("state", "stage", "kernel_size", "s", "kmr")
PCA_SHOWN_MASS = 0.95
"""The principal components are shown inside the smallest centred window holding this share of
the l1 mass of every image of the stage (at least 7x7 where the map allows)."""


def _check_columns(frame: pd.DataFrame, columns) -> None:
    for column in columns:
        if column not in frame.columns:
            raise ValueError(f"the KMR frame has no column '{column}' (columns: {list(frame.columns)})")


def _window_ticks(largest: int) -> list[int]:
    """Ticks ``1, 3, 5, 7, 15, 31, ...`` up to ``largest``, plus ``largest`` when it is well beyond."""
    ticks = [s for s in (1, 3, 5, 7, 15, 31, 63, 127) if s <= largest]
    if largest > 1.3 * ticks[-1]:
        ticks.append(largest)
    return ticks


def _stage_statistics(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1; 0 for a single kernel) of ``kmr`` per state, stage, s."""
    grouped = frame.groupby(["state", "stage", "s"], sort=True)["kmr"]
    table = grouped.agg(["mean", "std"]).reset_index()
    return table.assign(std=table["std"].fillna(0.0))


def plot_kmr_curves(frame: pd.DataFrame, run: str) -> Figure:
    """Kernel mass ratio against window size, one panel per stage (see the module docstring).

    Parameters
    ----------
    frame : DataFrame
        Long table with columns ``state`` (``"trained"``, ``"init"``, ``"plain"``), ``stage``
        (int, 0-based), ``kernel_size`` (the map size of the NIFF layer, ``"16x16"``), ``s`` (odd
        window size, grid spacings) and ``kmr`` (in [0, 1], NaN for an all-zero kernel, left out
        of the means); one row per kernel and window.  ``"plain"`` rows are drawn at
        :data:`PLAIN_SIZES` for the stages the NIFF network has.
    run : str
        The run's name, for the title.

    Returns
    -------
    Figure
        One panel per stage (``fig.axes`` are the panels, in stage order), ``s`` on a log axis.

    Raises
    ------
    ValueError
        When a column is missing (the message names it) or no row is of a NIFF state.
    """
    from ..niff.kmr import LEVELS

    _check_columns(frame, KMR_COLUMNS)
    niff = frame[frame["state"].isin(NIFF_STATES)]
    if niff.empty:
        raise ValueError(f"the KMR frame has no rows of state {' or '.join(NIFF_STATES)}")
    apply_style()
    stages = sorted(int(stage) for stage in niff["stage"].unique())
    plain = frame[(frame["state"] == "plain") & frame["s"].isin(PLAIN_SIZES)]
    statistics = _stage_statistics(pd.concat([niff, plain]))
    fig, axes = plt.subplots(1, len(stages), figsize=(min(TEXT_WIDTH, 0.4 + 1.75 * len(stages)), 2.7),
                             sharey=True, squeeze=False)  # fmt: skip
    for ax, stage in zip(axes[0], stages, strict=True):
        maps = ", ".join(sorted(niff.loc[niff["stage"] == stage, "kernel_size"].astype(str).unique()))
        largest = 1
        for state in (*NIFF_STATES, "plain"):
            part = statistics[(statistics["state"] == state) & (statistics["stage"] == stage)]
            if part.empty:
                continue
            s, mean, std = part["s"].to_numpy(), part["mean"].to_numpy(), part["std"].to_numpy()
            colour = STATE_COLOURS[state]
            if state == "plain" or len(s) == 1:  # a single window has no band: a bar instead
                dodge = {"trained": 0.95, "init": 1.05}.get(state, 1.0)  # side by side at s = 1
                marker = "D" if state == "plain" else "o"
                ax.errorbar(s * dodge, mean, yerr=std, fmt=marker, ms=3, color=colour, elinewidth=0.8,
                            capsize=1.5, label=STATE_LABELS[state], zorder=3)  # fmt: skip
            else:
                ax.fill_between(s, mean - std, mean + std, color=colour, alpha=0.25, linewidth=0)
                ax.plot(s, mean, color=colour, marker="o", ms=2, lw=1.2, label=STATE_LABELS[state])
            largest = max(largest, int(s.max()))
        for level in LEVELS:
            ax.axhline(level, color="0.4", lw=0.7, ls=":", zorder=0)
        ax.set_xscale("log")
        ax.set_xlim(0.85, largest * 1.15)
        ax.xaxis.set_major_locator(FixedLocator(_window_ticks(largest)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter("{x:g}")
        ax.set_title(f"stage {stage}: map {maps}")
        ax.set_xlabel("window s (grid spacings)")
    axes[0, 0].set_ylim(0, 1.02)
    axes[0, 0].set_yticks([0, 0.25, 0.5, 0.75, 0.9, 1])
    axes[0, 0].yaxis.set_major_formatter("{x:g}")
    axes[0, 0].set_ylabel("KMR(s)\n(l1 share in centred s x s)")
    entries: dict[str, object] = {}
    for ax in axes[0]:  # a state missing from the first stage still gets a legend entry
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    labels = [STATE_LABELS[state] for state in (*NIFF_STATES, "plain") if STATE_LABELS[state] in entries]
    fig.suptitle(f"{run}: kernel mass ratio per stage (dotted: levels {', '.join(f'{q:g}' for q in LEVELS)})",
                 y=0.995, va="top", fontsize=8)  # fmt: skip
    fig.legend([entries[label] for label in labels], labels, loc="upper center", bbox_to_anchor=(0.5, 0.93),
               ncols=len(labels), frameon=False, title="mean ± 1 s.d. over the stage's kernels")  # fmt: skip
    fig.tight_layout(w_pad=0.6, rect=(0, 0, 1, 0.84))
    return fig


def _stages(layers: Mapping[str, np.ndarray]) -> dict[int, list[str]]:
    """``{stage: [layer, ...]}`` in stage order, layers in their given order."""
    from ..nets.depthwise import stage_and_block

    stages: dict[int, list[str]] = {}
    for name in layers:
        stages.setdefault(stage_and_block(name)[0], []).append(name)
    return dict(sorted(stages.items()))


def _map_size(array: np.ndarray) -> str:
    return f"{array.shape[-2]}x{array.shape[-1]}"


def _check_kernels(kernels: Mapping[str, Mapping[str, np.ndarray]], needed: str | None = None) -> None:
    if not kernels or not any(kernels.values()):
        raise ValueError("no kernels to plot")
    if needed is not None and not kernels.get(needed):
        raise ValueError(f"no '{needed}' kernels (states: {list(kernels)})")
    for state, layers in kernels.items():
        for name, array in layers.items():
            if np.ndim(array) != 3:
                raise ValueError(f"{state}/{name}: kernels must be (C, H, W), got shape {np.shape(array)}")


def gallery_channels(kernels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` kernels ``(C, H, W)`` with the largest l2 norm, largest first
    (ties: lower index first)."""
    norms = np.sqrt(np.square(np.asarray(kernels, dtype=np.float64)).sum(axis=(1, 2)))
    return np.argsort(-norms, kind="stable")[: min(count, len(norms))]


def plot_kernel_gallery(
    kernels: Mapping[str, Mapping[str, np.ndarray]], run: str, per_stage: int = 6, zoom: int = 7
) -> Figure:
    """A few spatial kernels per stage, full size and magnified, trained and at initialisation.

    For each stage the ``per_stage`` channels of its last layer with the largest l2 norm (of the
    ``"trained"`` kernels when present, else of the first state) are shown, for every state (one
    block of rows per state, ``"trained"`` first), each as the full kernel and, where the map is
    larger than ``zoom`` in both directions, its central ``zoom x zoom`` (the window outlined on
    the full kernel), both on the full kernel's colour scale (diverging, symmetric around 0, one
    scale per kernel), so the magnification changes no colour.

    Parameters
    ----------
    kernels : mapping
        ``{state: {layer: (C, H, W)}}``, centred (origin at index ``(H // 2, W // 2)``); layers are
        assigned to stages by :func:`~masterkey.nets.depthwise.stage_and_block`.
    run : str
        The run's name, for the title.
    per_stage : int
        Kernels shown per stage (fewer where the layer has fewer channels).
    zoom : int
        Side of the magnified centre (odd).

    Returns
    -------
    Figure
        One subfigure per state; in each, a row per stage and ``per_stage`` (full, zoom) column pairs.

    Raises
    ------
    ValueError
        For no kernels, arrays that are not ``(C, H, W)``, an even ``zoom`` or ``per_stage < 1``.
    """
    from ..niff.kmr import central_crop

    _check_kernels(kernels)
    if zoom < 1 or zoom % 2 == 0:
        raise ValueError(f"zoom must be a positive odd size, got {zoom}")
    if per_stage < 1:
        raise ValueError(f"per_stage must be at least 1, got {per_stage}")
    apply_style()
    states = sorted((s for s in kernels if kernels[s]), key=lambda s: (s != "trained", s != "init"))
    reference = kernels[states[0]]
    stages = _stages(reference)
    last = {stage: names[-1] for stage, names in stages.items()}
    chosen = {stage: gallery_channels(reference[name], per_stage) for stage, name in last.items()}
    zoomed = {stage: min(reference[name].shape[-2:]) > zoom for stage, name in last.items()}
    pairs = 2 if any(zoomed.values()) else 1
    columns = pairs * max(len(c) for c in chosen.values())
    cell = min(0.62, (TEXT_WIDTH - 0.7) / columns)
    header, row_height = 0.32, cell + 0.2
    block_height = header + row_height * len(stages)
    fig = plt.figure(figsize=(0.7 + cell * columns, block_height * len(states)))
    subfigs = np.atleast_1d(fig.subfigures(len(states), 1, hspace=0.02))
    for subfig, state in zip(subfigs, states, strict=True):
        axes = subfig.subplots(len(stages), columns, squeeze=False)
        subfig.subplots_adjust(left=0.7 / (0.7 + cell * columns), right=0.995, bottom=0.01,
                               top=1 - header / block_height, wspace=0.12, hspace=0.3)  # fmt: skip
        for row, (stage, name) in zip(axes, last.items(), strict=True):
            array = np.asarray(kernels[state].get(name, np.empty((0, 1, 1))), dtype=np.float64)
            for ax in row:
                ax.axis("off")
            for i, channel in enumerate(chosen[stage]):
                if channel >= len(array):
                    continue
                kernel = array[channel]
                vmax = float(np.max(np.abs(kernel))) or 1.0
                full = row[pairs * i]
                full.axis("on")
                show_kernel(full, kernel, vmax=vmax, title=f"ch {channel}")
                if zoomed[stage]:
                    cy, cx, r = kernel.shape[0] // 2, kernel.shape[1] // 2, zoom // 2
                    full.add_patch(Rectangle((cx - r - 0.5, cy - r - 0.5), zoom, zoom, fill=False,
                                             edgecolor="0.1", lw=0.6))  # fmt: skip
                    row[pairs * i + 1].axis("on")
                    show_kernel(row[pairs * i + 1], central_crop(kernel, zoom), vmax=vmax,
                                title=f"centre {zoom}x{zoom}")  # fmt: skip
            row[0].axis("on")  # keeps the row label when the state lacks the layer
            row[0].set_ylabel(f"stage {stage}\n{_map_size(array) if array.size else 'missing'}",
                              rotation=0, ha="right", va="center", fontsize=7)  # fmt: skip
            for ax in row:
                ax.title.set_fontsize(6)
        title = {"trained": "trained", "init": "at initialisation (same seed)"}.get(state, state)
        subfig.suptitle(title, fontsize=7, fontweight="bold", x=0.01, ha="left", y=0.998, va="top")
    fig.suptitle(f"{run}: spatial kernels of each stage's last NIFF layer (largest l2 norm; "
                 f"colour scale symmetric per kernel)", fontsize=8, y=1.0, va="bottom")  # fmt: skip
    return fig


def kernel_pca(kernels: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal components of kernels ``(N, H, W)``, each flattened and l2-normalised first
    (all-zero kernels left out), mean removed.

    Returns ``(mean, pcs, ratio)``: the mean normalised kernel ``(H, W)``, the first
    ``min(components, N - 1, H * W)`` components ``(K, H, W)`` (unit l2 norm, sign such that the
    entry of largest magnitude is positive) and their explained variance ratios ``(K,)`` (share
    of the total variance about the mean).  Raises ``ValueError`` when fewer than two kernels
    are nonzero.
    """
    array = np.asarray(kernels, dtype=np.float64)
    flat = array.reshape(len(array), -1)
    norms = np.linalg.norm(flat, axis=1)
    flat = flat[norms > 0] / norms[norms > 0, None]
    if len(flat) < 2:
        raise ValueError(f"PCA needs at least two nonzero kernels, got {len(flat)}")
    mean = flat.mean(axis=0)
    _, singular, vt = np.linalg.svd(flat - mean, full_matrices=False)
    variance = singular**2
    count = min(components, len(flat) - 1, flat.shape[1])
    pcs = vt[:count]
    signs = np.sign(pcs[np.arange(count), np.argmax(np.abs(pcs), axis=1)])
    pcs = pcs * signs[:, None]
    ratio = variance[:count] / variance.sum() if variance.sum() > 0 else np.zeros(count)
    return mean.reshape(array.shape[1:]), pcs.reshape(count, *array.shape[1:]), ratio


def display_window(images: np.ndarray, share: float = PCA_SHOWN_MASS, smallest: int = 7) -> int:
    """Side of the window to show of centred ``images`` ``(N, H, W)``: the smallest centred odd
    window holding ``share`` of the l1 mass of every image (all-zero images count as needing the
    whole map), but at least ``smallest``; ``min(H, W)`` (no crop) when the map is not larger than
    ``smallest`` or some image needs the whole map."""
    from ..niff.kmr import effective_size

    side = min(np.shape(images)[-2:])
    if side <= smallest:
        return side
    sizes, ratios = kernel_mass_ratio(images)
    needed = np.nan_to_num(effective_size(sizes, ratios, share, side), nan=side)
    return int(max(smallest, needed.max()))


def plot_kernel_pca(kernels: Mapping[str, Mapping[str, np.ndarray]], run: str, components: int = 6) -> Figure:
    """Mean and leading principal components of each stage's trained kernels (:func:`kernel_pca`).

    All layers of a stage are pooled (they share the map size); each row shows the stage's mean
    l2-normalised kernel, then its first ``components`` principal components (as many as the map
    and the number of kernels allow) titled with their explained variance ratio (% of the
    variance about the mean), each on its own symmetric colour scale.

    Parameters
    ----------
    kernels : mapping
        ``{state: {layer: (C, H, W)}}``; only ``kernels["trained"]`` is used.
    run : str
        The run's name, for the title.
    components : int
        Principal components shown per stage (at least 1).

    Returns
    -------
    Figure
        One row of axes per stage (``1 + components`` columns; unused ones switched off).

    Raises
    ------
    ValueError
        Without trained kernels, for ``components < 1``, arrays that are not ``(C, H, W)``, layers
        of one stage with different map sizes, or a stage with fewer than two nonzero kernels.
    """
    from ..niff.kmr import central_crop

    _check_kernels(kernels, "trained")
    if components < 1:
        raise ValueError(f"components must be at least 1, got {components}")
    apply_style()
    trained = kernels["trained"]
    results = {}
    for stage, names in _stages(trained).items():
        sizes = {_map_size(trained[name]) for name in names}
        if len(sizes) > 1:
            raise ValueError(f"stage {stage}: layers have different map sizes {sorted(sizes)}")
        stacked = np.concatenate([trained[name] for name in names])
        results[stage] = (sizes.pop(), len(stacked), *kernel_pca(stacked, components))
    columns = 1 + max(len(result[3]) for result in results.values())
    cell = min(0.95, (TEXT_WIDTH - 0.8) / columns)
    size = (max(COLUMN_WIDTH, 0.8 + cell * columns), 0.35 + (cell + 0.3) * len(results))
    fig, axes = plt.subplots(len(results), columns, squeeze=False, figsize=size)
    for row, (stage, (map_size, count, mean, pcs, ratio)) in zip(axes, results.items(), strict=True):
        images = np.concatenate([mean[None], pcs])
        window, shown = display_window(images), map_size
        if window < min(images.shape[-2:]):
            images, shown = central_crop(images, window), f"centre {window}x{window}\nof {map_size}"
        show_kernel(row[0], images[0], title="mean")
        row[0].set_ylabel(f"stage {stage}\n{shown}\n{count} kernels", rotation=0, ha="right", va="center")
        for i, (ax, pc, share) in enumerate(zip(row[1:], images[1:], ratio, strict=False), start=1):
            show_kernel(ax, pc, title=f"PC{i}: {100 * share:.1f} %")
        for ax in row[1 + len(pcs) :]:
            ax.axis("off")
    fig.suptitle(f"{run}: principal components of the trained kernels per stage\n(kernels l2-normalised, "
                 "mean removed; title: share of the variance explained)", fontsize=8)  # fmt: skip
    fig.tight_layout(w_pad=0.3, h_pad=0.6)
    return fig
