"""A real single-node Slurm on this machine for the tests: munged, slurmctld and slurmd from
Debian's packages (slurm-wlm, munge), started on a generated slurm.conf in a folder of their own
(its own ports, munge socket and state, nothing of /etc touched) and stopped afterwards.

Two partitions: `main` (no time limit, the default) and `short` (MaxTime 1 minute, for walltime
kills). No slurmdbd: accounting_storage/none, and jobcomp/filetxt writes one line per finished job,
which `sacct --completion` reads (the tests ask sacct, as a user would).

Below the cluster: what test_slurm.py and test_slurm_lost.py share, a user's folder and
`hlsflow sweep --jobqueue` as a user runs it (each module has its own cluster, so the two run in
different workers at once).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import waiting
from test_user_project import hlsflow_command

REPO = Path(__file__).resolve().parents[2]
DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch")
REQUIRED = "HLSFLOW_REQUIRE_SLURM"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_reason():
    """Why no Slurm can be started here, or None."""
    absent = [name for name in DAEMONS if not shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin")]
    if absent:
        return (f"Slurm is not installed here ({', '.join(absent)} missing): `apt-get install slurm-wlm munge` "
                "(Debian), as .ci/run does")
    if os.geteuid() != 0:
        return "the local Slurm runs its daemons as root (slurmd starts jobs as their user): run the tests as root"
    return None


def skip_or_fail(reason: str):
    """Skip with the reason; where Slurm is required (CI sets HLSFLOW_REQUIRE_SLURM=1), fail."""
    if os.environ.get(REQUIRED) == "1":
        pytest.fail(f"{REQUIRED}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _sbin(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin")


def node_hardware() -> dict:
    """CPUs and RealMemory as slurmd sees them (`slurmd -C`): a node configured with more is drained."""
    out = subprocess.run([_sbin("slurmd"), "-C"], capture_output=True, text=True, check=True, timeout=60).stdout
    found = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    return {"CPUs": int(found["CPUs"]), "RealMemory": int(found["RealMemory"])}


class LocalSlurm:
    """munged + slurmctld + slurmd on localhost, configured under `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.conf = root / "etc" / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket.2"
        self.jobcomp = root / "log" / "jobcomp.txt"
        self.procs = {}

    @property
    def env(self) -> dict:
        """What Slurm's commands need to find this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def write_config(self) -> None:
        for sub in ("etc", "munge", "state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o755)
        hw = node_hardware()
        self.conf.write_text(f"""\
# Written by tests/image/slurm.py: one node on this machine, for the tests only.
ClusterName=hlsflow-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={self.root / 'state'}
SlurmdSpoolDir={self.root / 'spool'}
SlurmctldPidFile={self.root / 'run' / 'slurmctld.pid'}
SlurmdPidFile={self.root / 'run' / 'slurmd.pid'}
SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}
SlurmdLogFile={self.root / 'log' / 'slurmd.log'}
# No cgroups here (no systemd in CI containers): processes are tracked by their parents.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# No slurmdbd: a line per finished job in a text file, which `sacct --completion` reads.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
# A job cancelled or out of time gets SIGTERM, then SIGKILL 5 s later.
KillWait=5
MinJobAge=300
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={hw['CPUs']} RealMemory={hw['RealMemory']} State=UNKNOWN
PartitionName=main Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes={self.node} MaxTime=1 State=UP
""")

    def _start(self, name: str, cmd: list) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        with log:  # the child keeps its own copy of the descriptor
            self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                                env={**os.environ, **self.env})

    def command(self, *args, check=True, timeout=60) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env})
        if check and proc.returncode:
            raise AssertionError(f"{' '.join(args)} exited with {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def start(self, timeout: float = 120) -> None:
        self.write_config()
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        self._start("munged", [_sbin("munged"), "--foreground", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={self.root / 'run' / 'munged.pid'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}", "--force"])
        self._wait(lambda: self.munge_socket.is_socket(), timeout, "munged's socket")
        self._start("slurmctld", [_sbin("slurmctld"), "-D", "-c", "-f", str(self.conf)])
        self._wait(lambda: self.command("sinfo", check=False).returncode == 0, timeout, "slurmctld to answer sinfo")
        self._start("slurmd", [_sbin("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(lambda: self.node_state() == "idle", timeout, "the node to be idle in sinfo")

    def node_state(self) -> str:
        proc = self.command("sinfo", "--noheader", "--nodes", self.node, "--format=%T", check=False)
        states = set(proc.stdout.split())
        return states.pop() if len(states) == 1 else ",".join(sorted(states))

    def _wait(self, condition, timeout, what) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited ({proc.returncode}) while waiting for {what}: "
                                         + self.logs())
            if condition():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}: " + self.logs())

    def logs(self) -> str:
        tails = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            tails.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(tails)

    def jobs_completed(self) -> dict:
        """{job id: {field: value}} of every job that ended, as `sacct --completion` reads them from
        jobcomp/filetxt (a cluster with slurmdbd answers plain `sacct` the same way)."""
        fields = ("JobId", "Name", "Partition", "JobState", "NodeList", "TimeLimit")
        proc = self.command("sacct", "--completion", "--allusers", "--parsable2", "--noheader",
                            "--format=JobID,JobName,Partition,State,NodeList,Timelimit", check=False)
        if proc.returncode and not self.jobcomp.exists():
            return {}  # no job has ended yet: sacct has no completion file to read
        if proc.returncode:
            raise AssertionError(f"sacct --completion exited with {proc.returncode}: {proc.stderr.strip()}")
        records = {}
        for line in proc.stdout.splitlines():
            values = line.split("|")
            if len(values) == len(fields):
                record = dict(zip(fields, values))
                record["JobState"] = record["JobState"].split()[0]  # "CANCELLED by 0" -> CANCELLED
                records[record["JobId"]] = record
        return records

    def queue(self) -> dict:
        """{job id: state} of the jobs squeue shows now."""
        proc = self.command("squeue", "--noheader", "--format=%i %T")
        return dict(line.split() for line in proc.stdout.splitlines() if line.strip())

    def stop(self) -> None:
        # Jobs first (their workers are containers on the engine), then the daemons, newest first.
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.command("scancel", "--user", "root", check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.command("squeue", "--noheader", check=False).stdout.strip():
                time.sleep(1)
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)


# ---- A user of the cluster: the image's tag, a folder, slurm.yml and the `hlsflow` command ----

LABEL = "io.hlsflow.test-slurm"
GRID = 'ReuseFactor: [2, 4]\nPrecision: ["ap_fixed<16,6>", "ap_fixed<12,5>"]\n'


def run_hlsflow(*args, cwd, env, timeout=900, stderr=None):
    """The CompletedProcess; with `stderr` (a file), the running Popen, its stdout a pipe to read."""
    cmd = [hlsflow_command(), *map(str, args)]
    if stderr is not None:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(proc_stderr: str) -> list:
    return [line for line in proc_stderr.splitlines() if line.startswith("ERROR:")]


def wait_for(condition, timeout, what):
    return waiting.wait_for(condition, timeout, what, every=1)


def engine_reason(image: str):
    if not shutil.which("docker"):
        return "the docker command is not installed: the jobs' workers run the image through it"
    proc = subprocess.run(["docker", "tag", "hlsflow:latest", image], capture_output=True, text=True, timeout=60)
    if proc.returncode:
        return f"no hlsflow:latest on the engine ({proc.stderr.strip()[-200:]}): build it with `make image`"
    return None


def write_jobqueue(shared_dir: Path, slurm: LocalSlurm, name="slurm.yml", jobs=2, **cluster) -> Path:
    """slurm.yml as a user without Apptainer writes it: each job's python is the image's, run through the engine
    with the shared folder at the same path and the host's network (its worker connects back to the sweep)."""
    settings = {"cores": 1, "walltime": "00:30:00", **cluster}
    settings.setdefault("python", f"docker run --rm --network host --label {LABEL}={slurm.root} "
                                  f"-e HOST_UID=$(id -u) -e HOST_GID=$(id -g) -v {shared_dir}:{shared_dir} "
                                  f"{slurm.image} python")
    lines = ["system: slurm", f"jobs: {jobs}", "cluster:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in settings.items()]
    path = shared_dir / name
    path.write_text("\n".join(lines) + "\n")
    return path


def sweep_args(out, *extra):
    return ("sweep", "--model", "models/digits_cnn.keras", "--samples", "models/digits_samples.npz", "--grid",
            "grid.yml", "--out", out, "--max-samples", "20", "--memory-per-point", "2GB", *extra)


def user_env(slurm, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HLSFLOW_NATIVE", "HLSFLOW_IN_IMAGE", "HLSFLOW_CONFIG", "XILINX_ROOT", "VIVADO_DIR")}
    env.update(slurm.env, HLSFLOW_IMAGE=slurm.image, **extra)
    return env


def point_logs_started(out: Path) -> list:
    return sorted(p for p in out.glob("*.log") if p.read_text(errors="replace").count("==== point "))
