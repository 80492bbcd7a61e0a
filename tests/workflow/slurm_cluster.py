"""A throw-away single-node Slurm on localhost, for the real-Slurm test.

``SlurmCluster`` writes its own slurm.conf, munge key, state and spool
directories into a fresh temporary directory, starts ``munged``,
``slurmctld`` and ``slurmd`` in the foreground as child processes (so their
process ids are known), and stops exactly those processes again. Nothing under
/etc is used: clients find the cluster through the ``SLURM_CONF`` variable of
``cluster.env``.

The configuration needs no cgroups and no accounting database:
``proctrack/linuxproc``, ``task/none``, ``select/cons_tres`` (cores as
consumable), ``accounting_storage/none``, and ``MinJobAge=300`` so that
``squeue`` still reports finished jobs when Snakemake asks for their state.

``ensure_slurm_installed()`` installs Debian's ``slurm-wlm`` and ``munge``
when they are missing (``apt-get update`` first, only then); it returns a
reason string when that is impossible (not root, no apt-get, install failed),
which the test prints when it skips; it raises :class:`SlurmError` when the install
succeeded but left programs missing (a fault of this module, not of the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "sinfo", "srun", "scancel")
PACKAGES = ("slurm-wlm", "munge")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def _which(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return shutil.which(name, path=path)


def missing_programs() -> list[str]:
    return [name for name in (*DAEMONS, *CLIENTS) if _which(name) is None]


def ensure_slurm_installed(timeout: float = 900) -> str | None:
    """Install slurm-wlm and munge when missing. Returns None when ready, else why not."""
    if not missing_programs():
        return None
    if os.geteuid() != 0:
        return f"Slurm programs {missing_programs()} are missing and the test does not run as root"
    if _which("apt-get") is None:
        return f"Slurm programs {missing_programs()} are missing and there is no apt-get to install them"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Keep the packages' maintainer scripts from starting system-wide daemons.
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    deadline = time.monotonic() + timeout
    try:
        for command in (
            ["apt-get", "update", "-q"],
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                *PACKAGES,
            ],
        ):
            try:
                result = subprocess.run(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=max(10.0, deadline - time.monotonic()),
                )
            except (subprocess.TimeoutExpired, OSError) as err:
                return f"could not install {' '.join(PACKAGES)}: {' '.join(command)}: {err}"
            if result.returncode != 0:
                tail = (result.stdout + result.stderr).strip()[-1500:]
                return f"could not install {' '.join(PACKAGES)} ({' '.join(command)} failed):\n{tail}"
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    missing = missing_programs()
    if missing:
        raise SlurmError(f"Slurm programs still missing after installing {' '.join(PACKAGES)}: {missing}")
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


class SlurmError(RuntimeError):
    pass


class SlurmCluster:
    """One controller and one compute node on this machine, all state under ``root``."""

    def __init__(self, root: Path, cpus: int | None = None, min_job_age: int = 300):
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.min_job_age = min_job_age
        self.node = socket.gethostname().split(".")[0]
        self.processes: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "run" / "munge.socket"
        self.bin = self.root / "bin"
        self.env = {
            **os.environ,
            "SLURM_CONF": str(self.conf),
            "PATH": os.pathsep.join([str(self.bin), os.environ.get("PATH", ""), *SBIN]),
        }
        # A snakemake started inside a job must not think it is inside *our* job.
        for key in list(self.env):
            if key.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")) and key != "SLURM_CONF":
                del self.env[key]

    # -- configuration --------------------------------------------------

    def write_config(self) -> None:
        for sub in ("etc", "run", "log", "state", "spool", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # munged and slurmstepd want non-world-writable parents
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        memory = max(1024, _memory_mb() - 1024)
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=masterkeytest",
                    f"SlurmctldHost={self.node}(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "SchedulerType=sched/backfill",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "JobCompType=jobcomp/none",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    f"MinJobAge={self.min_job_age}",
                    "SlurmctldTimeout=30",
                    "SlurmdTimeout=30",
                    "InactiveLimit=0",
                    "KillWait=5",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'run' / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                    f"RealMemory={memory} State=UNKNOWN",
                    f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        # Only read when a cgroup plugin is configured; present so nothing looks under /etc.
        (self.conf.parent / "cgroup.conf").write_text("CgroupPlugin=autodetect\nIgnoreSystemd=yes\n")
        # Inside a job, the slurm-jobstep plugin starts `srun` with every SLURM_*
        # variable but a few removed, SLURM_CONF included; on a real cluster srun
        # then finds /etc/slurm/slurm.conf. This cluster's configuration lives in
        # the temporary directory, so an `srun` first on PATH (which sbatch
        # --export=ALL hands to the job) points the real one at it.
        self.bin.mkdir(exist_ok=True)
        srun = self.bin / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="${{SLURM_CONF:-{self.conf}}}" exec {_which("srun")} "$@"\n')
        srun.chmod(0o755)

    # -- daemons --------------------------------------------------------

    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process

    def _wait(self, what: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SlurmError(f"{name} exited with {process.returncode} while waiting for {what}")
            if check():
                return
            time.sleep(0.5)
        raise SlurmError(f"timed out after {timeout:.0f} s waiting for {what}")

    def run(self, *args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            list(args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise SlurmError(f"{' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result

    def _ok(self, *args: str) -> bool:
        try:
            return self.run(*args, timeout=10, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start(self, timeout: float = 60) -> None:
        self.write_config()
        r = self.root
        self._start(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--key-file={r / 'munge' / 'munge.key'}",
                f"--socket={self.munge_socket}",
                f"--pid-file={r / 'run' / 'munged.pid'}",
                f"--log-file={r / 'log' / 'munged.log'}",
                f"--seed-file={r / 'munge' / 'munged.seed'}",
            ],
        )
        self._wait("munged's socket", self.munge_socket.exists, timeout)
        self._start("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self._ok("scontrol", "ping"), timeout)
        self._start("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait("the node to become idle", self._node_idle, timeout)

    def _node_idle(self) -> bool:
        try:
            result = self.run("sinfo", "-h", "-N", "-o", "%T", timeout=10, check=False)
        except subprocess.TimeoutExpired:
            return False
        state = result.stdout.strip().lower()
        if state.startswith(("down", "drain")):
            self.run("scontrol", "update", f"NodeName={self.node}", "State=RESUME", timeout=10, check=False)
        return result.returncode == 0 and state.rstrip("*") in {"idle", "mixed", "allocated"}

    def cancel_all(self, timeout: float = 30) -> None:
        """Cancel every job of this cluster and wait until none runs."""
        if "slurmctld" not in self.processes:
            return
        try:
            self.run("scancel", "--full", "--user", str(os.getuid()), timeout=10, check=False)

            def idle():
                out = self.run("squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i", timeout=10, check=False)
                return out.returncode == 0 and not out.stdout.strip()

            self._wait("cancelled jobs to end", idle, timeout)
            # slurmstepd processes outlive their job by a moment; each holds a socket
            # in the spool directory until it exits.
            self._wait("job steps to exit", lambda: not self._step_sockets(), timeout)
        except (SlurmError, subprocess.TimeoutExpired):
            pass

    def _step_sockets(self) -> list[Path]:
        return [p for p in (self.root / "spool").glob(f"{self.node}_*") if p.is_socket()]

    def stop(self, timeout: float = 20) -> None:
        """Stop the daemons this object started, by their process ids; newest first."""
        self.cancel_all()
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGTERM)
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(timeout=timeout)
                except ProcessLookupError:
                    pass
        self.processes.clear()

    def logs(self, limit: int = 3000) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace")[-limit:]
            parts.append(f"--- {path.name}\n{text}")
        return "\n".join(parts)

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
