"""Where a sweep's points run, on Dask distributed: a LocalCluster sized by the cores and a memory
budget per point (the default), an existing scheduler (`--scheduler tcp://host:port`, its workers
started in the toolchain image), or a batch system through dask-jobqueue (`--jobqueue FILE`).

Every worker has one thread: one point at a time, each point a whole flow in its own process
memory (TensorFlow, g++ emulation, Vivado), so the memory budget is per worker.
"""

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from .. import console
from ..errors import DECIMAL, FlowError

JOBQUEUE_SYSTEMS = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster", "pbs": "PBSCluster"}


def parse_memory(text) -> int:
    """Bytes in "4GB", "512MiB"...; FlowError for anything else."""
    from dask.utils import parse_bytes

    # The number in errors.DECIMAL's grammar (parse_bytes's float() takes "٣GB" and "1_0GB"), then a unit.
    try:
        value = parse_bytes(str(text)) if re.fullmatch(f"(?:{DECIMAL.pattern}) ?[A-Za-z]*", str(text)) else 0
    except (ValueError, TypeError):
        value = 0
    if value <= 0:
        raise FlowError(f"Memory per point '{text}' is not an amount of memory: give e.g. --memory-per-point 4GB.")
    return value


def local_workers(memory_per_point: int, points: int) -> int:
    """As many one-point workers as there are cores and memory budgets in RAM, and points to run."""
    import psutil

    by_memory = psutil.virtual_memory().total // memory_per_point
    if by_memory < 1:
        raise FlowError(f"This machine has {psutil.virtual_memory().total / 2**30:.1f} GiB of memory, less than one "
                        "point's budget: lower --memory-per-point.")
    return max(1, min(os.cpu_count() or 1, by_memory, points))


def read_jobqueue(path) -> dict:
    """The jobqueue file: `system` (slurm, htcondor, pbs), `jobs` (how many batch jobs), and
    `cluster` (keyword arguments of dask-jobqueue's cluster class)."""
    from ..config_files import read_raw

    path = Path(path)
    raw = read_raw(path)
    system = str(raw.get("system", "")).lower()
    if system not in JOBQUEUE_SYSTEMS:
        raise FlowError(f"system in {path} is {raw.get('system')!r}: use one of {', '.join(JOBQUEUE_SYSTEMS)}.")
    jobs = raw.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise FlowError(f"jobs in {path} is {jobs!r} but must be a whole number of batch jobs, at least 1.")
    cluster = raw.get("cluster") or {}
    if not isinstance(cluster, dict):
        raise FlowError(f"cluster in {path} must be a mapping of {JOBQUEUE_SYSTEMS[system]} arguments.")
    unknown = sorted(set(raw) - {"system", "jobs", "cluster"})
    if unknown:
        raise FlowError(f"{unknown[0]}: unknown key in {path}; use system, jobs and cluster.")
    return {"system": system, "jobs": jobs, "cluster": cluster}


def slurm_conf() -> Path:
    return Path(os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf")


def munge_socket(conf: Path) -> Path:
    """The munge socket Slurm authenticates with: AuthInfo's socket= in slurm.conf, else munge's default."""
    for line in conf.read_text(errors="replace").splitlines():
        key, _, value = line.split("#", 1)[0].partition("=")
        if key.strip().lower() == "authinfo":
            for item in value.split(","):
                name, _, where = item.strip().partition("=")
                if name.lower() == "socket" and where:
                    return Path(where)
    return Path("/run/munge/munge.socket.2")


def submit_host(path) -> tuple:
    """(host folders, environment) the sweep's container needs to submit jobs as this machine
    does: for Slurm, the folder of slurm.conf and munge's socket (sbatch, squeue and scancel are
    in the image). FlowError when this machine cannot submit. HTCondor and PBS: nothing yet."""
    if read_jobqueue(path)["system"] != "slurm":
        return [], {}
    conf = slurm_conf()
    if not conf.is_file():
        raise FlowError(f"No Slurm configuration at {conf}: run the sweep on a machine that submits to Slurm "
                        "(where sbatch works), or set SLURM_CONF to its slurm.conf.")
    socket = munge_socket(conf)
    if not socket.is_socket():
        raise FlowError(f"munge does not run on this machine (no socket {socket}), and Slurm authenticates with it: "
                        "start munged, or run the sweep on a machine that submits to Slurm.")
    return [conf.parent, socket.parent], {"SLURM_CONF": str(conf)}


def _slurm_partitions() -> set:
    """The partitions Slurm's controller knows; FlowError when it cannot be asked."""
    if not shutil.which("sinfo"):
        raise FlowError("Slurm's commands (sinfo, sbatch) are not on PATH here: run the sweep with the `hlsflow` "
                        "command, whose image has them, or install Slurm's client.")
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        proc = None
    if proc is None or proc.returncode:
        said = (proc.stderr.strip().splitlines() or ["no answer"])[-1] if proc else "no answer within 60 s"
        raise FlowError(f"Slurm's controller does not answer (sinfo: {said}): check slurm.conf ({slurm_conf()}) "
                        "and that slurmctld runs.")
    return set(proc.stdout.split())


def jobqueue_cluster(path, memory_per_point="4GB", log_directory=None, check=True):
    """A dask-jobqueue cluster from the jobqueue file (not yet scaled: nothing is submitted).
    Unless the file says otherwise, each job runs one single-threaded worker per core, with
    --memory-per-point for each. With `check`, Slurm is asked first whether the partition exists."""
    import dask_jobqueue

    spec = read_jobqueue(path)
    kwargs = dict(spec["cluster"])
    kwargs.setdefault("cores", 1)
    kwargs.setdefault("processes", kwargs["cores"])  # one thread per worker: one point at a time
    if "memory" not in kwargs:
        kwargs["memory"] = f"{parse_memory(memory_per_point) * kwargs['processes'] // 2**20}MiB"
    kwargs.setdefault("job_name", "hlsflow-sweep")
    if log_directory:
        kwargs.setdefault("log_directory", str(log_directory))
    name = JOBQUEUE_SYSTEMS[spec["system"]]
    if check and spec["system"] == "slurm" and kwargs.get("queue"):
        partitions = _slurm_partitions()
        if str(kwargs["queue"]) not in partitions:
            raise FlowError(f"queue in {path} is {kwargs['queue']!r}, a partition this Slurm does not have: use one "
                            f"of {', '.join(sorted(partitions)) or '(none)'}.")
    try:
        return getattr(dask_jobqueue, name)(**kwargs), spec["jobs"]
    except (TypeError, ValueError) as exc:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if unknown:
            raise FlowError(f"{unknown.group(1)} in cluster of {path} is no argument of dask-jobqueue's {name}: "
                            "fix or remove it.") from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FlowError(f"dask-jobqueue refused the cluster settings in {path} ({reason}): fix them there.") from None


class BatchJobs:
    """The sweep's batch jobs: every id submitted, which are pending (no worker yet), running or
    lost (ended: cancelled, out of walltime), and a new job for each one lost while points remain."""

    def __init__(self, cluster, jobs: int):
        self.cluster, self.jobs = cluster, jobs
        self.names = {}  # job id -> the cluster's name for it, in submission order
        self.started = set()  # ids of jobs whose workers have connected

    def _current(self) -> dict:
        """{job id: name} of the jobs the cluster holds now (it drops one whose workers left)."""
        return {job.job_id: name for name, job in list(self.cluster.workers.items()) if getattr(job, "job_id", None)}

    def poll(self) -> str:
        current = self._current()
        self.names.update(current)
        connected = {str(w.get("name")) for w in self.cluster.scheduler_info.get("workers", {}).values()}

        def up(job_id):
            name = str(self.names[job_id])
            return any(w == name or w.startswith(f"{name}-") for w in connected)

        running = {job_id for job_id in current if up(job_id)}
        self.started |= running
        # Lost at once when its worker leaves: the cluster drops the job only some seconds later.
        lost = {job_id for job_id in self.names
                if job_id not in current or (job_id in self.started and job_id not in running)}
        if len(self.cluster.workers) < self.jobs:
            # The spec still names every job: scaling again submits one for each the cluster dropped.
            self.cluster.scale(jobs=self.jobs)
        return f"jobs: {len(set(current) - running - lost)} pending, {len(running - lost)} running, {len(lost)} lost"

    def job_of(self, worker_name):
        """The id of the job whose worker this is (a job with several workers names them <job>-<i>)."""
        self.names.update(self._current())
        ids = [job_id for job_id, name in self.names.items()
               if str(worker_name) == str(name) or str(worker_name).startswith(f"{name}-")]
        # A resubmitted job takes the lost one's name: the newest id with it ran the point.
        return ids[-1] if ids else None

    def ids(self) -> list:
        self.names.update(self._current())
        return list(self.names)


@contextlib.contextmanager
def client(points: int, scheduler=None, jobqueue=None, memory_per_point="4GB", workers=None, log_directory=None):
    """A Dask Client for the sweep, and the cluster it owns (if any) closed afterwards. With a
    jobqueue, the client's `batch_jobs` is its BatchJobs (None otherwise); the jobs' logs go
    into log_directory."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    # Dask's own lines would drown the sweep's progress, and its warnings ("Worker process still alive
    # after 4.0 seconds, killing" as a sweep ends) say nothing the sweep's own lines do not: a point
    # whose worker was lost is reported by the sweep. `hlsflow --verbose` shows them.
    quiet = logging.INFO if console.verbose() else logging.ERROR
    logging.getLogger("distributed").setLevel(quiet)

    if scheduler and jobqueue:
        raise FlowError("Give --scheduler or --jobqueue, not both: the jobqueue file starts its own scheduler.")
    # Points start processes (g++, Vivado): workers must not be daemonic, whoever started them.
    # A scheduler started here hands a worker its next point only when it is free (saturation 1):
    # a point waiting behind a long synthesis could run at once on another worker.
    with dask.config.set({"distributed.worker.daemon": False, "distributed.scheduler.worker-saturation": 1.0}):
        if scheduler:
            try:
                dask_client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise FlowError(f"No Dask scheduler answers at {scheduler} ({exc}): start one with `dask scheduler` "
                                "and workers in the image, or leave out --scheduler for a local cluster.") from None
            console.step(f"Dask scheduler {scheduler}: {len(dask_client.scheduler_info()['workers'])} worker(s)")
            with dask_client:
                yield dask_client
            return
        batch = None
        if jobqueue:
            cluster, jobs = jobqueue_cluster(jobqueue, memory_per_point, log_directory)
            console.step(f"dask-jobqueue: submitting {jobs} job(s); the sweep waits for their workers")
            cluster.scale(jobs=jobs)
            batch = BatchJobs(cluster, jobs)
        else:
            budget = parse_memory(memory_per_point)
            n = int(workers) if workers else local_workers(budget, points)
            console.step(f"Local Dask cluster: {n} worker(s), one point each at a time, {memory_per_point} per point")
            # Loopback only: nothing outside this machine (or container) needs to reach it.
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, memory_limit=budget, processes=True,
                                   host="127.0.0.1", dashboard_address=None, silence_logs=quiet)
        with cluster, Client(cluster) as dask_client:
            dask_client.batch_jobs = batch
            yield dask_client
