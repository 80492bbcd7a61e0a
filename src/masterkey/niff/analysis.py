"""Every NIFF layer's spatial kernels in a network, and their kernel mass ratios, trained vs init.

A NIFF kernel is as large as the feature map its layer sees, so the kernels of a network depend
on the input size: :func:`feature_sizes` finds each layer's map size by one forward pass of a
zero image, :func:`spatial_kernels` evaluates every layer at that size.  :func:`kmr_frame` is the
long table the figures and tables are made of; :func:`effective_sizes` its per-kernel effective
sizes; :func:`stage_summary` the per-stage mean and spread.  docs/methods.md section 7; [D] Sec. 5.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from ..core.errors import StaleFileError
from ..core.io import atomic_paths
from ..nets.depthwise import stage_and_block
from ..nets.niff_convnext import feature_sizes, spatial_kernels
from .kmr import LEVELS, effective_size, kernel_mass_ratio

__all__ = [
    "kmr_frame",
    "effective_sizes",
    "stage_summary",
    "plain_kmr_frame",
    "analyse_run",
    "save_state_kernels",
    "load_state_kernels",
]


def kmr_frame(kernels: dict[str, np.ndarray], **labels) -> pd.DataFrame:
    """Long table: one row per (layer, channel, window size ``s``) with ``kmr``; columns
    ``layer, stage, block, channel, kernel_size, s, kmr`` plus constant ``labels`` (e.g.
    ``state="trained"``)."""
    parts = []
    for name, k in kernels.items():
        sizes, ratios = kernel_mass_ratio(k)
        stage, block = stage_and_block(name)
        channels = np.repeat(np.arange(len(k)), len(sizes))
        parts.append(pd.DataFrame({
            "layer": name, "stage": stage, "block": block, "channel": channels,
            "kernel_size": f"{k.shape[-2]}x{k.shape[-1]}", "s": np.tile(sizes, len(k)), "kmr": ratios.ravel(),
        }))  # fmt: skip
    frame = pd.concat(parts, ignore_index=True)
    for key, value in labels.items():
        frame.insert(0, key, value)
    return frame


def effective_sizes(frame: pd.DataFrame, levels=LEVELS) -> pd.DataFrame:
    """Per kernel (every column of ``frame`` but ``s, kmr``): ``size_50``, ``size_90``, ... the
    smallest window holding that share of the l1 mass (:func:`~.kmr.effective_size`)."""
    keys = [c for c in frame.columns if c not in ("s", "kmr")]
    rows, results = [], {f"size_{round(level * 100)}": [] for level in levels}
    for key, group in frame.groupby(keys, sort=False):
        rows.append(key)
        sizes, ratios = group["s"].to_numpy(), group["kmr"].to_numpy()[None]
        full = (
            max(int(v) for v in str(group["kernel_size"].iloc[0]).split("x"))
            if "kernel_size" in group
            else None
        )
        for level in levels:
            results[f"size_{round(level * 100)}"].append(effective_size(sizes, ratios, level, full)[0])
    table = pd.DataFrame(rows, columns=keys)
    return table.assign(**results)


def stage_summary(frame: pd.DataFrame, by=("state", "stage"), levels=LEVELS) -> pd.DataFrame:
    """Per ``by`` group: number of kernels, map size, mean and standard deviation over kernels
    of the effective sizes and of ``KMR(3)``, ``KMR(5)``, ``KMR(7)`` (NaN where the map is smaller)."""
    sizes = effective_sizes(frame, levels)
    keyed = [c for c in sizes.columns if c not in ("s", "kmr")]
    wide = frame.pivot_table(index=[c for c in keyed if not c.startswith("size_")], columns="s", values="kmr")
    wide = wide.reindex(columns=[3, 5, 7]).rename(columns=lambda s: f"kmr_{s}").reset_index()
    merged = sizes.merge(wide, on=[c for c in keyed if not c.startswith("size_")])
    measures = [c for c in merged.columns if c.startswith(("size_", "kmr_"))]
    grouped = merged.groupby(list(by), sort=True)
    table = grouped[measures].agg(["mean", "std"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    table.insert(0, "kernel_size", grouped["kernel_size"].first())
    table.insert(0, "kernels", grouped.size())
    return table.reset_index()


def plain_kmr_frame(arrays: dict[str, np.ndarray], index: pd.DataFrame, **labels) -> pd.DataFrame:
    """The same long table for an ordinary network's depthwise kernels (the kernel store's
    ``arrays`` by kernel size and its ``index``), e.g. the plain ConvNeXt's 7x7 kernels."""
    by_layer = {
        name: arrays[part["kernel_size"].iloc[0]][part["row"].to_numpy()]
        for name, part in index.groupby("layer", sort=False)
    }
    return kmr_frame(by_layer, **labels)


def save_state_kernels(kernels: dict[str, dict[str, np.ndarray]], path) -> None:
    """Write ``{state: {layer: (C, H, W)}}`` as one ``.npz`` (entries ``<state>/<layer>``), atomically."""
    entries = {
        f"{state}/{layer}": array for state, layers in kernels.items() for layer, array in layers.items()
    }
    with atomic_paths(path) as (temp,):
        with open(temp, "wb") as handle:
            np.savez(handle, **entries)


def load_state_kernels(path) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of :func:`save_state_kernels` (layers in stored order); a missing or unreadable
    file raises :class:`~masterkey.core.errors.StaleFileError` naming it."""
    kernels: dict[str, dict[str, np.ndarray]] = {}
    try:
        with np.load(path) as data:
            for entry in data.files:
                state, layer = entry.split("/", 1)
                kernels.setdefault(state, {})[layer] = data[entry]
    except FileNotFoundError:
        raise StaleFileError(path, "does not exist") from None
    except (ValueError, OSError) as err:
        raise StaleFileError(path, f"is unreadable ({err})") from None
    return kernels


def analyse_run(trained: nn.Module, initial: nn.Module, input_size, plain: pd.DataFrame | None = None
                ) -> tuple[dict[str, dict[str, np.ndarray]], pd.DataFrame]:  # fmt: skip
    """A NIFF run's spatial kernels ``{"trained"|"init": {layer: k}}`` at ``input_size`` and the
    long KMR frame of both states (``state`` column), with the plain baseline's frame (state
    ``plain``, :func:`plain_kmr_frame`) appended when given."""
    sizes = feature_sizes(trained, input_size)
    kernels = {
        state: spatial_kernels(model, sizes=sizes)
        for state, model in (("trained", trained), ("init", initial))
    }
    frames = [kmr_frame(layers, state=state) for state, layers in kernels.items()]
    if plain is not None:
        frames.append(plain)
    return kernels, pd.concat(frames, ignore_index=True)
