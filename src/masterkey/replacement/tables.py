"""The replacement tables: per-variant and per-stage accuracy with drops against the learned
kernels, and fidelity to the unmodified network.

They read the JSON records of :mod:`masterkey.replacement.evaluation` (one file per model, dataset
and variant, ``results/replacement/{model}/{dataset}/{variant}.json``; one per model and dataset
for the stages).  One row per model, dataset and variant: accuracy columns (``top1`` ... ``top5_drop``)
are empty on a set without labels (the natural-image set), ``agreement`` (top-1 agreement with the
unmodified network, a fraction) and ``kl`` (mean ``KL(p_orig || p_replaced)``, nats) are filled
wherever reference logits were given.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.io import read_json
from .variants import FINETUNED_PREFIX, LEARNED, finetuned_name

__all__ = [
    "TABLE_COLUMNS",
    "STAGES_COLUMNS",
    "METRICS",
    "CAPTIONS",
    "replacement_table",
    "stages_table",
    "read_replacement_table",
    "read_stages_table",
    "frozen_keys_curves",
    "frozen_keys_table",
]

TABLE_COLUMNS = [
    "model",
    "dataset",
    "variant",
    "top1",
    "top5",
    "top1_drop",
    "top5_drop",
    "agreement",
    "kl",
    "images",
    "replaced",
    "kept",
    "relative_change_median",
]
STAGES_COLUMNS = ["model", "dataset", "stage", "method", "variant", "top1", "top5", "top1_drop", "top5_drop",
                  "agreement", "kl", "replaced"]  # fmt: skip
METRICS = ("top1", "top5", "agreement", "kl")
"""The metric columns of a record; a record lacks those its set or evaluation did not give."""
CAPTIONS = {
    "variants": (
        "Accuracy and fidelity with the learned depthwise kernels replaced (no retraining); "
        "drops are learned minus variant; agreement: share of inputs whose top-1 class is the "
        "unmodified network's; kl: mean KL(p_orig || p_replaced) in nats; natural: no labels"
    ),
    "frozen_keys": (
        "[Q]: the architecture trained from scratch with every depthwise filter frozen to one of K "
        "keys (only the per-channel bias learns) against learned filters, same recipe and seed; "
        "val_accuracy at the end and the best during training"
    ),
    "stages": (
        "Accuracy and fidelity with one stage's depthwise kernels replaced by the best idealized method"
    ),
}


def _records(results: list[dict]) -> pd.DataFrame:
    """The records as a frame with every metric column (NaN where a record lacks it)."""
    table = pd.DataFrame.from_records(results)
    for metric in METRICS:
        table[metric] = pd.to_numeric(table[metric], errors="coerce") if metric in table else float("nan")
    return table


def _with_drops(table: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Drops against ``baseline``'s rows of the same model and dataset; a fine-tuned variant's
    against ``finetuned-learned`` (the same recipe with the learned kernels frozen), the fair
    baseline of [B] Sec. 5."""
    index = baseline.set_index(["model", "dataset", "variant"])
    base = table["variant"].map(
        lambda v: finetuned_name(LEARNED) if v.startswith(FINETUNED_PREFIX) else LEARNED
    )
    keys = pd.MultiIndex.from_arrays([table["model"], table["dataset"], base])
    table = table.copy()
    for metric in ("top1", "top5"):
        table[f"{metric}_drop"] = index[metric].reindex(keys).to_numpy() - table[metric].to_numpy()
    return table


def _order(values: pd.Series) -> pd.Series:
    """Rank of each value by first appearance."""
    return values.map({name: i for i, name in enumerate(dict.fromkeys(values))})


def replacement_table(results: list[dict], variants: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per model, dataset and variant (:data:`TABLE_COLUMNS`), the learned baseline first;
    drops are baseline minus variant on the same dataset (in accuracy units, positive = worse;
    empty without labels).  ``results`` are the per-variant records; models and datasets keep
    their order of appearance, ``variants`` fixes the row order within them.  ``ValueError`` when a
    model and dataset has no ``learned`` record."""
    table = _records(results)
    zero_shot = table[~table["variant"].str.startswith(FINETUNED_PREFIX)]
    pairs = set(zip(zero_shot["model"], zero_shot["dataset"], strict=True))
    learned = table[table["variant"] == LEARNED]
    missing = pairs - set(zip(learned["model"], learned["dataset"], strict=True))
    if missing:
        raise ValueError(f"no learned baseline for (model, dataset) {sorted(missing)}; evaluate 'learned'")
    order = [LEARNED] + [v for v in (variants or []) if v != LEARNED]
    rank = {name: i for i, name in enumerate(order)}
    table["_rank"] = table["variant"].map(lambda v: rank.get(v, len(rank)))
    table["_model"], table["_dataset"] = _order(table["model"]), _order(table["dataset"])
    table = table.sort_values(["_model", "_dataset", "_rank", "variant"], kind="stable")
    table = _with_drops(table, table[table["variant"].isin([LEARNED, finetuned_name(LEARNED)])])
    return table[TABLE_COLUMNS].reset_index(drop=True)


def stages_table(stage_results: list[dict], baselines: list[dict]) -> pd.DataFrame:
    """Per model, dataset and stage (:data:`STAGES_COLUMNS`): accuracy and fidelity with only that
    stage replaced by the best idealized method, and the accuracy drop against the model's learned
    baseline on the same dataset."""
    table = _records(stage_results)
    table = _with_drops(table, _records(baselines))
    table["_model"], table["_dataset"] = _order(table["model"]), _order(table["dataset"])
    table = table.sort_values(["_model", "_dataset", "stage"], kind="stable")
    return table[STAGES_COLUMNS].reset_index(drop=True)


def read_replacement_table(paths: Sequence, variants: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`replacement_table` of the per-variant JSON records in ``paths``."""
    return replacement_table([read_json(path) for path in paths], variants)


def read_stages_table(stage_paths: Sequence, baseline_paths: Sequence) -> pd.DataFrame:
    """:func:`stages_table` of the per-model stage records and the learned baselines' records."""
    stages = [record for path in stage_paths for record in read_json(path)["stages"]]
    return stages_table(stages, [read_json(path) for path in baseline_paths])


def frozen_keys_curves(runs: Sequence[dict]) -> pd.DataFrame:
    """The metrics logs of [Q]'s runs in one long frame (``runs``: dicts with ``model``, ``run``
    and ``metrics``, the path of the run's metrics CSV) with ``model`` and ``run`` columns."""
    frames = [pd.read_csv(r["metrics"]).assign(model=r["model"], run=r["run"]) for r in runs]
    return pd.concat(frames, ignore_index=True)


def frozen_keys_table(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per model and run: final and best validation accuracy of the saved network (its
    EMA's where the recipe keeps one; NaN where the run was not evaluated), final training loss
    (mean of the last tenth of the log), updates and images."""
    rows = []
    for (model, run), log in curves.groupby(["model", "run"], sort=False):
        column = "ema_val_accuracy" if "ema_val_accuracy" in log else "val_accuracy"
        accuracy = log[column].dropna() if column in log else pd.Series(dtype=float)
        tail = log["train_loss"].iloc[-max(1, len(log) // 10) :]
        rows.append(
            {
                "model": model,
                "run": run,
                "val_accuracy": accuracy.iloc[-1] if len(accuracy) else float("nan"),
                "best_val_accuracy": accuracy.max() if len(accuracy) else float("nan"),
                "final_train_loss": float(tail.mean()),
                "updates": int(log["step"].max()),
                "images": int(log["images"].max()) if "images" in log else int(log["step"].max()),
            }
        )
    return pd.DataFrame(rows)
