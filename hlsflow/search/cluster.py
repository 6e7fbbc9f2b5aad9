"""Where a sweep's points run, on Dask distributed: a LocalCluster sized by the cores and a memory
budget per point (the default), an existing scheduler (`--scheduler tcp://host:port`, its workers
started in the toolchain image), or a batch system through dask-jobqueue (`--jobqueue FILE`).

Every worker has one thread: one point at a time, each point a whole flow in its own process
memory (TensorFlow, g++ emulation, Vivado), so the memory budget is per worker.
"""

import contextlib
import os
from pathlib import Path

from .. import console
from ..errors import FlowError

JOBQUEUE_SYSTEMS = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster", "pbs": "PBSCluster"}


def parse_memory(text) -> int:
    """Bytes in "4GB", "512MiB"...; FlowError for anything else."""
    from dask.utils import parse_bytes

    try:
        value = parse_bytes(str(text))
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
    from ..config import read_raw

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


def jobqueue_cluster(path, memory_per_point="4GB"):
    """A dask-jobqueue cluster from the jobqueue file (not yet scaled: nothing is submitted).
    Unless the file says otherwise, each job runs one single-threaded worker per core, with
    --memory-per-point for each."""
    import dask_jobqueue

    spec = read_jobqueue(path)
    kwargs = dict(spec["cluster"])
    kwargs.setdefault("cores", 1)
    kwargs.setdefault("processes", kwargs["cores"])  # one thread per worker: one point at a time
    if "memory" not in kwargs:
        kwargs["memory"] = f"{parse_memory(memory_per_point) * kwargs['processes'] // 2**20}MiB"
    kwargs.setdefault("job_name", "hlsflow-sweep")
    cls = getattr(dask_jobqueue, JOBQUEUE_SYSTEMS[spec["system"]])
    try:
        return cls(**kwargs), spec["jobs"]
    except (TypeError, ValueError) as exc:
        raise FlowError(f"dask-jobqueue refused the cluster settings in {path} ({exc}): fix them there.") from None


@contextlib.contextmanager
def client(points: int, scheduler=None, jobqueue=None, memory_per_point="4GB", workers=None):
    """A Dask Client for the sweep, and the cluster it owns (if any) closed afterwards."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    # Dask's own INFO lines would drown the sweep's progress; its warnings (a worker lost) stay.
    logging.getLogger("distributed").setLevel(logging.WARNING)

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
        if jobqueue:
            cluster, jobs = jobqueue_cluster(jobqueue, memory_per_point)
            console.step(f"dask-jobqueue: submitting {jobs} job(s); the sweep waits for their workers")
            cluster.scale(jobs=jobs)
        else:
            budget = parse_memory(memory_per_point)
            n = int(workers) if workers else local_workers(budget, points)
            console.step(f"Local Dask cluster: {n} worker(s), one point each at a time, {memory_per_point} per point")
            # Loopback only: nothing outside this machine (or container) needs to reach it.
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, memory_limit=budget, processes=True,
                                   host="127.0.0.1", dashboard_address=None)
        with cluster, Client(cluster) as dask_client:
            yield dask_client
