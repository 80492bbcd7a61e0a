"""Tables of the NIFF study ([D]): effective kernel sizes per stage, and accuracy against the plain network.

* :func:`kmr_table`: per run, state (``trained``, ``init``, ``plain`` = the baseline's ordinary
  depthwise kernels) and stage, the mean and standard deviation over kernels of the effective sizes
  at 50 % and 90 % of the l1 mass and of ``KMR(3)``, ``KMR(5)``, ``KMR(7)``
  (:func:`~.analysis.stage_summary`);
* :func:`accuracy_table`: per run, its final validation accuracy beside its baseline's, parameters
  and training time, read from the checkpoints' sidecars.

docs/methods.md section 7.
"""

from __future__ import annotations

import pandas as pd

from .analysis import stage_summary

__all__ = ["CAPTIONS", "kmr_table", "accuracy_table"]

CAPTIONS = {
    "kmr_layers": "[D]: the effective kernel sizes and kernel mass ratios of the stage table, per layer",
    "kmr": (
        "[D]: effective size of the depthwise kernels per stage (smallest centred s x s window holding "
        "50 % / 90 % of the l1 mass, in grid spacings of the stage's feature map; mean and standard "
        "deviation over kernels) and kernel mass ratio inside 3x3, 5x5, 7x7; NIFF network trained and "
        "at initialisation (same seed), and the plain network's 7x7 kernels"
    ),
    "accuracy": (
        "[D]: final validation accuracy of each NIFF run and of the plain network it is compared with "
        "(demo runs: the held-out crops, same recipe, budget and seed as the demo network; CIFAR-10: the "
        "test batch; ImageNet: every 5th validation image, the EMA where the recipe keeps one), parameters "
        "and training time; a pretrained baseline has no validation accuracy here"
    ),
}


def kmr_table(frames: dict[str, pd.DataFrame], by: str = "stage") -> pd.DataFrame:
    """One row per (run, state, ``by``) from the runs' long KMR frames (``state`` column); ``by``
    is ``stage``, or ``layer`` (with its stage and block; layers in network order)."""
    keys = ("state", "stage") if by == "stage" else ("state", "stage", "block", "layer")
    parts = [stage_summary(frame, by=keys).assign(run=run) for run, frame in frames.items()]
    table = pd.concat(parts, ignore_index=True)
    order = {"trained": 0, "init": 1, "plain": 2}
    state_first = lambda column: column.map(order) if column.name == "state" else column  # noqa: E731
    table = table.sort_values(["run", *keys[:3]], key=state_first, kind="stable")
    return table[["run", *[c for c in table.columns if c != "run"]]].reset_index(drop=True)


def _accuracy(meta: dict) -> float | None:
    value = (meta.get("training") or {}).get("val_accuracy")
    return None if value is None else float(value)


def accuracy_table(runs: list[dict]) -> pd.DataFrame:
    """``runs``: ``{"run", "architecture", "dataset", "meta", "baseline", "baseline_meta"}`` with
    the sidecars loaded (``baseline_meta`` None without a baseline).  Accuracies are fractions."""
    rows = []
    for entry in runs:
        meta, base = entry["meta"], entry.get("baseline_meta")
        rows.append({
            "run": entry["run"],
            "architecture": entry["architecture"],
            "dataset": entry["dataset"],
            "val_accuracy": _accuracy(meta),
            "parameters": meta.get("num_parameters"),
            "train_seconds": (meta.get("training") or {}).get("train_seconds"),
            "baseline": entry.get("baseline"),
            "baseline_val_accuracy": _accuracy(base) if base else None,
            "baseline_parameters": base.get("num_parameters") if base else None,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table["difference"] = table["val_accuracy"] - table["baseline_val_accuracy"]
    return table
