"""`hlsflow sweep --grid grid.yml`: the flow at every point of a grid of config values, on Dask.

The grid is a YAML mapping of config keys to lists of values; every combination is a point:

    ReuseFactor: [4, 16, plan]     # plan: the ReuseFactors `hlsflow plan` picks
    Precision: ["ap_fixed<16,6>", "ap_fixed<10,4>"]

Each point is the whole flow (convert, csim, synth when Vivado is there, report) in its own
output directory under the sweep's folder, with its own manifest.json: the stages are those of
hlsflow.flow, configured by load_config with the point's values as flags. What the manifests say
is current is reused; a point whose results are all current is not even sent to a worker. A
failing point is recorded with its error and the others go on. Results: sweep.csv, sweep.md,
pareto.png and sweep.json in the sweep's folder.
"""

import contextlib
import math
import os
import time
import traceback
from pathlib import Path

from .. import console, flow, stats
from ..errors import FlowError
from ..files import read_json, write_atomically, write_json
from ..inputs import design_inputs, digest, remember_command, run_inputs
from ..steps import MANIFEST
from .grid import KEYS, MAX_POINTS, make_specs, read_grid
from .sweep_results import final_line, render_pareto_png, write_table

PROGRESS_FROM = 50  # points from which checking them shows progress


# ------------------------------------------------------------------ one point

def _plan_key(base) -> str:
    return digest({"design": design_inputs(base), "samples": base.flow["emulation"].get("samples")})


def _config_here(options: dict):
    """load_config as the sweep did. A sweep with no config file gives its points none either:
    a worker elsewhere must not find one in its own working directory (the image's is its
    checkout, /opt/hlsflow, with the reference config), so none is searched for."""
    import tempfile

    from ..config import load_config

    if options.get("path"):
        return load_config(**options)
    with tempfile.TemporaryDirectory() as nowhere, contextlib.chdir(nowhere):
        return load_config(**options)


def point_config(spec: dict, make_plan: bool = True):
    """The point's FlowConfig: load_config with the point's flags. A `plan` point plans first
    (its <name>.plan.yml beside the point, kept while the design it was planned for is the
    same); with make_plan=False, None when that plan is missing or stale."""
    from ..config import load_config

    options = dict(spec["options"], announce=False)
    if not spec["plan"]:
        return _config_here(options)
    plan_file, key_file = Path(spec["plan_file"]), Path(spec["plan_file"] + ".key")
    base = _config_here(options)
    key = _plan_key(base)
    if not (plan_file.is_file() and key_file.is_file() and key_file.read_text().strip() == key):
        if not make_plan:
            return None
        from ..stages import plan

        plan.plan(base, write=plan_file)
        write_atomically(key_file, key + "\n")
    # The plan holds every setting of the point (part, precision, strategy, ReuseFactors...).
    return load_config(path=plan_file, out=options["out"], samples=options.get("samples"), announce=False)


def _preflight(cfg) -> dict:
    record = flow.record_of(cfg.output_dir, "convert") or {}
    return ((record.get("result") or {}).get("preflight")) or {}


def ruled_out(cfg) -> bool:
    """Whether the preflight says the point cannot work: it does not fit, or has errors."""
    pre = _preflight(cfg)
    # fits_estimate None: a device not in hlsflow's table, so only synthesis can judge it.
    return pre.get("fits_estimate", False) is False or any(f["level"] == "error" for f in pre.get("findings", []))


def skips_synthesis(spec: dict, cfg) -> bool:
    """A point the preflight rules out is not synthesised, unless --synth-all."""
    return ruled_out(cfg) and not spec["synth_all"]


def _row_start(spec: dict) -> dict:
    """The columns every row has, whatever became of the point: its name and grid values."""
    return {"point": spec["name"], **{k: spec["values"].get(k, "") for k in KEYS}}


def collect_row(spec: dict, cfg) -> dict:
    """The point's table row, from what its manifest and reports say."""
    row = _row_start(spec)
    excluded = ruled_out(cfg)
    pre = _preflight(cfg)
    row.update(est_multipliers=pre.get("estimated_multipliers"), est_bram_18k=pre.get("estimated_weight_bram_18k"),
               fits_estimate=pre.get("fits_estimate"))
    csim = flow.record_of(cfg.output_dir, "csim") or {}
    if csim.get("status") == "ok":
        result = csim.get("result") or {}
        row.update(agreement=result.get("top1_agreement"), keras_accuracy=result.get("keras_accuracy"),
                   hls_accuracy=result.get("hls_accuracy"), samples=result.get("samples"))
        for key in ("agreement", "keras_accuracy", "hls_accuracy"):  # each share with its 95% interval
            if row[key] is not None and row["samples"]:
                row[f"{key}_ci95"] = stats.ci_text(stats.count(row[key], row["samples"]), row["samples"])
        if result.get("metric") == "error":  # a regression: no labels to agree on, its error instead
            row["max_abs_diff"] = result.get("max_abs_diff")
    report_record = flow.record_of(cfg.output_dir, "report") or {}
    report = read_json(cfg.output_dir / "report.json") if report_record.get("status") == "ok" else None
    if report:
        used = {name: (report["resources"].get(name) or {}).get("used") for name in ("DSP", "BRAM_18K", "LUT", "FF")}
        row.update(latency_cycles=report["latency"]["worst_cycles"], latency_ns=report["latency"]["worst_ns"],
                   interval=report["interval"]["max"], fits=report["fits"], timing_met=report["timing_met"],
                   stand_in=report.get("produced_by_test_double"), **used)
        # The row says whose figures these are: a test double's never pass for Vivado's.
        row["synthesis"] = "ran (TEST DOUBLE, not Vivado)" if row["stand_in"] else "ran"
        row["limits"] = {name: (report["resources"].get(name) or {}).get("available") for name in used}
    elif excluded and not spec["synth_all"]:
        row["synthesis"] = "skipped: preflight rules it out"
    else:
        row["synthesis"] = "skipped: no Vivado HLS"
    row["status"] = "ruled out" if excluded else "ok"
    return row


def current_config(spec: dict):
    """The point's FlowConfig when every result it would have is current (then it is not run at
    all), else None. The stages are the flow's, in its order."""
    from .. import flow
    from ..stages import synthesize

    cfg = point_config(spec, make_plan=False)
    if cfg is None:
        return None
    for row in flow.STAGES:
        if row.name == "synth" and skips_synthesis(spec, cfg):
            return cfg
        flags = {"max_samples": spec["max_samples"]} if row.name == "csim" else {}
        if not flow.is_current(row.name, cfg, **flags):
            # Never synthesised, and still no Vivado in sight: as complete as it can be.
            unsynthesised = row.name == "synth" and flow.record_of(cfg.output_dir, "synth") is None
            return cfg if unsynthesised and synthesize.find_vivado_hls(spec["vivado"]) is None else None
    return cfg


def _run_flow(spec: dict):
    from .. import flow
    from ..stages import synthesize

    cfg = point_config(spec)
    flow.convert(cfg)
    # One process per point: the sweep runs points side by side, not a point's samples.
    flow.csim(cfg, max_samples=spec["max_samples"], workers=1)
    if skips_synthesis(spec, cfg):
        console.step("Synthesis skipped: the preflight rules this point out (--synth-all runs it anyway)")
    elif synthesize.find_vivado_hls(spec["vivado"]) is None:
        console.step("Synthesis skipped: no Vivado HLS found")
    else:
        flow.synth(cfg, vivado=spec["vivado"])
        flow.report(cfg, vivado=spec["vivado"])
    return cfg


def run_point(spec: dict, signer=None) -> dict:
    """Run one point on a Dask worker; returns its row. Never raises: a failure is a row with
    its error. Its output goes to <name>.log beside the point. `signer`: the sweep's user's
    signing key (flow.signing_key), which signs the point's records as theirs."""
    start = time.monotonic()
    if signer is not None:
        flow.sign_as(signer)
    # The point's manifest records the sweep's command, not the worker's.
    remember_command(spec["command"])
    log = Path(spec["log"])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        console.say(f"==== point {spec['name']} ({time.strftime('%Y-%m-%d %H:%M:%S')})")
        try:
            cfg = _run_flow(spec)
            row = collect_row(spec, cfg)
        except FlowError as exc:
            row = {"status": "failed", "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 -- a bug or a tool's crash: recorded, the other points go on
            traceback.print_exc(file=sink)
            row = {"status": "failed", "error": f"{type(exc).__name__}: {exc} (traceback in {log})"}
        if row["status"] == "failed":
            console.say(f"FAILED: {row['error']}")
    try:  # which worker ran it: a batch job's id is found from its name
        from distributed import get_worker

        row["worker"] = get_worker().name
    except ValueError:  # not on a Dask worker
        pass
    return {**_row_start(spec), **row, "reused": False, "seconds": round(time.monotonic() - start, 1)}


# ------------------------------------------------------------------ the sweep

class Tally:
    """Progress while the sweep runs: points done, running, failed, and an estimate of time left."""

    def __init__(self, total: int, workers: int):
        self.total, self.workers = total, max(workers, 1)
        self.done = self.failed = 0
        self.seconds = []
        self.start = self.last = time.monotonic()

    def finished(self, row: dict) -> None:
        self.done += 1
        self.last = time.monotonic()
        self.failed += row["status"] == "failed"
        if not row.get("reused"):
            self.seconds.append(row.get("seconds") or 0.0)

    def line(self, running: int) -> str:
        left = self.total - self.done
        if not left:
            eta = "none left"
        elif self.seconds:
            # Rounds of points still to run at the mean point time, less what has passed since the last one ended.
            mean = sum(self.seconds) / len(self.seconds)
            eta = f"~{max(math.ceil(left / self.workers) * mean - (time.monotonic() - self.last), 0):.0f} s left"
        else:
            eta = "time left unknown until a point finishes"
        return (f"sweep: {self.done}/{self.total} done, {running} running, {self.failed} failed, "
                f"{time.monotonic() - self.start:.0f} s so far, {eta}")


def _one_by_one(specs: list, label: str):
    """The specs one by one, with a progress line (console.Progress) when there are enough of them to
    take a while (a few ms each): a big grid says what it is doing before its first point runs."""
    if len(specs) < PROGRESS_FROM:
        yield from specs
        return
    progress = console.Progress(len(specs), label)
    try:
        for spec in specs:
            yield spec
            progress.advance()
    finally:
        progress.close()


def _running(dask_client, keys: set) -> int:
    """Points executing now. The scheduler's processing() also counts tasks queued on a worker;
    the workers' call stacks hold only those they execute."""
    try:
        return sum(1 for stacks in dask_client.call_stack().values() for key in stacks if key in keys)
    except Exception:  # noqa: BLE001 -- a worker busy or gone: progress is not worth failing for
        return 0


def sweep(cfg, options: dict, grid, samples=None, max_samples=None, min_agreement=None, synth_all=False,
          scheduler=None, jobqueue=None, memory_per_point="4GB", workers=None, vivado=None, max_points=None) -> dict:
    # The grid first, before Dask is even imported: a grid too big is refused at once.
    grid = Path(grid).resolve()
    grid_points = read_grid(grid, max_points or MAX_POINTS)

    from distributed import wait

    from ..config import gate_of
    from . import cluster

    # --out names the sweep's folder; by default it sits beside the config's output directory.
    sweep_dir = cfg.output_dir if options.get("out") else cfg.output_dir.with_name(cfg.output_dir.name + "-sweep")
    # The numeric flags come checked (cli/kinds.py); the memory budget is read here.
    cluster.parse_memory(memory_per_point)
    gate = gate_of(cfg, min_agreement)
    base = dict(options, samples=samples) if samples else dict(options)
    base.pop("out", None)
    # Absolute paths: a worker elsewhere (another cwd, another machine) reads the same files.
    base["path"] = str(cfg.source) if cfg.source else None
    for key in ("model", "samples"):
        if base.get(key):
            base[key] = os.path.abspath(base[key])
    specs = make_specs(grid_points, base, sweep_dir, max_samples, synth_all, vivado)
    # Every point's settings are checked before anything runs: a typo in the grid costs seconds.
    from ..config import load_config

    for spec in _one_by_one(specs, "checking the grid's points"):
        try:
            load_config(**spec["options"], announce=False)
        except FlowError as exc:
            raise FlowError(f"Point {spec['name']} of {grid}: {exc}") from None
    flow.check_folder(sweep_dir, [grid, *run_inputs(cfg, samples)], what="sweep's folder")
    if sweep_dir.exists() and any(sweep_dir.iterdir()) and not (sweep_dir / "sweep.json").exists():
        what = "an HLS project" if (sweep_dir / MANIFEST).exists() else "not a sweep's folder"
        raise FlowError(f"{sweep_dir} is {what} (it has no sweep.json), and hlsflow writes a sweep only into an "
                        "empty folder or an earlier sweep's: choose another --out.")

    with flow.lock(sweep_dir):
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not (sweep_dir / "sweep.json").exists():
            # The folder is a sweep's from now on: one cut short (its session or all its jobs gone) is
            # resumed when started again, not refused as a stranger's folder. No point is listed yet.
            write_json(sweep_dir / "sweep.json", {"grid": str(grid), "gate": gate, "status": "running", "points": []})
        rows, todo, job_ids = {}, [], None
        for spec in _one_by_one(specs, "finding the points already done"):
            current = current_config(spec)
            if current is not None:
                rows[spec["name"]] = {**collect_row(spec, current), "reused": True, "seconds": 0.0}
            else:
                todo.append(spec)
        console.step(f"Sweep of {len(specs)} point(s) from {grid.name} into {sweep_dir}: {len(rows)} current "
                     f"(reused), {len(todo)} to run")
        if todo:
            with cluster.client(len(todo), scheduler=scheduler, jobqueue=jobqueue,
                                memory_per_point=memory_per_point, workers=workers,
                                log_directory=sweep_dir / "jobs") as dask_client:
                batch = dask_client.batch_jobs if jobqueue else None
                tally = Tally(len(specs), len(dask_client.scheduler_info()["workers"]) or 1)
                for row in rows.values():
                    tally.finished(row)
                # The user's signing key goes with each point to workers this sweep started (a batch
                # job's container has no file of it), never to a scheduler someone else may run.
                signer = None if scheduler else flow.signing_key()
                futures = {dask_client.submit(run_point, spec, signer, key=f"hlsflow-point-{spec['name']}-"
                                              f"{digest(spec)[:8]}", pure=False): spec for spec in todo}
                keys = {f.key for f in futures}
                pending = set(futures)
                console.say(tally.line(_running(dask_client, keys)))
                while pending:
                    finished, pending = _wait_some(wait, pending)
                    for future in finished:
                        spec = futures[future]
                        try:
                            row = future.result()
                        except Exception as exc:  # noqa: BLE001 -- the worker died too often, or the task was lost
                            row = {**_row_start(spec), "status": "failed", "reused": False,
                                   "error": f"{type(exc).__name__}: {exc}"}
                        # Released once read: a result held on a worker that is then lost (its batch job
                        # ended) would otherwise be computed again, the point run a second time for nothing.
                        future.release()
                        worker = row.pop("worker", None)
                        if batch is not None:
                            row["job"] = batch.job_of(worker)
                        rows[spec["name"]] = row
                        tally.finished(row)
                        console.say(f"  {row['point']}: {row['status']}" + (f" ({row['error']})" if row.get("error")
                                                                             else ""))
                    tally.workers = len(dask_client.scheduler_info()["workers"]) or tally.workers
                    console.say(tally.line(_running(dask_client, keys)) + (f", {batch.poll()}" if batch else ""))
                if batch is not None:
                    job_ids = batch.ids()
        ordered = [rows[spec["name"]] for spec in specs]
        write_table(ordered, sweep_dir)
        write_atomically(sweep_dir / "pareto.png", render_pareto_png(ordered, gate))
        summary = final_line(ordered, gate)
        write_json(sweep_dir / "sweep.json", {"grid": str(grid), "gate": gate, "status": "done", "points": ordered,
                                              "best": summary,
                                              **({"jobs": job_ids} if job_ids is not None else {})})
    console.say((sweep_dir / "sweep.md").read_text())
    console.say(f"Table: {sweep_dir / 'sweep.csv'} and sweep.md; chart: {sweep_dir / 'pareto.png'}")
    console.say(summary)
    if job_ids:
        console.say(f"Batch jobs: {', '.join(job_ids)}; their accounting: sacct -j {','.join(job_ids)}")
    failed = [r["point"] for r in ordered if r["status"] == "failed"]
    if failed:
        # After the results are written: the other points' results stand, but the sweep is not clean.
        raise FlowError(f"{len(failed)} of {len(ordered)} point(s) failed ({', '.join(failed)}): each one's error is "
                        f"in {sweep_dir / 'sweep.md'} and its log in {sweep_dir}/<point>.log.", exit_code=1)
    return {"dir": str(sweep_dir), "points": ordered, "best": summary}


def _wait_some(wait, pending, every: float = 10.0):
    """The futures finished within `every` seconds (maybe none), and those still pending: the
    progress line comes at least that often."""
    from distributed import TimeoutError as DaskTimeout

    try:
        done = wait(pending, timeout=every, return_when="FIRST_COMPLETED")
        return done.done, done.not_done
    except (DaskTimeout, TimeoutError):
        return set(), pending
