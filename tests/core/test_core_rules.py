"""run_rule: the boundary between a Snakemake rule and the library (log, threads, errors)."""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from masterkey.core.errors import ConfigError, StaleFileError
from masterkey.core.rules import run_rule


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
