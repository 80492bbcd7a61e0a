"""The one table writer: CSV, Markdown and LaTeX (booktabs), atomic and deterministic."""

import numpy as np
import pandas as pd
import pytest

from masterkey.core.tables import format_cell, latex_escape, to_latex_booktabs, to_markdown, write_table


@pytest.fixture
def table():
    return pd.DataFrame(
        {
            "model": ["a_b", "c|d"],
            "stage": pd.array([1, pd.NA], dtype="Int64"),
            "sigma": [0.123456789, -0.0001],
            "alpha": [np.nan, 2.0],
            "on_bound": [True, False],
            "kernels": np.array([1840, 7], dtype=np.int64),
        }
    )


def test_cells_are_formatted_one_way():
    assert format_cell(0.123456, 3) == "0.123"
    assert format_cell(-0.0001, 3) == "0.000"  # no "-0.000"
    assert format_cell(-0.0006, 3) == "-0.001"
    assert format_cell(np.float32(1.5), 2) == "1.50"
    assert [format_cell(v) for v in (np.nan, None, pd.NA)] == ["", "", ""]
    assert (format_cell(True), format_cell(np.bool_(False))) == ("yes", "")
    assert format_cell(np.int64(1840)) == "1840"
    assert latex_escape("a_b & 50% #1 {x} $y$") == r"a\_b \& 50\% \#1 \{x\} \$y\$"


def test_markdown_and_latex(table):
    markdown = to_markdown(table, digits=2).splitlines()
    assert markdown[0] == "| model | stage | sigma | alpha | on_bound | kernels |"
    assert markdown[1] == "|---|---:|---:|---:|---|---:|"  # numbers right-aligned, bools not
    assert markdown[2] == "| a_b | 1 | 0.12 |  | yes | 1840 |"
    assert markdown[3] == r"| c\|d |  | 0.00 | 2.00 |  | 7 |"
    latex = to_latex_booktabs(table, digits=2, caption="Fits of 50% of it", label="tab:x")
    lines = latex.splitlines()
    assert lines[:4] == [
        r"\begin{table}[ht]",
        r"\centering",
        r"\caption{Fits of 50\% of it}",
        r"\label{tab:x}",
    ]
    assert lines[4] == r"\begin{tabular}{lrrrlr}"
    assert lines[5:8] == [r"\toprule", r"model & stage & sigma & alpha & on\_bound & kernels \\", r"\midrule"]
    assert lines[8] == r"a\_b & 1 & 0.12 &  & yes & 1840 \\"
    assert lines[-3:] == [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    bare = to_latex_booktabs(table)
    assert bare.startswith(r"\begin{tabular}") and r"\begin{table}" not in bare


def test_write_table_by_suffix_round_trips_and_repeats(tmp_path, table):
    paths = [tmp_path / "out" / f"t.{ext}" for ext in ("csv", "md", "tex")]
    assert write_table(table, *paths, digits=2, caption="c") == paths
    first = [p.read_bytes() for p in paths]
    back = pd.read_csv(paths[0])
    assert list(back.columns) == list(table.columns)
    assert back["sigma"].tolist() == table["sigma"].tolist()  # full precision in the CSV
    assert back["stage"].isna().tolist() == [False, True] and back["alpha"].isna().tolist() == [True, False]
    assert paths[1].read_text() == to_markdown(table, 2)
    assert paths[2].read_text() == to_latex_booktabs(table, 2, caption="c")
    write_table(table, *paths, digits=2, caption="c")
    assert [p.read_bytes() for p in paths] == first
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t.csv", "t.md", "t.tex"]  # no temp files


def test_write_table_is_all_or_nothing(tmp_path, table):
    with pytest.raises(ValueError, match="unsupported table format '.xlsx'"):
        write_table(table, tmp_path / "t.csv", tmp_path / "t.xlsx")
    with pytest.raises(ValueError, match="at least one path"):
        write_table(table)

    class Broken(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_table(Broken(table), tmp_path / "u.md", tmp_path / "u.csv")
    assert list(tmp_path.iterdir()) == []


def test_old_writers_are_gone():
    import masterkey.clustering as clustering
    import masterkey.scalespace.published as published_tables

    assert not hasattr(clustering, "write_table")
    assert not hasattr(published_tables, "write_table")  # the deprecated alias was removed
    assert not hasattr(published_tables, "to_markdown") and not hasattr(published_tables, "to_latex_booktabs")
