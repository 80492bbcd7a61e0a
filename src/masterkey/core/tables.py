"""Writing result tables: CSV, Markdown and LaTeX (booktabs), atomically and deterministically.

Every table of the workflow goes through :func:`write_table`, which picks the format from each
path's suffix:

* ``.csv`` - every value at full precision (pandas' shortest round-trip ``repr`` of a float),
  missing values as empty cells, no index; read it back with :func:`pandas.read_csv`.
* ``.md`` / ``.markdown`` - a GitHub-flavoured Markdown table (:func:`to_markdown`).
* ``.tex`` - a LaTeX ``tabular`` with booktabs rules (:func:`to_latex_booktabs`), wrapped in a
  ``table`` float when a caption or label is given; needs ``\\usepackage{booktabs}``.

Cells of the Markdown and LaTeX tables are formatted by :func:`format_cell`: floats with a fixed
number of decimals (``digits``; ``-0.000`` is written ``0.000``), booleans as ``yes`` / empty,
missing values (``NaN``, ``None``, ``pd.NA``) as empty cells.  The same table therefore always
gives the same bytes.  All paths of one call are written through :func:`masterkey.core.io.atomic_paths`:
either every file appears, or none is touched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_paths

__all__ = ["TABLE_SUFFIXES", "format_cell", "to_markdown", "to_latex_booktabs", "write_table"]

TABLE_SUFFIXES = (".csv", ".md", ".markdown", ".tex")

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def format_cell(value, digits: int = 3) -> str:
    """One cell as text: fixed ``digits`` for floats, ``yes``/empty for booleans, empty if missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        text = f"{float(value):.{digits}f}"
        # -0.000 and 0.000 are the same number; write it one way.
        return text[1:] if text.startswith("-") and float(text) == 0 else text
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def _rows(table: pd.DataFrame, digits: int) -> list[list[str]]:
    return [[format_cell(v, digits) for v in row] for row in table.itertuples(index=False, name=None)]


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned."""

    def escape(text: str) -> str:
        return text.replace("|", r"\|").replace("\n", " ")

    align = [
        "---:"
        if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
        else "---"
        for c in table.columns
    ]
    header = "| " + " | ".join(escape(str(c)) for c in table.columns) + " |"
    rule = "|" + "|".join(align) + "|"
    rows = ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in _rows(table, digits)]
    return "\n".join([header, rule, *rows]) + "\n"


def latex_escape(text: str) -> str:
    """Escape the characters LaTeX treats specially in text mode."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def to_latex_booktabs(
    table: pd.DataFrame, digits: int = 3, caption: str | None = None, label: str | None = None
) -> str:
    """A LaTeX ``tabular`` with booktabs rules (``\\toprule``, ``\\midrule``, ``\\bottomrule``).

    Numeric columns are right-aligned, others left-aligned.  With ``caption`` or ``label`` the
    tabular sits in a ``table`` float with ``\\caption`` / ``\\label``.
    """
    align = "".join(
        "r" if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c]) else "l"
        for c in table.columns
    )
    lines = []
    if caption or label:
        lines += [r"\begin{table}[ht]", r"\centering"]
        if caption:
            lines.append(rf"\caption{{{latex_escape(caption)}}}")
        if label:
            lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(str(c)) for c in table.columns) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in _rows(table, digits)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption or label:
        lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(
    table: pd.DataFrame,
    *paths: str | Path,
    digits: int = 3,
    caption: str | None = None,
    label: str | None = None,
) -> list[Path]:
    """Write ``table`` to every path, the format chosen by its suffix (see the module docstring).

    ``digits`` (decimals) applies to Markdown and LaTeX, ``caption``/``label`` to LaTeX only.  The
    files are written atomically together.  Returns the paths written.  Raises ``ValueError`` for
    an unknown suffix (before anything is written) or when no path is given.
    """
    if not paths:
        raise ValueError("write_table needs at least one path")
    finals = [Path(p) for p in paths]
    for path in finals:
        if path.suffix.lower() not in TABLE_SUFFIXES:
            raise ValueError(f"unsupported table format {path.suffix!r} ({path}); use .csv, .md or .tex")
    with atomic_paths(*finals) as temps:
        for temp, final in zip(temps, finals, strict=True):
            suffix = final.suffix.lower()
            if suffix == ".csv":
                table.to_csv(temp, index=False, na_rep="", lineterminator="\n")
            elif suffix == ".tex":
                temp.write_text(to_latex_booktabs(table, digits, caption=caption, label=label))
            else:
                temp.write_text(to_markdown(table, digits))
    return finals
