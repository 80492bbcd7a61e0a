"""run_rule: the boundary between a Snakemake rule and the library (log, threads, errors)."""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from masterkey.core.errors import ConfigError, StaleFileError, UserError
from masterkey.core.rules import check_interpreter_path, run_rule


def fake_snakemake(log, rule="my_rule", threads=1):
    return SimpleNamespace(log=[str(log)] if log is not None else [], rule=rule, threads=threads)


def run_failing(main, smk):
    with pytest.raises(SystemExit) as info:
        run_rule(main, smk)
    return info.value.code


def test_success_logs_output_and_time(tmp_path):
    log = tmp_path / "logs" / "stage" / "my_rule.log"

    def main(smk):
        print("working on", smk.rule)
        print("progress", file=sys.stderr)

    run_rule(main, fake_snakemake(log))
    lines = log.read_text().splitlines()
    assert lines[:2] == ["working on my_rule", "progress"]
    assert lines[2].startswith("rule my_rule finished in ") and lines[2].endswith(" s")


def test_stale_file_is_one_line_with_the_rebuild_hint(tmp_path, capfd):
    log = tmp_path / "rule.log"
    stale = tmp_path / "results" / "kernels" / "demo.npz"

    def main(smk):
        print("started")
        raise StaleFileError(stale, "is unreadable (bad zip)")

    assert run_failing(main, fake_snakemake(log, rule="extract_kernels")) == 1
    expected = (
        f"ERROR in rule extract_kernels: {stale} is unreadable (bad zip); rebuild it: "
        f"`snakemake --forcerun {stale}` (or delete it and run snakemake again)"
    )
    text = log.read_text()
    assert text.splitlines() == ["started", expected]
    assert "Traceback" not in text
    terminal = capfd.readouterr().err
    assert expected in terminal and "Traceback" not in terminal


def test_config_error_names_the_key(tmp_path, capfd):
    log = tmp_path / "rule.log"

    def main(smk):
        raise ConfigError("clustering.k", "(40) exceeds the number of kernels (30)")

    assert run_failing(main, fake_snakemake(log, rule="cluster")) == 1
    expected = "ERROR in rule cluster: config key clustering.k: (40) exceeds the number of kernels (30)"
    assert log.read_text().splitlines() == [expected]
    assert expected in capfd.readouterr().err


def test_a_bug_keeps_its_traceback_in_the_log(tmp_path, capfd):
    log = tmp_path / "rule.log"

    def buggy_helper():
        raise KeyError("no_such_column")

    def main(smk):
        buggy_helper()

    assert run_failing(main, fake_snakemake(log, rule="fit_kernels")) == 1
    text = log.read_text()
    assert text.startswith("ERROR in rule fit_kernels (unexpected, please report):\n")
    assert "Traceback (most recent call last)" in text
    assert "in buggy_helper" in text and "KeyError: 'no_such_column'" in text
    assert "finished in" not in text
    terminal = capfd.readouterr().err
    assert "Traceback (most recent call last)" in terminal and "KeyError: 'no_such_column'" in terminal


def test_without_a_log_errors_go_to_stderr(capfd):
    def main(smk):
        raise ConfigError("seed", "bad")

    assert run_failing(main, fake_snakemake(None, rule="r")) == 1
    assert "ERROR in rule r: config key seed: bad" in capfd.readouterr().err


@pytest.mark.parametrize("threads", [1, 3])
def test_torch_threads_follow_the_rule(tmp_path, few_threads, threads):
    torch.set_num_threads(2)
    seen = []
    run_rule(
        lambda smk: seen.append(torch.get_num_threads()), fake_snakemake(tmp_path / "r.log", threads=threads)
    )
    assert seen == [threads]


def test_a_rule_without_torch_does_not_import_it(tmp_path):
    smk = f"SimpleNamespace(log=[{str(tmp_path / 'r.log')!r}], rule='r', threads=4)"
    code = (
        "import sys\n"
        "from types import SimpleNamespace\n"
        "from masterkey.core.rules import run_rule\n"
        f"run_rule(lambda smk: print('ok'), {smk})\n"
        "assert 'torch' not in sys.modules, 'run_rule imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.log").read_text().startswith("ok\nrule r finished in")


# -- errors outside main() and output outside Python: the log still holds them --------------------

# A stand-in for a script run by Snakemake's `script:` directive: Snakemake's preamble defines a
# global `snakemake` (class Snakemake) before the script's own imports run.
SCRIPT_PREAMBLE = """
class Snakemake:
    def __init__(self, log):
        self.log, self.rule, self.threads = [log], "my_rule", 1


snakemake = Snakemake({log!r})
"""


def run_script(tmp_path, body: str) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "logs" / "my_rule.log"
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_PREAMBLE.format(log=str(log)) + body)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    return result, log.read_text() if log.exists() else ""


def test_an_import_error_of_the_script_lands_in_its_log(tmp_path):
    result, log = run_script(
        tmp_path,
        "from masterkey.no_such_module import main\n"  # the script's first import fails
        "from masterkey.core.rules import run_rule\n"
        "run_rule(main, snakemake)\n",
    )
    assert result.returncode == 1
    assert log.startswith("ERROR in rule my_rule (unexpected, please report):\nTraceback"), log
    assert "ModuleNotFoundError: No module named 'masterkey.no_such_module'" in log
    assert "ModuleNotFoundError" in result.stderr  # the terminal keeps its traceback


def test_c_level_output_child_processes_and_a_hard_crash_land_in_the_log(tmp_path):
    result, log = run_script(
        tmp_path,
        "import faulthandler, os, subprocess\n"
        "from masterkey.core.rules import run_rule\n\n"
        "def main(smk):\n"
        "    print('from python')\n"
        "    os.write(2, b'from C-level stderr\\n')\n"
        "    subprocess.run(['sh', '-c', 'echo from a child process'])\n"
        "    faulthandler._sigsegv()\n\n"
        "run_rule(main, snakemake)\n",
    )
    assert result.returncode != 0
    lines = log.splitlines()
    assert lines[:3] == ["from python", "from C-level stderr", "from a child process"], log
    assert "Fatal Python error: Segmentation fault" in log and "in main" in log, log


@pytest.mark.parametrize(
    "failure, expected",
    [
        ("raise SystemExit('giving up')", "SystemExit: giving up"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    ],
)
def test_exits_and_interrupts_inside_main_are_logged(tmp_path, capfd, failure, expected):
    log = tmp_path / "rule.log"
    namespace = {}
    exec(f"def main(smk):\n    {failure}\n", namespace)
    assert run_failing(namespace["main"], fake_snakemake(log)) == 1
    text = log.read_text()
    assert text.startswith("ERROR in rule my_rule (unexpected, please report):") and expected in text, text
    assert expected in capfd.readouterr().err


def test_a_clean_exit_inside_main_is_not_an_error(tmp_path):
    with pytest.raises(SystemExit) as info:
        run_rule(lambda smk: sys.exit(0), fake_snakemake(tmp_path / "r.log"))
    assert info.value.code == 0 and "ERROR" not in (tmp_path / "r.log").read_text()


# -- the interpreter path -----------------------------------------------------------------------------


def test_interpreter_paths_snakemake_cannot_run_are_refused():
    check_interpreter_path("/opt/conda/envs/mk-3.11/bin/python3.11")
    check_interpreter_path()  # the one running the tests
    with pytest.raises(UserError) as info:
        check_interpreter_path("/home/me/my repo/.venv/bin/python")
    message = str(info.value)
    assert "'/home/me/my repo/.venv/bin/python' has a space in its path" in message
    assert "Move the repository (or the virtual environment)" in message
    with pytest.raises(UserError, match=r"has '\$', '\(', '\)' in its path"):
        check_interpreter_path("/data/$(whoami)/.venv/bin/python")
