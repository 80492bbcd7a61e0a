"""The layout of the workflow: one rule file per stage, one thin script per rule, one log per rule,
presentation rules named figure_* / table_*, conda environments that cannot drift from pyproject.toml,
snakefmt-formatted rule files."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from conftest import REPO_ROOT, TEST_CONFIG

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.slow

RULES_DIR = REPO_ROOT / "workflow" / "rules"
SCRIPTS_DIR = REPO_ROOT / "scripts"
STAGES = ("nets", "scalespace", "clustering", "replacement", "niff", "shiftinv")
MAX_SCRIPT_LINES = 40  # a rule script: docstring, imports, main() of a few calls, run_rule(main, snakemake)
MAX_MAIN_LINES = 25
FIGURE_EXTS = {"png", "pdf"}
TABLE_EXTS = {"csv", "md", "tex"}

# Includes the real Snakefile and writes what Snakemake itself made of every rule.
DUMP_SNAKEFILE = """
include: {snakefile!r}

import json as _json
from snakemake.io import get_wildcard_names as _names, strip_wildcard_constraints as _strip

with open({dump!r}, "w") as _file:
    _json.dump(
        [
            {{
                "name": r.name,
                "snakefile": str(r.snakefile),
                "script": r.script,
                "output": [_strip(str(f)) for f in r.output],
                "log": [_strip(str(f)) for f in r.log],
                "wildcards": sorted(set().union(*(_names(str(f)) for f in r.output))),
            }}
            for r in workflow.rules
        ],
        _file,
    )
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, dict]:
    """Every rule of the workflow but `all` (name -> snakefile, script, outputs, log, wildcards),
    as Snakemake parses them on the tiny test config."""
    workdir = tmp_path_factory.mktemp("rules")
    dump = workdir / "rules.json"
    snakefile = workdir / "Snakefile"
    snakefile.write_text(DUMP_SNAKEFILE.format(snakefile=str(REPO_ROOT / "Snakefile"), dump=str(dump)))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
         "--configfile", str(TEST_CONFIG), "--list-rules"],
        capture_output=True, text=True, cwd=workdir, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0 and dump.is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    parsed = {entry["name"]: entry for entry in json.loads(dump.read_text())}
    # --list-rules and the dump agree: nothing is hidden from either.
    listed = {line.strip() for line in result.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}
    assert listed == set(parsed), (listed, set(parsed))
    assert parsed.pop("all")["snakefile"] == str(REPO_ROOT / "Snakefile")
    return parsed


def stage_of(rule: dict) -> str:
    return Path(rule["snakefile"]).stem


def test_rules_live_in_their_stage_files(rules):
    assert len(rules) >= 25, sorted(rules)
    for name, rule in rules.items():
        assert Path(rule["snakefile"]).parent == RULES_DIR, (name, rule["snakefile"])
    # common.smk and resources.smk hold helpers only (`snakemake --lint` wants no `def` beside rules).
    assert {stage_of(rule) for rule in rules.values()} == set(STAGES)
    assert {p.stem for p in RULES_DIR.glob("*.smk")} == {*STAGES, "common", "resources"}


def test_every_rule_has_its_own_script(rules):
    """scripts/<stage>/<rule>.py, where <stage> is the name of the rule file."""
    for name, rule in rules.items():
        assert rule["script"], f"rule {name} has no script: directive"
        script = (Path(rule["snakefile"]).parent / rule["script"]).resolve()
        assert script == SCRIPTS_DIR / stage_of(rule) / f"{name}.py", (name, rule["script"])
        assert script.is_file(), script


def test_every_script_belongs_to_a_rule(rules):
    scripts = {p.relative_to(SCRIPTS_DIR).as_posix() for p in SCRIPTS_DIR.rglob("*") if p.is_file()}
    scripts = {s for s in scripts if "__pycache__" not in s}
    expected = {f"{stage_of(rule)}/{name}.py" for name, rule in rules.items()}
    assert scripts == expected, (sorted(scripts - expected), sorted(expected - scripts))


def test_every_rule_logs_under_its_stage(rules):
    """logs/<stage>/<rule>.log, or logs/<stage>/<rule>/<wildcards>.log with the output's wildcards."""
    for name, rule in rules.items():
        assert len(rule["log"]) == 1, (name, rule["log"])
        log = rule["log"][0]
        prefix = f"logs/{stage_of(rule)}/{name}"
        if rule["wildcards"]:
            match = re.fullmatch(re.escape(prefix) + r"((?:/\{\w+\})+)\.log", log)
            assert match, (name, log)
            assert sorted(re.findall(r"\{(\w+)\}", match.group(1))) == rule["wildcards"], (name, log)
        else:
            assert log == f"{prefix}.log", (name, log)


def is_presentation(path: str) -> bool:
    return path.startswith(("results/figures/", "results/tables/"))


def test_presentation_rules_are_named_figure_or_table(rules):
    """A rule that only makes figures or tables is named figure_* or table_* (and vice versa); every
    figure comes from a figure_* rule; figure_* rules make PNG + PDF, table_* rules CSV + MD + TeX."""
    presentation = {name for name, rule in rules.items() if all(map(is_presentation, rule["output"]))}
    named = {name for name in rules if name.startswith(("figure_", "table_"))}
    assert presentation == named, (sorted(presentation - named), sorted(named - presentation))
    assert len([n for n in named if n.startswith("table_")]) >= 2 and len(named) >= 14, sorted(named)
    for name, rule in rules.items():
        figures = [path for path in rule["output"] if path.startswith("results/figures/")]
        assert not figures or name.startswith("figure_"), (name, figures)
        stems = {path.rsplit(".", 1)[0] for path in rule["output"]}
        if name.startswith("figure_"):
            assert figures
            for stem in {path.rsplit(".", 1)[0] for path in figures}:
                assert {f"{stem}.{ext}" for ext in FIGURE_EXTS} <= set(figures), (name, stem)
        if name.startswith("table_"):
            for stem in stems:
                assert {f"{stem}.{ext}" for ext in TABLE_EXTS} == set(rule["output"]), (name, rule["output"])


def script_paths() -> list[Path]:
    return sorted(SCRIPTS_DIR.rglob("*.py"))


@pytest.mark.parametrize("script", script_paths(), ids=lambda p: p.relative_to(SCRIPTS_DIR).as_posix())
def test_scripts_are_thin(script):
    """A rule script reads its inputs, calls the library and writes its outputs: no loops, no helper
    functions or classes, a few lines, and it ends with `run_rule(main, snakemake)`."""
    text = script.read_text()
    assert len(text.splitlines()) <= MAX_SCRIPT_LINES, f"{script}: {len(text.splitlines())} lines"
    tree = ast.parse(text)
    docstring = ast.get_docstring(tree)
    assert docstring and docstring.startswith(f"Rule {script.stem}:"), docstring
    loops = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.For | ast.AsyncFor | ast.While)]
    assert not loops, f"{script}: loops at lines {loops} belong in the library"
    definitions = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    functions = [node for node in ast.walk(tree) if isinstance(node, definitions)]
    assert [f.name for f in functions] == ["main"], f"{script}: {[f.name for f in functions]}"
    main = functions[0]
    assert main.end_lineno - main.lineno + 1 <= MAX_MAIN_LINES, f"{script}: main() is too long"
    last = tree.body[-1]
    assert ast.unparse(last) == "run_rule(main, snakemake)", ast.unparse(last)
    assert "from masterkey.core.rules import run_rule" in text
    for node in tree.body[1:-1]:  # only imports, constants and main() at module level
        assert isinstance(node, ast.Import | ast.ImportFrom | ast.Assign | ast.FunctionDef), ast.unparse(node)


# -- conda environments ---------------------------------------------------------------------------

ENV_FILES = (REPO_ROOT / "environment.yml", REPO_ROOT / "workflow" / "envs" / "masterkey.yaml")
CONDA_ALIASES = {"pytorch": "torch"}  # conda-forge names of PyPI packages


def pyproject() -> dict:
    """The [project] table of pyproject.toml."""
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def pyproject_requirements(project: dict) -> dict[str, SpecifierSet]:
    """Package -> its version specifier, over the dependencies and every optional group."""
    groups = project.get("optional-dependencies", {}).values()
    lines = [*project["dependencies"], *(line for group in groups for line in group)]
    return {canonicalize_name(r.name): r.specifier for r in map(Requirement, lines)}


def conda_requirement(spec: str) -> tuple[str, SpecifierSet]:
    """``numpy=1.26`` (conda: 1.26.*), ``numpy 1.26``, ``numpy>=1.26`` -> (name, specifier)."""
    match = re.fullmatch(r"(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)", spec.strip())
    name, version = match.group(1), match.group(2).strip()
    if not version:
        return name, SpecifierSet()
    if re.fullmatch(r"=?[0-9][\w.*]*", version.lstrip("=")) and not version.startswith("=="):
        version = version.lstrip("=")
        return name, SpecifierSet(f"=={version}" if "*" in version else f"=={version}.*")
    return name, SpecifierSet(version.replace(" ", ""))


def env_drift(env: dict, env_dir: Path, project: dict) -> list[str]:
    """Why an environment file disagrees with pyproject.toml (empty: it does not)."""
    problems = []
    pinned = pyproject_requirements(project)
    conda, pip = [], []
    for dependency in env.get("dependencies", []):
        if isinstance(dependency, dict):
            pip += dependency.get("pip", [])
        else:
            conda.append(str(dependency))
    editable = [line.split(None, 1)[1] for line in pip if line.startswith(("-e ", "--editable "))]
    if not any((env_dir / path).resolve() == REPO_ROOT for path in editable):
        problems.append(f"does not install the package itself (pip: -e <repository root>): {pip}")
    requires_python = SpecifierSet(project["requires-python"])
    pythons = [conda_requirement(spec)[1] for spec in conda if conda_requirement(spec)[0] == "python"]
    if len(pythons) != 1:
        problems.append(f"needs exactly one python entry, not {len(pythons)}")
    for spec in pythons:
        versions = [s.version.rstrip(".*") for s in spec if s.operator in ("==", "===", ">=", "~=")]
        if not versions or not all(requires_python.contains(v) for v in versions):
            problems.append(f"python {spec} does not satisfy requires-python {requires_python}")
    requirements = [conda_requirement(spec) for spec in conda]
    for line in pip:
        if line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            problems.append(f"pip entry {line!r} is not a requirement")
            continue
        requirements.append((requirement.name, requirement.specifier))
    for name, spec in requirements:
        key = canonicalize_name(CONDA_ALIASES.get(name, name))
        if key not in pinned or not str(spec):
            continue  # not a pyproject package, or unpinned
        for constraint in spec:
            version = constraint.version.rstrip(".*")
            if not pinned[key].contains(version, prereleases=True):
                problems.append(f"{name} {spec} disagrees with pyproject.toml ({key}{pinned[key]})")
    return problems


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_conda_environment_cannot_drift_from_pyproject(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert env_drift(env, env_file.parent, pyproject()) == []


def test_drift_check_catches_a_disagreeing_pin():
    project = pyproject()
    good = {"dependencies": ["python=3.11", "pip", {"pip": ["-e ."]}]}
    assert env_drift(good, REPO_ROOT, project) == []
    torch = str(pyproject_requirements(project)["torch"]).lstrip("=")
    assert env_drift({"dependencies": [*good["dependencies"][:2], f"pytorch={torch}", {"pip": ["-e ."]}]},
                     REPO_ROOT, project) == []  # fmt: skip
    for extra in (["pytorch=1.0"], ["numpy=1.20"], [{"pip": ["pandas==1.0"]}], ["torch 0.4"], ["timm>=2"]):
        env = {"dependencies": [*good["dependencies"], *extra]}
        problems = env_drift(env, REPO_ROOT, project)
        assert len(problems) == 1 and "disagrees with pyproject.toml" in problems[0], (extra, problems)
    old_python = {"dependencies": ["python=3.8", "pip", {"pip": ["-e ."]}]}
    assert any("requires-python" in problem for problem in env_drift(old_python, REPO_ROOT, project))
    assert env_drift({"dependencies": ["python=3.11", "pip"]}, REPO_ROOT, project)  # no -e .
    assert env_drift({"dependencies": ["pip", {"pip": ["-e ."]}]}, REPO_ROOT, project)  # no python


# -- formatting -----------------------------------------------------------------------------------


def test_snakefmt_is_clean(repo_root):
    snakefmt = Path(sys.executable).parent / "snakefmt"
    result = subprocess.run(
        [str(snakefmt), "--check", "Snakefile", "workflow/"], cwd=repo_root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = sorted(str(p.relative_to(repo_root)) for p in RULES_DIR.glob("*.smk"))
    assert f"All {len(files) + 1} file(s) would be left unchanged" in result.stderr + result.stdout, files
