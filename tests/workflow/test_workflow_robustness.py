"""Robustness of a run: paths with spaces, and the full error of every failed job in its rule's log.

- Snakemake starts every ``script:`` rule as ``<python> <script>`` with the interpreter path unquoted,
  so an interpreter under a path with a space fails every job ("/usr/bin/bash: line 1: /tmp/my: No
  such file or directory") with an empty log. The workflow refuses such an interpreter before any
  job runs.
- A tiny Snakefile whose scripts fail in each way (an import error before ``run_rule``, a bug inside
  ``main``, a :class:`UserError`, a hard crash) leaves the full error in each rule's log. It lives,
  and runs, in a directory with a space: the workflow, its scripts and the working directory may
  have spaces in their paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, TEST_CONFIG

pytestmark = pytest.mark.slow

PUBLISHED = "resources/published/master_key_filters_8.txt"  # the cheapest job of the workflow


def snakemake(python: str | Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [str(python), "-m", "snakemake", "--directory", str(workdir), "--cores", "1", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_an_interpreter_under_a_path_with_a_space_is_refused_before_any_job(tmp_path):
    spaced = tmp_path / "my venv"
    spaced.symlink_to(sys.prefix, target_is_directory=True)  # the same environment, seen under a space
    python = spaced / "bin" / Path(sys.executable).name
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = snakemake(python, workdir, PUBLISHED, "--snakefile", str(REPO_ROOT / "Snakefile"),
                       "--configfile", str(TEST_CONFIG))  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"the Python interpreter '{python}' has a space in its path" in output, output[-3000:]
    assert "Move the repository (or the virtual environment)" in output
    assert output.count("has a space in its path") == 1, output[-3000:]
    assert not (workdir / "logs").exists() and not (workdir / PUBLISHED).exists()  # no job started


# -- every way a rule script can fail --------------------------------------------------------------

FAILING_SNAKEFILE = """
FAILURES = {failures!r}

rule all:
    input: "out/ok.txt", expand("out/{{name}}.txt", name=FAILURES)

rule ok:
    output: "out/ok.txt"
    log: "logs/ok.log"
    script: "scripts/ok.py"

rule fail:
    output: "out/{{name}}.txt"
    log: "logs/{{name}}.log"
    script: "scripts/{{wildcards.name}}.py"
"""

SUCCEEDING_SCRIPT = (
    "from pathlib import Path\nfrom masterkey.core.rules import run_rule\n\n"
    "def main(smk):\n    Path(smk.output[0]).write_text('done')\n\n"
    "run_rule(main, snakemake)\n"
)
FAILING_SCRIPTS = {
    # the script's first import fails: run_rule never starts
    "import_error": "from masterkey.no_such_module import main\n",
    "bug_in_main": (
        "from masterkey.core.rules import run_rule\n\n"
        "def main(smk):\n    {}['no_such_key']\n\n"
        "run_rule(main, snakemake)\n"
    ),
    "user_error": (
        "from masterkey.core.errors import ConfigError\nfrom masterkey.core.rules import run_rule\n\n"
        "def main(smk):\n"
        "    raise ConfigError('clustering.kernel_size', '3 is not a kernel size of any model')\n\n"
        "run_rule(main, snakemake)\n"
    ),
    "hard_crash": (
        "import faulthandler\nfrom masterkey.core.rules import run_rule\n\n"
        "def main(smk):\n    print('before the crash')\n    faulthandler._sigsegv()\n\n"
        "run_rule(main, snakemake)\n"
    ),
}


def test_every_failed_job_leaves_its_full_error_in_its_log(tmp_path):
    workflow = tmp_path / "my workflow"  # Snakefile, scripts and working directory under a space
    (workflow / "scripts").mkdir(parents=True)
    for name, body in {"ok": SUCCEEDING_SCRIPT, **FAILING_SCRIPTS}.items():
        (workflow / "scripts" / f"{name}.py").write_text(body)
    (workflow / "Snakefile").write_text(FAILING_SNAKEFILE.format(failures=list(FAILING_SCRIPTS)))
    result = snakemake(sys.executable, workflow, "--keep-going")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and output.count("Error in rule fail:") == len(FAILING_SCRIPTS), output
    assert (workflow / "out" / "ok.txt").read_text() == "done", output  # a path with a space works
    assert "rule ok finished in" in (workflow / "logs" / "ok.log").read_text()
    logs = {name: (workflow / "logs" / f"{name}.log").read_text() for name in FAILING_SCRIPTS}
    unexpected = "ERROR in rule fail (unexpected, please report):\nTraceback (most recent call last):"
    assert logs["import_error"].startswith(unexpected), logs["import_error"]
    assert "ModuleNotFoundError: No module named 'masterkey.no_such_module'" in logs["import_error"]
    assert logs["bug_in_main"].startswith(unexpected) and "KeyError: 'no_such_key'" in logs["bug_in_main"]
    assert logs["user_error"].splitlines() == [
        "ERROR in rule fail: config key clustering.kernel_size: 3 is not a kernel size of any model"
    ]
    crash = logs["hard_crash"]
    assert crash.startswith("before the crash\n") and "Fatal Python error: Segmentation fault" in crash, crash
    assert "in main" in crash, crash
