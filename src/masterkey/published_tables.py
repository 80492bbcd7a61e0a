"""Tables of spread measures and model fits for the 8 published master key filters ([Q], [B]).

* :func:`published_spread_table` -> ``spread.csv``: ``filter, model, m_x, m_y, V_xx, V_xy, V_yy,
  mg_x, mg_y, Vg_xx, Vg_xy, Vg_yy, correlation, correlation_g, offset, offset_g`` (see
  :func:`masterkey.spread.spread_table`).
* :func:`published_fits_table` -> ``fits.csv`` with exactly the columns :data:`FITS_COLUMNS`
  (``filter`` 1..8 in file order, ``model`` the type name, ``method`` one of ``A, B, C1, C2, D1,
  D2`` and the pooled ``A-joint, B-joint, C-joint, D-joint``; ``alpha`` empty except ``id-lap``).
* :func:`write_table` writes a DataFrame as CSV, Markdown or LaTeX (booktabs) by file suffix.

Model types come from automatic selection (:func:`masterkey.fitting.select_types`) unless given;
for the published filters this yields ``dy+, dx-, dy-, dx+, dx, dy, id-lap, T``.  The pooled fits
use the groups of [B]: filters {1, 2, 3, 4, 8} and {5, 6} (:data:`PUBLISHED_JOINT_GROUPS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .fitting import JOINT_METHODS, METHODS, fit_filters, fit_joint, select_types
from .spread import spread_table

__all__ = [
    "FITS_COLUMNS",
    "PUBLISHED_JOINT_GROUPS",
    "published_types",
    "published_spread_table",
    "published_fits_table",
    "to_markdown",
    "to_latex_booktabs",
    "write_table",
]

FITS_COLUMNS = ["filter", "model", "method", "sigma_x", "sigma_y", "alpha", "l1", "l2", "on_bound"]
PUBLISHED_JOINT_GROUPS: dict[str, list[int]] = {"1,2,3,4,8": [1, 2, 3, 4, 8], "5,6": [5, 6]}
"""Pooled groups of [B], 1-based filter numbers."""


def published_types(filters: np.ndarray, types=None) -> list[str]:
    """The model type of each filter: ``types`` if given, else automatic selection."""
    if types is not None:
        return list(types)
    selected, _ = select_types(filters)
    return selected


def published_spread_table(filters: np.ndarray, types=None) -> pd.DataFrame:
    """Spread measures of every filter (``filter`` 1..N), with ``model`` = its type."""
    types = published_types(filters, types)
    table = spread_table(filters, types)
    return table.rename(columns={"type": "model"})


def published_fits_table(
    filters: np.ndarray,
    types=None,
    methods=METHODS,
    joint_methods=JOINT_METHODS,
    groups: dict[str, list[int]] | None = None,
) -> pd.DataFrame:
    """All fits of the filters as a DataFrame with exactly :data:`FITS_COLUMNS`.

    ``groups`` (1-based filter numbers, default :data:`PUBLISHED_JOINT_GROUPS`) define the pooled
    fits; filters in no group get no joint rows.  Rows: filter 1..N in order, then the methods in
    the order given (per-filter methods first, then joint ones).
    """
    filters = np.asarray(filters, dtype=np.float64)
    types = published_types(filters, types)
    groups = PUBLISHED_JOINT_GROUPS if groups is None else groups
    per_filter = fit_filters(filters, types, methods=list(methods))
    frames = [per_filter]
    if joint_methods:
        zero_based = {label: [i - 1 for i in members] for label, members in groups.items()}
        variance = [m[0] for m in joint_methods if m in ("A-joint", "B-joint") and m[0] not in methods]
        source = per_filter
        if variance:
            source = pd.concat([per_filter, fit_filters(filters, types, methods=variance)], ignore_index=True)
        joint = fit_joint(filters, types, zero_based, methods=list(joint_methods), per_filter=source)
        frames.append(joint.drop(columns=["group"]))
    table = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(list(methods) + list(joint_methods))}
    table = table.assign(_order=table["method"].map(order)).sort_values(["filter", "_order"], kind="stable")
    table["filter"] = table["filter"] + 1
    table = table.rename(columns={"type": "model"})
    return table[FITS_COLUMNS].reset_index(drop=True)


def _format_cell(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (NaN as empty cells)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = [
        "| " + " | ".join(_format_cell(v, digits) for v in row) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows]) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("#", r"\#"),
    ):
        text = text.replace(char, escaped)
    return text


def to_latex_booktabs(table: pd.DataFrame, digits: int = 3, caption: str | None = None,
                      label: str | None = None) -> str:  # fmt: skip
    """A LaTeX ``tabular`` with booktabs rules (``\\toprule``, ``\\midrule``, ``\\bottomrule``)."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(table[c]) else "l" for c in table.columns)
    lines = []
    if caption or label:
        lines += [r"\begin{table}[ht]", r"\centering"]
        if caption:
            lines.append(rf"\caption{{{_latex_escape(caption)}}}")
        if label:
            lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    lines.append(" & ".join(_latex_escape(str(c)) for c in table.columns) + r" \\")
    lines.append(r"\midrule")
    for row in table.itertuples(index=False):
        lines.append(" & ".join(_latex_escape(_format_cell(v, digits)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption or label:
        lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, path: str | Path, digits: int = 3, caption: str | None = None) -> Path:
    """Write ``table`` by suffix: ``.csv`` (full precision, NaN empty), ``.md``, ``.tex``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table.to_csv(path, index=False, na_rep="")
    elif suffix in (".md", ".markdown"):
        path.write_text(to_markdown(table, digits))
    elif suffix == ".tex":
        path.write_text(to_latex_booktabs(table, digits, caption=caption))
    else:
        raise ValueError(f"unsupported table format {path.suffix!r}; use .csv, .md or .tex")
    return path
