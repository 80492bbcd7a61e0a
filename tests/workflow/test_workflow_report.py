"""The HTML report, the paper map, single targets and local bookkeeping rules, on the tiny demo run."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import NO_NETWORK, REPO_ROOT, TINY_DEMO, run_snakemake

pytestmark = pytest.mark.slow



def expand_braces(pattern: str) -> list[str]:
    """``a.{csv,md}`` -> ``["a.csv", "a.md"]`` (Snakemake wildcards such as ``{model}`` are kept)."""
    parts = re.split(r"(\{[^{}]*,[^{}]*\})", pattern)
    options = [part[1:-1].split(",") if part.startswith("{") and "," in part else [part] for part in parts]
    return ["".join(choice) for choice in itertools.product(*options)]


def paper_map_targets(text: str, start: str, end: str) -> set[str]:
    """The backticked targets of the paper map between the headings ``start`` and ``end``."""
    section = text.split(start, 1)[1].split(end, 1)[0]
    quoted = re.findall(r"`+((?:results|resources)/[^`]+)`+", section)
    return {target for pattern in quoted for target in expand_braces(pattern)}


@pytest.fixture(scope="module")
def readme_map() -> set[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    heading = re.search(r"^## Paper map\n", readme, re.M).group(0)
    following = re.search(r"^## (?!Paper map)", readme.split(heading, 1)[1], re.M).group(0)
    return paper_map_targets(readme, heading, following)


def as_regex(pattern: str) -> re.Pattern:
    """A paper-map pattern (``{model}``, ``{K}``, ``{variant}`` wildcards) as a regex over paths."""
    return re.compile(
        "".join(
            r"[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{\w+\})", pattern)
        )
        + "$"
    )


def test_paper_map_is_the_same_in_readme_and_report(readme_map):
    report_text = (REPO_ROOT / "workflow/report/workflow.rst").read_text()
    in_report = paper_map_targets(report_text, "Paper map\n---------", "\n\n\n")
    assert readme_map == in_report
    assert (
        any(t.endswith(".tex") for t in readme_map) and "results/tables/replacement_stages.tex" in readme_map
    )


def figure_and_table_files(run: Path) -> set[str]:
    """Every figure (PNG) and table (CSV) the run made, relative to the run directory."""
    found = set()
    for pattern in ("results/figures/*.png", "results/tables/*.csv", "results/published/*.csv"):
        found |= {str(p.relative_to(run)) for p in run.glob(pattern)}
    return found


def test_every_paper_map_target_was_built_on_the_demo_config(tiny_demo_run, readme_map):
    made = {str(p.relative_to(tiny_demo_run)) for p in tiny_demo_run.rglob("*") if p.is_file()}
    for target in sorted(readme_map):
        assert any(as_regex(target).match(path) for path in made), f"paper map target {target} was not built"
    # ... and every figure or table of the run is on the map.
    patterns = [as_regex(t) for t in readme_map]
    outputs = {
        str(p.relative_to(tiny_demo_run))
        for d in ("results/figures", "results/tables", "results/published")
        for p in (tiny_demo_run / d).iterdir()
    }
    assert outputs and all(any(p.match(path) for p in patterns) for path in outputs), sorted(outputs)


def report_results(html: str) -> dict:
    match = re.search(r'<script id="results">\s*var results = (.*?);\s*</script>', html, re.S)
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def report(tiny_demo_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    result = run_snakemake(
        tiny_demo_run, "--configfile", "config.yaml", "--report", str(path), env=NO_NETWORK
    )
    assert path.is_file(), result.stderr[-3000:]
    return path.read_text()


def test_report_holds_every_figure_and_table_with_a_caption(report, tiny_demo_run):
    results = report_results(report)
    expected = figure_and_table_files(tiny_demo_run)
    assert {"results/figures/published_models.png", "results/tables/classification.csv"} <= expected
    assert set(results) >= expected, sorted(expected - set(results))
    for path, entry in results.items():
        caption = entry["caption"]
        text = " ".join(re.sub(r"<[^>]+>", "", caption).split())
        assert len(text) > 150, (path, text)
        assert "{{" not in text and "{%" not in text and "System Message" not in text, (path, text)
        # what produced it: the config keys and the rule
        assert "Config:" in text and f"rule {entry['job_properties']['rule']}" in text, (path, text)
        assert entry["data_uri"].startswith("data:"), path  # embedded: the report is one offline file
        assert entry["labels"] and entry["labels"]["kind"] in ("figure", "table"), path
        if "_demo." in path:  # per-model items name their model
            assert "demo" in caption, (path, caption)
    mimes = {entry["mime_type"] for entry in results.values()}
    assert mimes == {"image/png", "text/csv"}


def test_report_describes_the_workflow_and_its_config(report):
    match = re.search(r'<script id="workflow-desc">\s*var workflow_desc = (.*?);\s*</script>', report, re.S)
    description = json.loads(match.group(1))
    assert "Paper map" in description and "results/tables/replacement.{csv,md,tex}" in description
    assert "arXiv:2509.12746" in description and "arXiv:2401.14469" in description
    for value in (f"'steps': {TINY_DEMO['steps']}", "camera", "num_master_keys"):
        assert value in description, value
    assert "System Message" not in description and "{{" not in description


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_target_rebuilds_alone_and_identically(tiny_demo_run, tmp_path):
    """`snakemake <target>` reruns only the job making it, and the rerun gives the same bytes."""
    run = tmp_path / "run"
    shutil.copytree(tiny_demo_run, run, symlinks=True)
    args = ("--configfile", "config.yaml", "--cores", "2")
    for target, rule, siblings in (
        ("results/figures/residuals_demo.png", "figure_residuals", ["results/figures/residuals_demo.pdf"]),
        ("results/tables/classification.tex", "cluster", ["results/tables/classification.csv",
                                                          "results/tables/classification.md"]),
        ("results/tables/replacement.tex", "table_replacement", ["results/tables/replacement.csv",
                                                                 "results/tables/replacement.md"]),
    ):  # fmt: skip
        digest = {path: sha256(run / path) for path in (target, *siblings)}
        (run / target).unlink()
        dry = run_snakemake(run, *args, "-n", target).stdout
        jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.split("Job stats:", 1)[1], re.M))
        assert jobs == {rule: "1", "total": "1"}, dry[-2000:]
        run_snakemake(run, *args, target)
        assert {path: sha256(run / path) for path in digest} == digest, rule
        if rule == "figure_residuals":
            assert "Nothing to be done" in run_snakemake(run, *args, "-n").stdout


def rule_bodies() -> dict[str, str]:
    """Rule name -> its declaration text, from every workflow/rules/*.smk."""
    bodies = {}
    for path in sorted((REPO_ROOT / "workflow/rules").glob("*.smk")):
        text = path.read_text()
        for match in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M):
            bodies[match.group(1)] = match.group(2)
    return bodies


def test_figure_and_table_rules_are_local():
    """Cheap bookkeeping rules carry `localrule: True` (not submitted under Slurm); compute rules do not."""
    bodies = rule_bodies()
    local = {name for name, body in bodies.items() if re.search(r"^\s+localrule: True$", body, re.M)}
    bookkeeping = {name for name in bodies if name.startswith(("figure_", "table_"))}
    assert len(bookkeeping) >= 12, bookkeeping
    assert local == bookkeeping | {"published_scalespace", "fetch_published_filters"}
    assert {"train_demo_model", "extract_kernels", "fit_kernels", "train_autoencoder", "cluster"} <= set(
        bodies
    )
