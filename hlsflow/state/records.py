"""The record of one step in an output folder: is it current, and recording a run of it. A step's
output is current only when the hashes of its inputs now are those recorded and its files are
intact; a run that was killed stays recorded as "running", so the next run redoes it. Steps ask
this module and never read each other's files.
"""

import contextlib
import errno
import json
import os
import time
from pathlib import Path

from .. import console, steps
from ..steps import Outcome, csynth_xml_path, emulation_library  # noqa: F401 (handed on: outdir)
from ..errors import FlowError, from_os_error
from . import signing
from .folder import accounted_files, atomic_temp_of, changed_since, is_accounted, snapshot, staging
from ..inputs import design_inputs, digest, hash_files, tree_hash
from .manifest import MANIFEST, Manifest, changed_outputs, now, stage_record

MISSING, STALE, CURRENT, UNFINISHED, CHANGED = "missing", "stale", "current", "unfinished", "changed"
# What writing into the output directory can meet: said in one sentence naming that directory.
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class Record:
    """The record of one step (a stage, a command or a cache of steps.py) in one output directory:
    is it current, and recording a run of it. `run` is the one record/reuse/run/done sequence:

        record_of = Record(cfg.output_dir, steps.CSIM, {"project": tree, "samples": sha, ...})
        record, reused = record_of.run(lambda into: Outcome([...], result={...}))
    """

    def __init__(self, out_dir, step, inputs: dict, in_place: bool = True, leaves=()):
        # Only a registered step keeps a record (LookupError otherwise): staleness and verify know each.
        self.step = steps.named(step)
        name = self.step.name
        self.out_dir = Path(out_dir)
        self.in_place = in_place
        # Exact paths (a folder ends in "/") the stage's tools may write before it records them.
        self.leaves = list(leaves)
        self._before = None  # the folder's files at the start of an in-place run
        self._left = []  # files earlier unfinished runs of this stage left, still there
        self.name = name
        self.inputs = inputs
        self.key = digest(inputs)
        self._started = None
        self._t0 = None
        self._finished = False
        self._run_id = None

    def state(self) -> tuple:
        """(MISSING | STALE | UNFINISHED | CHANGED | CURRENT, why in a few words)."""
        record = stage_record(self.out_dir, self.name)
        if record is None:
            return MISSING, "it has not run"
        status = record.get("status")
        if status == "running":
            return UNFINISHED, "its last run did not finish"
        if status in ("failed", "interrupted"):
            return UNFINISHED, f"its last run {status}"
        if status == "stale":
            return STALE, record.get("stale_because", "what it was made from changed")
        if not signing.holds(record):
            # Its files may be loaded or run (the fast engine, the library, the project's C++ and
            # Tcl): only what this user's hlsflow recorded is reused.
            return STALE, "it was not recorded by you (its signature does not hold for your key)"
        if record.get("key") != self.key:
            before = record.get("inputs", {})
            which = [k for k in sorted(set(before) | set(self.inputs)) if before.get(k) != self.inputs.get(k)]
            return STALE, f"its {', '.join(which) or 'inputs'} changed"
        problems = changed_outputs(self.out_dir, record)
        if problems:
            rel, what = problems[0]
            more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
            return CHANGED, f"{rel}{more} {what} since it ran"
        return CURRENT, "nothing it depends on changed"

    def current_result(self):
        """The result the record holds when the record is current (inputs and outputs as
        recorded), else None: a set-up kept in the output folder is reused only then."""
        if self.state()[0] != CURRENT:
            return None
        return stage_record(self.out_dir, self.name).get("result") or {}

    def run(self, work, force=False, current=None, again=None, ready=None) -> tuple:
        """(record, reused): the recorded results when they are current (saying `current`), else
        `ready()`, then `work(into)` -> Outcome recorded as done. A stage that is not `in_place`
        works in a staging folder that replaces the output folder only once it is recorded."""
        state, why = self.state()
        if state == CURRENT and not force:
            if current:
                console.step(current)
            return self.reuse(), True
        if ready:
            ready()
        if again and state not in (MISSING, CURRENT):
            console.step(f"{again}: {why}")
        with self.running():
            if self.in_place:
                return self._done(work(self.out_dir)), False
            with staging(self.out_dir) as into:
                return self._done(work(into), write_to=into), False

    def _done(self, outcome: Outcome, write_to=None) -> dict:
        return self.done(outcome.outputs, result=outcome.result, extra=outcome.extra, write_to=write_to,
                         sources=outcome.sources)

    def reuse(self) -> dict:
        """Record a run that reused the results; returns the stage's record."""
        manifest = Manifest(self.out_dir)
        manifest.add_run(self.name, now(), 0.0, "ok", 0, reused=True)
        manifest.save()
        return manifest.stages[self.name]

    @contextlib.contextmanager
    def running(self):
        """The block that does the stage's work. Its run is recorded from the start, so a run that
        is killed stays recorded as "running". A stage that writes in place is marked unfinished
        until done(), so the next run redoes it; convert, which writes a staged copy, leaves the
        previous project's record as it is. A FlowError or Ctrl-C is recorded with its exit
        status, then goes on up."""
        self._started, self._t0 = now(), time.monotonic()
        self._run_id = f"{os.getpid()}-{time.time_ns()}"
        if self.out_dir.is_dir():
            manifest = Manifest(self.out_dir)
            manifest.add_run(self.name, self._started, 0.0, "running", None, reused=False, run_id=self._run_id)
            if self.in_place:
                self._start_in_place(manifest)
            manifest.save()
        try:
            yield self
        except BaseException as exc:
            if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:
                with contextlib.suppress(OSError):  # the manifest may not fit on a full disk either
                    self._record_end("failed", 2)
                raise from_os_error(exc, self.out_dir) from exc
            status, code = "failed", 1
            if isinstance(exc, FlowError):
                code = exc.exit_code
            if isinstance(exc, KeyboardInterrupt) or code == 130:
                # SIGTERM and SIGHUP arrive as a KeyboardInterrupt that carries its signal (cli.Interrupted)
                status, code = "interrupted", 128 + getattr(exc, "signum", 2)
            self._record_end(status, code)
            raise

    def _start_in_place(self, manifest: "Manifest") -> None:
        """Mark the record running, carry over the files its earlier runs made (a later run that
        does not write them again must not disown them), and say what this run may leave if it is
        killed."""
        self._before = snapshot(self.out_dir)
        record = manifest.stages.get(self.name) or {}
        # Its earlier runs' files stay its own, if this run does not write them again (a log of
        # an earlier run with other flags): only as far as the user's key signed that record.
        files, folders = accounted_files([record] if signing.holds(record) else [])
        self._left = [rel for rel in self._before if is_accounted(rel, files, folders) and rel != MANIFEST]
        record = dict(record if signing.holds(record) else {}, status="running", started=self._started,
                      may_leave=self.leaves, left=self._left)
        manifest.stages[self.name] = signing.sign(record)

    def _left_now(self, outputs=()) -> list:
        """The files this stage's runs left in the folder and do not record as outputs."""
        if not self.in_place or self._before is None:
            return []
        made = changed_since(self.out_dir, self._before)
        return sorted(rel for rel in {*self._left, *made}
                      if rel not in outputs and (self.out_dir / rel).is_file() and atomic_temp_of(rel) is None)

    def _end_run(self, manifest: "Manifest", status: str, code) -> None:
        for run in reversed(manifest.data["runs"]):
            if run.get("id") == self._run_id:
                run.update(status=status, exit_status=code, seconds=round(time.monotonic() - self._t0, 3))
                del run["id"]
                return
        manifest.add_run(self.name, self._started, time.monotonic() - self._t0, status, code, reused=False)

    def _record_end(self, status: str, code) -> None:
        if self._finished or not self.out_dir.is_dir():
            return
        manifest = Manifest(self.out_dir)
        if self.in_place:
            record = manifest.stages.setdefault(self.name, {})
            held = signing.holds(record)
            record.update(status=status, exit_status=code, left=self._left_now(record.get("outputs") or {}))
            if held:  # signed by this run's start: what it left is the user's run's, provably
                signing.sign(record)
        self._end_run(manifest, status, code)
        manifest.save()

    def done(self, outputs, result=None, extra=None, write_to=None, sources=None) -> dict:
        """Record the finished stage: its inputs, the sha256 of each output (paths relative to the
        directory the outputs are in: `write_to` when convert writes a staging copy), its result.
        `sources`: the user's files it read, with their hashes, for the manifest's inputs. Marks
        the stages made from the previous results stale; returns the new record."""
        root = Path(write_to or self.out_dir)
        source = Manifest(self.out_dir) if self.out_dir.is_dir() else Manifest(root)
        files = hash_files(root, outputs)
        previous = source.stages.get(self.name) or {}
        record = {"status": "ok", "key": self.key, "inputs": self.inputs, "outputs": files,
                  "result": result, "environment": source.note_environment(), "started": self._started,
                  "finished": now(), "seconds": round(time.monotonic() - self._t0, 3), "exit_status": 0,
                  **(extra or {})}
        left = self._left_now(files) if root == self.out_dir else []
        if left:
            record["left"] = left
        if self.name == "convert":
            record["tree_hash"] = tree_hash(files)
            source.mark_stale(steps.downstream("convert"), "the project was written again")
        elif previous.get("outputs") != files:
            source.mark_stale(steps.downstream(self.name), f"{self.name} ran again")
        source.stages[self.name] = signing.sign(json.loads(json.dumps(record)))  # signed as it is stored
        source.data.setdefault("inputs", {}).update(sources or {})
        self._end_run(source, "ok", 0)
        source.save(to=root)
        self._finished = True
        return record


# ------------------------------------------------------------------ what the stages ask

def project_stage(cfg) -> Record:
    # Staged and swapped into place: a failed or killed convert leaves the previous project whole.
    return Record(cfg.output_dir, steps.CONVERT, design_inputs(cfg), in_place=False)


def require_project(cfg) -> dict:
    """The record of a complete, current project, or FlowError saying how to get one."""
    state, why = project_stage(cfg).state()
    if state == MISSING:
        raise FlowError(f"No complete HLS project at {cfg.output_dir}: run `hlsflow convert` first.")
    if state != CURRENT:
        raise FlowError(f"The HLS project at {cfg.output_dir} is not current ({why}): run `hlsflow convert` first.")
    return stage_record(cfg.output_dir, "convert")


def made_from(out_dir, name: str, project: dict) -> bool:
    """Whether a stage's recorded results are intact and were made from this project, whatever
    flags it ran with (a report needs synthesis results, not the ones of today's defaults)."""
    record = stage_record(out_dir, name)
    return bool(record and record.get("status") == "ok"
                and record.get("inputs", {}).get("project") == project["tree_hash"]
                and not changed_outputs(out_dir, record))


class Caches:
    """The records of the caches a stage's work keeps in the output folder (steps of kind CACHE),
    handed to the work by the runner (flow.py): the work asks what is kept for its inputs and hands
    over what it made; it opens no record itself."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)

    def kept(self, step, inputs: dict):
        """The result recorded for these inputs while the record and its files are current, else None."""
        return Record(self.out_dir, step, inputs).current_result()

    def keep(self, step, inputs: dict, work, leaves=(), force=False, current=None, ready=None) -> tuple:
        """(record, reused): what `work(into) -> Outcome` made, recorded; reused when current (unless force)."""
        return Record(self.out_dir, step, inputs, leaves=leaves).run(work, force=force, current=current, ready=ready)
