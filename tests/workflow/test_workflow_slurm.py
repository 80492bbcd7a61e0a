"""Cluster execution: the Slurm profiles, GPU requests in sbatch calls, and a real Slurm run.

- ``test_gpu_rules_sbatch_lines``: the executor plugin's own submission code,
  driven by the real ``profiles/slurm`` with stand-ins for ``sbatch`` and
  ``sacctmgr``, must put ``--gpus=1`` (and the GPU partition and CPUs) on the
  sbatch line of every one-GPU rule, ``--gpus=4`` (config training.gpus) and
  training.gpus x (workers + 1) CPUs on that of every training rule, and no GPU
  anywhere else; with the profile's one-line switch to ``gres: "gpu:1"``,
  ``--gres=gpu:1`` / ``--gres=gpu:4`` instead, never both.
- ``test_gpu_and_training_rules_run_locally_without_a_gpu``: the same rules run
  with ``--cores 2`` on a machine without a GPU.
- ``test_real_slurm_demo``: installs Debian's slurm-wlm and munge when missing,
  starts a single-node Slurm on localhost (tests/workflow/slurm_cluster.py), runs the
  tiny demo through ``profiles/slurm-test`` with every non-local job submitted
  by sbatch, and compares its outputs with a local run. Skipped only where it
  cannot run as root or the packages cannot be installed.
- ``test_real_slurm_two_process_training``: on that cluster, one sbatch job runs
  ``launch(..., nproc=2)`` (torchrun, 2 gloo processes) of the tiny training task of
  tests/training/engine_tasks.py; its weights equal a local 1-process run's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from slurm_cluster import SlurmCluster, SlurmError, ensure_slurm_installed

from conftest import NO_NETWORK, job_counts, write_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "slurm"
TEST_PROFILE = REPO / "profiles" / "slurm-test"
RESOURCES_SMK = REPO / "workflow" / "rules" / "resources.smk"


def _rule_names(variable: str) -> tuple[str, ...]:
    match = re.search(rf"^{variable} = \(([^)]*)\)", RESOURCES_SMK.read_text(), re.M)
    return tuple(re.findall(r'"([^"]+)"', match.group(1)))


def gpu_rules() -> tuple[str, ...]:
    """One-GPU rules: the profile requests their GPU (``gpu: 1``, or the gres switch)."""
    return _rule_names("GPU_RULES")


def training_rules() -> tuple[str, ...]:
    """Multi-GPU training rules: the rule requests config training.gpus GPUs, the profile the partition."""
    return _rule_names("TRAINING_RULES")


def workflow_rules() -> dict[str, str]:
    """Rule name -> body of every rule in workflow/rules/*.smk."""
    rules = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        rules.update(re.findall(r"^rule (\w+):\n((?:[ \t].*\n|\n)*)", smk.read_text(), re.M))
    return rules


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def snakemake(*args, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    env = {**(env or os.environ), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


# -- the profile -------------------------------------------------------------


def test_profile_requests_a_gpu_for_every_gpu_rule():
    config = profile()
    assert config["executor"] == "slurm"
    defaults = config["default-resources"]
    assert {"slurm_partition", "slurm_account", "mem_mb", "runtime"} <= set(defaults)
    gpu = {name for name, res in config["set-resources"].items() if res.get("gpu") == 1}
    assert gpu == set(gpu_rules()) and gpu
    assert set(config["set-threads"]) == gpu  # training rules take threads from the rule
    partitions = {config["set-resources"][name]["slurm_partition"] for name in gpu}
    assert len(partitions) == 1 and partitions != {defaults["slurm_partition"]}
    # Training rules: the same GPU partition and nothing else (their GPU count is training.gpus).
    assert training_rules() and not set(training_rules()) & gpu
    for name in training_rules():
        assert config["set-resources"][name] == {"slurm_partition": next(iter(partitions))}, name


def test_every_rule_using_gpu_resources_is_a_gpu_rule():
    """gpu_resources() rules are the GPU_RULES and training_resources() rules the TRAINING_RULES
    (and so in the profile); every listed name is a rule of the workflow."""
    rules = workflow_rules()
    assert set(gpu_rules()) | set(training_rules()) <= set(rules), sorted(rules)
    assert not set(gpu_rules()) & set(training_rules())
    for name, body in rules.items():
        if "training_resources(" in body:
            assert name in training_rules(), f"rule {name} trains on GPUs but is not in TRAINING_RULES"
            assert re.search(r"^\s+threads: training_threads$", body, re.M), name
        elif "gpu_resources(" in body or re.search(r"\bgpu\s*=\s*[1-9]", body):
            assert name in gpu_rules(), f"rule {name} needs a GPU but is not in GPU_RULES"
    for name in training_rules():
        assert "training_resources(" in rules[name], name


# -- sbatch command lines of GPU rules (plugin code path, stand-in sbatch) --------

GPU_SNAKEFILE = """
MODELS = {{}}
include: {resources!r}

rule all:
    input: expand("out/{{name}}.txt", name=GPU_RULES + TRAINING_RULES + ("cpu_rule",))

rule cpu_rule:
    output: "out/cpu_rule.txt"
    threads: 2
    resources:
        mem_mb=scaled_mem_mb(base=1500),
        runtime=scaled_runtime(base=10),
    shell: "echo {{threads}} > {{output}}"
"""

GPU_RULE = """
rule {name}:
    output: "out/{name}.txt"
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=24000, runtime=180),
    shell: "echo {{threads}} > {{output}}"
"""

TRAINING_RULE = """
rule {name}:
    output: "out/{name}.txt"
    threads: training_threads
    resources:
        **training_resources(mem_mb=48000, runtime=600),
    shell: "echo {{threads}} > {{output}}"
"""

# The workflow config of these runs: 4 GPUs per training job, 2 loader workers per GPU
# (threads 4 x (2 + 1) = 12, below the profile's `cores`).
TRAINING = {"gpus": 4, "workers": 2}
TRAINING_THREADS = 12


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture()
def fake_slurm(tmp_path):
    """sbatch that records its command line and refuses the job; sacctmgr that knows the account."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch_calls.txt"
    _stub(bin_dir / "sbatch", f'printf "%s\\n" "$*" >> "{calls}"\necho "stub: not submitted" >&2\nexit 1\n')
    _stub(bin_dir / "sacctmgr", f'echo "{profile()["default-resources"]["slurm_account"]}"\n')
    for name in ("sinfo", "squeue", "sacct", "scontrol", "scancel", "sshare"):
        _stub(bin_dir / name, "exit 1\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SLURM_CONF", None)
    return env, calls


def write_gpu_snakefile(workdir: Path) -> list[str]:
    """Every GPU and training rule and one CPU rule, with config TRAINING; the snakemake arguments."""
    snakefile = workdir / "Snakefile"
    snakefile.write_text(
        GPU_SNAKEFILE.format(resources=str(RESOURCES_SMK))
        + "".join(GPU_RULE.format(name=name) for name in gpu_rules())
        + "".join(TRAINING_RULE.format(name=name) for name in training_rules())
    )
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump({"training": TRAINING}))
    return ["--snakefile", str(snakefile), "--configfile", str(config)]


def run_gpu_snakefile(workdir: Path, env, *args, profile_dir: Path = PROFILE) -> subprocess.CompletedProcess:
    """The GPU Snakefile through ``profile_dir`` (each submission refused by the stub)."""
    return snakemake(
        *write_gpu_snakefile(workdir), "--profile", str(profile_dir), "--retries", "0",
        "--slurm-init-seconds-before-status-checks", "1", *args, cwd=workdir, env=env,
    )  # fmt: skip


def submitted_lines(workdir: Path, env, calls: Path, *args, profile_dir: Path = PROFILE) -> dict[str, str]:
    result = run_gpu_snakefile(workdir, env, *args, profile_dir=profile_dir)
    assert result.returncode != 0  # every submission is refused by the stand-in
    output = result.stdout + result.stderr
    assert calls.exists(), output[-3000:]
    lines = {}
    for line in calls.read_text().splitlines():
        rule = re.search(r"--comment '?rule_(\w+?)'?(?: |$)", line).group(1)
        lines[rule] = line
    assert set(lines) == {*gpu_rules(), *training_rules(), "cpu_rule"}, output[-3000:]
    return lines


# The profile's one GPU line (marked SWITCH) and what docs/cluster.md tells a --gres-only cluster to
# put there instead; the flag each puts on the sbatch line of a GPU rule and of a training rule
# (training.gpus = 4 GPUs, in the same form and with the same model).
GPU_LINE = re.compile(r"^( +)gpu: 1( +# SWITCH.*)$", re.M)
GPU_SWITCH = {
    "gpus": (None, "--gpus=1", "--gpus=4"),
    "gres": ('gres: "gpu:1"', "--gres=gpu:1", "--gres=gpu:4"),
    "gres-model": ('gres: "gpu:h100:1"', "--gres=gpu:h100:1", "--gres=gpu:h100:4"),
}


def switched_profile(tmp_path: Path, line: str | None) -> Path:
    """profiles/slurm with its GPU line replaced by ``line`` (None: the profile as shipped)."""
    if line is None:
        return PROFILE
    text = (PROFILE / "config.yaml").read_text()
    assert len(GPU_LINE.findall(text)) == 1, "the profile requests the GPU with one `gpu: 1  # SWITCH` line"
    copy = tmp_path / "profile"
    copy.mkdir()
    (copy / "config.yaml").write_text(GPU_LINE.sub(lambda m: m.group(1) + line, text))
    return copy


@pytest.mark.parametrize("switch", GPU_SWITCH)
def test_gpu_rules_sbatch_lines(tmp_path, fake_slurm, switch):
    """Each setting of the switch: exactly one of --gpus / --gres on a GPU rule's line (one GPU) and
    on a training rule's line (training.gpus GPUs), none on others."""
    env, calls = fake_slurm
    line, flag, training_flag = GPU_SWITCH[switch]
    work = tmp_path / "work"
    work.mkdir()
    lines = submitted_lines(work, env, calls, profile_dir=switched_profile(tmp_path, line))
    settings = profile()
    cpu_partition = settings["default-resources"]["slurm_partition"]
    account = settings["default-resources"]["slurm_account"]
    for name in gpu_rules():
        line = lines[name]
        gpu_partition = settings["set-resources"][name]["slurm_partition"]
        assert re.findall(r"--gpus\b\S*|--gres\b\S*", line) == [flag], line
        assert f"-p {gpu_partition}" in line and f"-A {account}" in line, line
        assert f"--cpus-per-task={settings['set-threads'][name]}" in line, line
        assert "--mem 24000" in line and "-t 180" in line, line
    for name in training_rules():
        line = lines[name]
        assert re.findall(r"--gpus\b\S*|--gres\b\S*", line) == [training_flag], line
        gpu_partition = settings["set-resources"][name]["slurm_partition"]
        assert f"-p {gpu_partition}" in line and f"-A {account}" in line, line
        assert f"--cpus-per-task={TRAINING_THREADS}" in line, line
        assert "--mem 48000" in line and "-t 600" in line, line
    cpu = lines["cpu_rule"]
    assert "--gpus" not in cpu and "--gres" not in cpu, cpu
    assert f"-p {cpu_partition}" in cpu and "--cpus-per-task=2" in cpu and "--mem 1500" in cpu, cpu


def test_gpu_model_is_configurable(tmp_path, fake_slurm):
    """A GPU model given to the GPU rules holds for the training rules too (with their count)."""
    env, calls = fake_slurm
    args = [f"{name}:gpu_model=h100" for name in gpu_rules()]
    lines = submitted_lines(tmp_path, env, calls, "--set-resources", *args)
    for name in gpu_rules():
        assert "--gpus=h100:1" in lines[name], lines[name]
    for name in training_rules():
        assert re.findall(r"--gpus\b\S*|--gres\b\S*", lines[name]) == ["--gpus=h100:4"], lines[name]
    assert "--gpus" not in lines["cpu_rule"]


def test_a_gpu_requested_twice_is_refused(tmp_path, fake_slurm):
    """gres on top of gpu (the mistake of a half-done switch): one error before anything is submitted."""
    env, calls = fake_slurm
    both = switched_profile(tmp_path, 'gpu: 1\n    gres: "gpu:1"')
    work = tmp_path / "work"
    work.mkdir()
    result = run_gpu_snakefile(work, env, profile_dir=both)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and not calls.exists(), output[-3000:]
    assert f"the profile asks twice for the GPU of {gpu_rules()[0]}" in output, output
    assert 'gres: "gpu:1"' in output, output


def test_training_gpus_in_the_profile_are_refused(tmp_path, fake_slurm):
    """A `gpu:` line for a training rule (e.g. *gpu_job copied) would silently override training.gpus."""
    env, calls = fake_slurm
    name = training_rules()[0]
    result = run_gpu_snakefile(tmp_path, env, "--set-resources", f"{name}:gpu=1")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and not calls.exists(), output[-3000:]
    assert f"the profile sets the GPUs of the training rule {name}" in output, output
    assert "training.gpus" in output, output


def test_gpu_and_training_rules_run_locally_without_a_gpu(tmp_path):
    """Locally `gpu`/`gres` limit nothing (no --resources given): every rule runs on this CPU machine
    with --cores 2, the training rules asking for 4 GPUs and 12 threads, capped at 2."""
    result = snakemake(*write_gpu_snakefile(tmp_path), "--cores", "2", cwd=tmp_path,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for name in (*gpu_rules(), *training_rules(), "cpu_rule"):
        assert (tmp_path / "out" / f"{name}.txt").read_text().split() == ["2"], name
    for name in training_rules():
        block = re.search(rf"^(?:local)?rule {name}:\n((?:    .*\n)+)", output, re.M).group(1)
        assert re.search(r"^    resources: .*\bgpu=4\b", block, re.M), block


def test_paper_dry_run_through_the_slurm_profile(tmp_path):
    result = snakemake(
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n",
        "--profile", str(PROFILE), "--configfile", str(REPO / "config" / "paper.yaml"),
        cwd=tmp_path, env={**os.environ, **NO_NETWORK},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    jobs = re.findall(r"^rule (\w+):\n((?:    .*\n)+)", result.stdout, re.M)
    assert jobs
    resources = {}
    for name, body in jobs:
        line = re.search(r"^    resources: (.*)$", body, re.M).group(1)
        resources.setdefault(name, []).append(dict(kv.split("=", 1) for kv in line.split(", ")))
    # CPU rules: partition from the profile, memory and runtime that differ with the model.
    for name in ("fetch_weights", "extract_kernels"):
        assert all(r["slurm_partition"] == "cpu" and "gpu" not in r for r in resources[name])
        assert len({r["mem_mb"] for r in resources[name]}) > 3, resources[name][:5]
        assert len({r["runtime"] for r in resources[name]}) > 3
    # GPU rules: the paper DAG (no imagenet_val in config/paper.yaml) trains the autoencoder on a GPU;
    # the evaluation rules join it with imagenet_val (their sbatch lines: test_gpu_rules_sbatch_lines).
    gpu_jobs = [(name, r) for name in gpu_rules() for r in resources.get(name, [])]
    assert "train_autoencoder" in {name for name, _ in gpu_jobs}, sorted(resources)
    for name, r in gpu_jobs:
        assert r["gpu"] == "1" and r["slurm_partition"] == "gpu", (name, r)
    # Training rules (with imagenet_train set): training.gpus GPUs (default 1) on the GPU partition.
    for name in set(resources) & set(training_rules()):
        assert all(r["gpu"] == "1" and r["slurm_partition"] == "gpu" for r in resources[name]), name
    for name in set(resources) - set(gpu_rules()) - set(training_rules()):
        assert all("gpu" not in r for r in resources[name]), (name, resources[name][:3])


# -- real Slurm ----------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        reason = "the real-Slurm test starts slurmctld/slurmd/munged and must run as root"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    reason = ensure_slurm_installed()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    # Short path: munge's socket path must stay below the 108-byte limit of unix sockets.
    root = Path(tempfile.mkdtemp(prefix="mk-slurm-", dir="/tmp"))
    cluster = SlurmCluster(root)
    try:
        try:
            cluster.start()
        except (SlurmError, subprocess.TimeoutExpired) as err:
            pytest.fail(f"single-node Slurm did not start: {err}\n{cluster.logs()}")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


# The demo's kernels: weights (trained in a Slurm job) -> kernels (another Slurm job).
TARGETS = ["results/kernels/demo.npz", "results/kernels/demo.parquet"]


def test_real_slurm_demo(tmp_path, slurm_cluster):
    started = time.monotonic()
    config = write_config(tmp_path / "config.yaml")  # the tiny test config, bundled published filters
    # Same threads in both runs: CPU training is deterministic for a fixed thread count.
    threads = ["--set-threads", "train_demo_model=1", "extract_kernels=1"]
    common = [*TARGETS, "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config), *threads]

    # The local reference run goes on while the Slurm run waits for its jobs.
    local = tmp_path / "local"
    local.mkdir()
    with open(local / "local_run.log", "w") as log:
        local_run = subprocess.Popen(
            [sys.executable, "-m", "snakemake", *common, "--directory", str(local), "--cores", "1"],
            cwd=local, env={**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _run_on_slurm_and_compare(tmp_path, common, local, local_run, slurm_cluster)
    finally:
        if local_run.poll() is None:
            local_run.kill()
            local_run.wait(timeout=30)
    print(f"real-Slurm demo test: {time.monotonic() - started:.0f} s")


def _run_on_slurm_and_compare(tmp_path, common, local, local_run, slurm_cluster):
    on_slurm = tmp_path / "slurm"
    on_slurm.mkdir()
    result = snakemake(
        *common, "--directory", str(on_slurm), "--profile", str(TEST_PROFILE),
        cwd=on_slurm, env=slurm_cluster.env, timeout=420,
    )  # fmt: skip
    output = result.stdout + result.stderr
    (tmp_path / "slurm_run.log").write_text(output)
    assert result.returncode == 0, f"{output[-4000:]}\n{slurm_cluster.logs()}"

    assert local_run.wait(timeout=420) == 0, (local / "local_run.log").read_text()[-4000:]

    # Every job but the local (bookkeeping) rules went through sbatch ...
    counts = {rule: n for rule, n in job_counts(output).items() if rule != "total"}
    remote = re.findall(r"^rule (\w+):$", output, re.M)
    local_jobs = re.findall(r"^localrule (\w+):$", output, re.M)
    assert sorted(remote + local_jobs) == sorted(name for name, n in counts.items() for _ in range(n)), output
    assert set(local_jobs) <= {"fetch_published_filters"}, local_jobs
    assert sorted(remote) == ["extract_kernels", "train_demo_model"], output[-4000:]
    submissions = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", output)
    assert len(submissions) == len(remote), output[-4000:]
    # ... and Slurm itself knows them as finished jobs of those rules.
    queue = slurm_cluster.run("squeue", "--states=all", "-h", "-o", "%i|%T|%k").stdout
    states = {jobid: (state, comment) for jobid, state, comment in (ln.split("|") for ln in queue.split())}
    for jobid in submissions:
        assert states[jobid][0] == "COMPLETED", queue
    assert sorted(states[j][1] for j in submissions) == ["rule_extract_kernels_wildcards_demo",
                                                         "rule_train_demo_model"], queue  # fmt: skip
    logs = list((on_slurm / "logs" / "slurm").rglob("*.log"))
    assert len(logs) == len(submissions), logs

    # The cluster run gives the same outputs as the local run.
    for name in ("results/kernels/demo.npz",):
        a, b = np.load(on_slurm / name), np.load(local / name)
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    pd.testing.assert_frame_equal(
        pd.read_parquet(on_slurm / "results/kernels/demo.parquet"),
        pd.read_parquet(local / "results/kernels/demo.parquet"),
    )
    for run in (on_slurm, local):
        meta = yaml.safe_load((run / "resources/weights/demo.json").read_text())
        assert meta["training"]["threads"] == 1


# The tiny training task of tests/training/engine_tasks.py (a 4-class convnext_atto with dims
# (8, 16, 32, 64) and depths (1, 1, 1, 1) on 64 random 32x32 images), for 4 updates.
ENGINE_TASKS = REPO / "tests" / "training"
TRAINING_RUN = {"recipe": {"steps": 4}}


def test_real_slurm_two_process_training(tmp_path, slurm_cluster):
    """One sbatch job: launch(..., nproc=2) starts torchrun with 2 gloo processes inside the job;
    their weights equal those of a 1-process run of the same task on this machine."""
    import torch

    started = time.monotonic()
    params = {"out": str(tmp_path / "slurm_{rank}.pt"), **TRAINING_RUN}
    launch = (
        "from masterkey.training.distributed import launch; "
        f"launch('engine_tasks:run', {params!r}, nproc=2, threads=2)"
    )
    log = tmp_path / "training_job.log"
    script = tmp_path / "training_job.sbatch"
    script.write_text(
        "#!/bin/bash\n"
        "#SBATCH --job-name=masterkeytest-training\n"
        f"#SBATCH --output={log}\n"
        f"#SBATCH --chdir={tmp_path}\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=2\n"
        "#SBATCH --time=15\n"
        f"export PYTHONPATH={ENGINE_TASKS}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export TQDM_DISABLE=1 HF_HUB_OFFLINE=1\n"
        f"exec {shlex.quote(sys.executable)} -c {shlex.quote(launch)}\n"
    )
    # The 1-process reference runs here while the Slurm job runs.
    reference = tmp_path / "local.pt"
    with open(tmp_path / "local_run.log", "w") as local_log:
        local_run = subprocess.Popen(
            [sys.executable, str(ENGINE_TASKS / "engine_tasks.py"),
             json.dumps([{"out": str(reference), **TRAINING_RUN}])],
            cwd=tmp_path, env={**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"},
            stdin=subprocess.DEVNULL, stdout=local_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        submitted = slurm_cluster.run("sbatch", "--parsable", "--wait", str(script), timeout=600, check=False)
        assert local_run.wait(timeout=600) == 0, (tmp_path / "local_run.log").read_text()[-4000:]
    finally:
        if local_run.poll() is None:
            local_run.kill()
            local_run.wait(timeout=30)
    text = log.read_text() if log.exists() else ""
    failure = f"{submitted.stdout}{submitted.stderr}\n--- job log\n{text[-4000:]}\n{slurm_cluster.logs()}"
    assert submitted.returncode == 0, failure
    jobid = submitted.stdout.strip().split(";")[0]
    job = slurm_cluster.run("scontrol", "show", "job", jobid).stdout
    assert "JobState=COMPLETED" in job and "ExitCode=0:0" in job, job

    # torchrun started 2 processes inside the job; the engine's first line (rank 0) says so.
    assert "--nproc-per-node=2" in text, text[-4000:]
    assert re.search(r"^train: 4 updates .* on 2 process\(es\), cpu", text, re.M), text[-4000:]
    first, second = (torch.load(tmp_path / f"slurm_{rank}.pt") for rank in (0, 1))
    local = torch.load(reference)
    for part in ("model", "ema"):
        assert first[part].keys() == local[part].keys()
        for key, value in first[part].items():
            torch.testing.assert_close(second[part][key], value, rtol=0, atol=0)  # replicas in step
            torch.testing.assert_close(value, local[part][key], rtol=0, atol=1e-6, msg=f"{part}.{key}")
    # ... after 4 updates that moved them away from the initial network
    spec = importlib.util.spec_from_file_location("engine_tasks", ENGINE_TASKS / "engine_tasks.py")
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    initial = tasks.tiny_model().state_dict()
    moved = [key for key, value in local["model"].items() if value.is_floating_point()
             and not torch.allclose(value, initial[key], rtol=0, atol=1e-4)]  # fmt: skip
    assert len(moved) > len(initial) // 2, moved
    print(f"real-Slurm 2-process training test: {time.monotonic() - started:.0f} s")
