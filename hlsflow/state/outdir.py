"""The state of an output directory, kept in one record beside the results: `manifest.json`.

For every stage it says what the stage was made from (the hashes of its inputs: model, effective
config, samples, the project tree it worked on), the sha256 of every file it wrote, how each run
of it ended (command line, start, duration, exit status, reused or not) and in which
environment (image, versions). A stage's output is current only when the hashes of its inputs
now are those recorded and its files are intact; a run that was killed stays recorded as
"running", so the next run redoes it. Stages ask this module and never read each other's files;
`hlsflow verify` (verify.py) recomputes what it records.
"""

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import functools
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

from .. import __version__, console, steps
from ..errors import FlowError, from_os_error
from ..files import read_json, sha256, write_json
from ..image import sbom
from ..loading import model_files
from ..versions import first_line, package_version
from . import signing

MANIFEST = "manifest.json"
FORMAT = "hlsflow-manifest/1"
MISSING, STALE, CURRENT, UNFINISHED, CHANGED = "missing", "stale", "current", "unfinished", "changed"
# Written by convert but not part of the HLS project: hls4ml's chatter may name temporary paths.
NOT_IN_TREE = ("hlsflow_convert.log",)
RUNS_KEPT = 200
# What writing into the output directory can meet: said in one sentence naming that directory.
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def digest(value) -> str:
    """sha256 of a JSON-able value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------ what a stage is made from

def model_hashes(cfg) -> dict:
    """{file name: sha256} of the model's files. Names, not paths: the same model in another
    folder is the same input."""
    return {f.name: sha256(f, cache=True) for f in model_files(cfg.keras_model)}


def design_inputs(cfg) -> dict:
    """What the HLS project is a function of: the model's bytes, the hls4ml settings (but not where
    they are written), and the versions of the code that writes it."""
    settings = cfg.hls4ml_kwargs()
    settings.pop("output_dir")
    # The files' hashes alone, in order (model, then the weights of a JSON model): the same model
    # under another name is the same design.
    return {"model": list(model_hashes(cfg).values()), "hls4ml_settings": settings, "hls4ml": package_version("hls4ml"),
            "hlsflow": __version__}


def lib_stamp(cfg) -> str:
    """hls4ml's 8-character stamp, derived from the design instead of drawn at random: the same
    design gets the same project, and each design its own emulation library name."""
    return digest(design_inputs(cfg))[:8]


def effective_config(cfg) -> dict:
    """The configuration as the flow applied it, after flags."""
    return {"ProjectName": cfg.project_name, "Part": cfg.part, "Backend": cfg.backend, "IOType": cfg.io_type,
            "ClockPeriod": cfg.clock_period, "HLSConfig": cfg.hls_config, "Flow": cfg.flow}


def design_sources(cfg) -> dict:
    """Where the model and config came from, with their hashes, for the manifest's inputs."""
    effective = effective_config(cfg)
    return {"model": {"path": str(cfg.keras_model), "sha256": model_hashes(cfg)},
            "config": {"path": str(cfg.source) if cfg.source else None,
                       "sha256": sha256(cfg.source) if cfg.source else None,
                       "effective": effective, "effective_sha256": digest(effective)}}


def _is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IXUSR)


def hash_files(root: Path, rels) -> dict:
    """{relative path: sha256} for files under root; executables are marked with a leading "x:"
    so that a lost executable bit counts as a change too."""
    root = Path(root)
    return {rel: ("x:" if _is_executable(root / rel) else "") + sha256(root / rel, cache=True)
            for rel in sorted(rels)}


def tree_hash(files: dict) -> str:
    """One hash for a project tree, from each file's relative path, executable bit and content."""
    return digest({rel: value for rel, value in files.items() if rel not in NOT_IN_TREE})


def all_files(root: Path) -> list:
    """Relative paths of every file under root, the manifest (and its temporary copies) and the
    staging mark aside."""
    root = Path(root)
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(root).as_posix()
            if rel not in (MANIFEST, STAGING_MARK) and not (rel.startswith(f".{MANIFEST}.") and rel.endswith(".tmp")):
                found.append(rel)
    return sorted(found)


def snapshot(root: Path) -> dict:
    """{relative path: (size, mtime, inode)}: what a tool changed is what differs afterwards."""
    root = Path(root)
    result = {}
    for rel in all_files(root):
        st = (root / rel).stat()
        result[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return result


def changed_since(root: Path, before: dict) -> list:
    """Files under root that are new or rewritten since `snapshot` returned `before`."""
    after = snapshot(root)
    return [rel for rel, sig in after.items() if before.get(rel) != sig]


# ------------------------------------------------------------------ the environment

@functools.cache
def environment() -> dict:
    """The image and the versions a stage runs with (computed once per process). The image's own
    id is known only to whoever started the container: the launcher passes it in."""
    labels = os.environ.get("HLSFLOW_IMAGE_LABELS")
    try:
        labels = json.loads(labels) if labels else None
    except ValueError:
        labels = None
    return {
        "image": {
            "id": os.environ.get("HLSFLOW_IMAGE_ID"),
            "revision": os.environ.get("HLSFLOW_REVISION"),
            "labels": labels,
        },
        "versions": {
            "Python": platform.python_version(),
            "TensorFlow": package_version("tensorflow-cpu", "tensorflow"),
            "numpy": package_version("numpy"),
            "hls4ml": package_version("hls4ml"),
            "g++": first_line(["g++", "--version"]),
        },
    }


_command = None


def remember_command(text: str) -> None:
    global _command
    _command = text


def command_line() -> str:
    """The command as the user typed it (cli/program.py remembers it; the launcher passes the host's into
    the container)."""
    return _command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


# ------------------------------------------------------------------ the manifest itself

def manifest_problem(data):
    """Why parsed manifest.json content is not a manifest this hlsflow reads, or None. Checked
    against manifest.schema.json (jsonschema), so that a field of the wrong type is named here
    instead of failing deep inside a stage."""
    from ..schema import jsonschema

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return f"it is not an hlsflow manifest (no \"format\": \"{FORMAT}\")"
    schema = json.loads(Path(__file__).with_name("manifest.schema.json").read_text())
    module = jsonschema()
    error = module.exceptions.best_match(module.Draft202012Validator(schema).iter_errors(data))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"{where}: {error.message[:120]}"


def damaged(out_dir, why: str) -> FlowError:
    return FlowError(f"{Path(out_dir) / MANIFEST} is damaged ({why}): hlsflow will neither trust nor replace "
                     f"{out_dir}; move that folder aside (or delete it if nothing in it is needed) and run again.")


def has_manifest(out_dir) -> bool:
    """Whether out_dir holds a manifest.json that says it is hlsflow's (damaged or not): a web
    app's manifest.json is no concern of ours."""
    data = read_json(Path(out_dir) / MANIFEST)
    return isinstance(data, dict) and data.get("format") == FORMAT


class Manifest:
    """manifest.json of one output directory, read when made and written by save(). A file that
    says it is an hlsflow manifest but does not fit the schema is FlowError, never guessed at."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        path = self.out_dir / MANIFEST
        data = read_json(path)
        self.exists = isinstance(data, dict) and data.get("format") == FORMAT
        if self.exists or (path.is_file() and data is None):
            why = manifest_problem(data) if data is not None else "it is not readable JSON"
            if why:
                raise damaged(self.out_dir, why)
        self.data = data if self.exists else {"format": FORMAT}
        self.data.setdefault("stages", {})
        self.data.setdefault("runs", [])
        self.data.setdefault("environments", {})

    @property
    def stages(self) -> dict:
        return self.data["stages"]

    def save(self, to=None) -> None:
        records = self.stages.values()
        self.data["hlsflow"] = __version__
        self.data["stand_in"] = any(r.get("stand_in") for r in records if r.get("status") == "ok")
        synth = self.stages.get("synth")
        if synth and synth.get("status") == "ok" and "versions" in self.data:
            self.data["versions"]["Vivado HLS"] = synth.get("vivado_version")
        convert = self.stages.get("convert")
        self.data["tree_hash"] = convert.get("tree_hash") if convert and convert.get("status") == "ok" else None
        self.data["runs"] = self.data["runs"][-RUNS_KEPT:]
        write_json(Path(to or self.out_dir) / MANIFEST, self.data)

    def add_run(self, stage: str, started: str, seconds: float, status: str, exit_status, reused: bool,
                run_id=None) -> None:
        run = {"stage": stage, "command": command_line(), "started": started, "seconds": round(seconds, 3),
               "status": status, "exit_status": exit_status, "reused": reused}
        self.data["runs"].append(run | ({"id": run_id} if run_id else {}))

    def note_environment(self) -> str:
        """Record the current environment; returns the id stage records refer to."""
        env = environment()
        env_id = digest(env)[:16]
        self.data["environments"][env_id] = env
        # The SBOM's hash identifies the image's content even when its id is unknown (run directly).
        path = sbom.sbom_path()
        self.data["image"] = {**env["image"], "sbom_sha256": sha256(path, cache=True) if path else None,
                              "packages": sbom.image_packages()}
        self.data["versions"] = env["versions"]
        return env_id

    def mark_stale(self, names, why: str) -> None:
        for name in names:
            record = self.stages.get(name)
            if record and record.get("status") == "ok":
                record["status"] = "stale"
                record["stale_because"] = why


# ------------------------------------------------------------------ whose folder it is

# Unfinished runs of these statuses may have left files they never recorded as outputs: a run that
# failed or was stopped records them exactly ("left"); one killed outright leaves only what it said
# at its start it may write ("may_leave": exact paths, a folder ending in "/").
UNFINISHED_STATUSES = ("running", "failed", "interrupted")
CACHE_DIR = steps.CACHE_DIR
# Written first into convert's staging folder (and into a replaced project before it is deleted),
# so that a run killed half-way leaves folders the next run can prove are hlsflow's to remove.
STAGING_MARK = ".hlsflow-staging"


def _entries(root: Path):
    """Relative paths of every file and symbolic link under root (links are not followed)."""
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in sorted(files) + sorted(d for d in dirs if (base / d).is_symlink()):
            yield (base / name).relative_to(root).as_posix()


def _atomic_temp_of(rel: str):
    """The file a temporary copy of files.write_atomically (".NAME.PID.tmp") stands for, or None."""
    folder, _, name = rel.rpartition("/")
    match = re.fullmatch(r"\.(.+)\.\d+\.tmp", name)
    return None if match is None else (f"{folder}/" if folder else "") + match.group(1)


def accounted_files(records) -> tuple:
    """(files, folders): what these manifest records name as hlsflow's: outputs and files runs
    left, exactly, and the folders an unfinished run said it may write into."""
    files, folders = {MANIFEST}, set()
    for record in records:
        files.update(record.get("outputs") or {})
        files.update(record.get("left") or [])
        if record.get("status") in UNFINISHED_STATUSES:
            for entry in record.get("may_leave") or []:
                (folders if entry.endswith("/") else files).add(entry)
    return files, folders


def is_accounted(rel: str, files: set, folders: set) -> bool:
    original = _atomic_temp_of(rel)
    return any(name in files or any(name.startswith(folder) for folder in folders)
               for name in filter(None, (rel, original)))


def foreign_files(out_dir) -> list:
    """Files in out_dir hlsflow cannot prove it wrote: all of them when it holds no hlsflow
    manifest; else those its records do not name (never judged by a file's name alone: a user's
    `notes_prj/thesis.tex` or `results.o` is theirs). FlowError when the manifest is damaged."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    entries = list(_entries(out_dir))
    if not entries:
        return []
    manifest = Manifest(out_dir)
    if not manifest.exists:  # a manifest.json of something else (a web app's) is named first
        return sorted(entries, key=lambda rel: rel != MANIFEST)
    files, folders = accounted_files(manifest.stages.values())
    return [rel for rel in entries if not is_accounted(rel, files, folders)]


def check_output_path(out_dir, inputs=(), cwd=None, what="output directory") -> Path:
    """FlowError unless out_dir may be written by hlsflow at all: not the folder the user stands
    in, their home or /, not a symbolic link (hlsflow would write where it points), not a file,
    and holding none of the run's inputs (config, model, samples). Light: the host runs it too."""
    out = Path(os.path.abspath(out_dir))
    cwd = Path(os.path.abspath(cwd or os.getcwd()))
    flag = "--out (or OutputDir in the config)"
    # hls4ml's build_lib.sh puts the project's path into a C string (WEIGHTS_DIR) that g++ compiles
    # into the library csim loads: a quote, a backslash or a control character there would be code.
    bad = next((c for c in str(out) if c in '"\\' or not c.isprintable()), None)
    if bad is not None:
        raise FlowError(f"The {what} {str(out)!r} has the character {bad!r}, which hls4ml's build scripts cannot "
                        f"carry: give {flag} a path without quotes, backslashes or control characters.")
    special = {cwd: "the folder you are in", Path(os.path.expanduser("~")).absolute(): "your home folder",
               Path(out.anchor): "the root folder"}
    for place, name in special.items():
        if out == place:
            raise FlowError(f"The {what} {out} is {name}, which hlsflow never uses as an output: give {flag} a "
                            "folder of its own, e.g. build/myproject.")
    if out.is_symlink():
        raise FlowError(f"The {what} {out} is a symbolic link (to {os.readlink(out)}): hlsflow writes only into "
                        f"real folders; give {flag} the folder itself or another path.")
    if out.exists() and not out.is_dir():
        raise FlowError(f"The {what} {out} is a file, not a folder: give {flag} a folder path.")
    real = out.resolve()
    for item in inputs:
        if item and Path(os.path.abspath(item)).resolve().is_relative_to(real):
            raise FlowError(f"The {what} {out} holds {item}, an input of this run, and an output folder is "
                            f"replaced whole: give {flag} a folder of its own, e.g. build/myproject.")
    return out


def run_inputs(cfg, samples=None) -> list:
    """The user's files a run reads (config, model, samples): never inside its output directory,
    which may be replaced whole."""
    return [cfg.source, *model_files(cfg.keras_model), cfg.samples_path(), samples]


def check_owned(out_dir) -> None:
    """FlowError naming the first file hlsflow did not write, when out_dir holds one."""
    foreign = foreign_files(out_dir)
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise FlowError(f"{out_dir} holds {foreign[0]}{more}, which hlsflow did not write, and hlsflow writes only "
                        "into an empty folder or one of its own outputs: choose another --out, or move that file out "
                        "of the folder.")


def remove_dead_staging(out_dir) -> None:
    """Staging folders of convert runs that were killed: with the lock held, no other run owns
    them, and the mark inside proves hlsflow made them."""
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return
    for pattern in (f".{out_dir.name}.partial-*", f".{out_dir.name}.old-*"):
        for folder in out_dir.parent.glob(pattern):
            if folder.is_dir() and not folder.is_symlink() and (folder / STAGING_MARK).is_file():
                shutil.rmtree(folder, ignore_errors=True)


def stage_record(out_dir, name):
    """The manifest's record of a stage, or None."""
    return Manifest(out_dir).stages.get(name)


def changed_outputs(out_dir, record: dict) -> list:
    """(relative path, "missing" | "changed") for each recorded output that is not as recorded."""
    out_dir = Path(out_dir)
    problems = []
    for rel, recorded in record.get("outputs", {}).items():
        path = out_dir / rel
        if not path.is_file():
            problems.append((rel, "missing"))
        elif hash_files(out_dir, [rel])[rel] != recorded:
            problems.append((rel, "changed"))
    return problems


@dataclasses.dataclass
class Outcome:
    """What a stage's work made: its files (relative to the folder it wrote into), its result for
    the manifest, fields of the record beside the result, the user's files it read (`sources`)."""
    outputs: list
    result: dict = None
    extra: dict = None
    sources: dict = None


class Stage:
    """One stage of one output directory: is it current, and recording a run of it. `run` is the
    one record/reuse/run/done sequence every stage goes through:

        stage = Stage(cfg.output_dir, "csim", {"project": tree, "samples": sha})
        record, reused = stage.run(lambda into: Outcome([...], result={...}))
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
        manifest.add_run(self.name, _now(), 0.0, "ok", 0, reused=True)
        manifest.save()
        return manifest.stages[self.name]

    @contextlib.contextmanager
    def running(self):
        """The block that does the stage's work. Its run is recorded from the start, so a run that
        is killed stays recorded as "running". A stage that writes in place is marked unfinished
        until done(), so the next run redoes it; convert, which writes a staged copy, leaves the
        previous project's record as it is. A FlowError or Ctrl-C is recorded with its exit
        status, then goes on up."""
        self._started, self._t0 = _now(), time.monotonic()
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
        record = manifest.stages.setdefault(self.name, {})
        # Its earlier runs' files stay its own, if this run does not write them again (a log of
        # an earlier run with other flags).
        files, folders = accounted_files([record])
        self._left = [rel for rel in self._before if is_accounted(rel, files, folders) and rel != MANIFEST]
        record.update(status="running", started=self._started, may_leave=self.leaves, left=self._left)

    def _left_now(self, outputs=()) -> list:
        """The files this stage's runs left in the folder and do not record as outputs."""
        if not self.in_place or self._before is None:
            return []
        made = changed_since(self.out_dir, self._before)
        return sorted(rel for rel in {*self._left, *made}
                      if rel not in outputs and (self.out_dir / rel).is_file() and _atomic_temp_of(rel) is None)

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
            record.update(status=status, exit_status=code, left=self._left_now(record.get("outputs") or {}))
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
                  "finished": _now(), "seconds": round(time.monotonic() - self._t0, 3), "exit_status": 0,
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

def project_stage(cfg) -> Stage:
    # Staged and swapped into place: a failed or killed convert leaves the previous project whole.
    return Stage(cfg.output_dir, steps.CONVERT, design_inputs(cfg), in_place=False)


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


def csynth_xml_path(out_dir, project_name) -> Path:
    """Where Vivado HLS writes its C synthesis report in an hls4ml project."""
    return Path(out_dir) / f"{project_name}_prj" / "solution1" / "syn" / "report" / f"{project_name}_csynth.xml"


def emulation_library(out_dir, project_name: str, stamp: str) -> Path:
    """The library hls4ml's build_lib.sh builds, named by the project's stamp."""
    return Path(out_dir) / "firmware" / f"{project_name}-{stamp}.so"


def cannot_write(out_dir, exc: OSError) -> FlowError:
    return FlowError(f"Cannot write the output directory {out_dir} ({exc.strerror}): choose a writable --out.")


def check_writable(out: Path) -> None:
    """FlowError unless a folder can be made beside out (where staging goes) and out holds only
    hlsflow's files: it is about to be replaced whole."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".hlsflow-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise cannot_write(out, exc) from exc
    check_owned(out)


@contextlib.contextmanager
def staging(out: Path):
    """A fresh folder beside out, marked as hlsflow's, that replaces out when the block ends
    without error; removed when it does not. The old out is moved aside first and removed last,
    so a run killed at any point leaves a whole project and marked folders the next run removes."""
    # A name of its own: in a container every run may have the same pid.
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        folder.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide the project from the user's group
        (folder / STAGING_MARK).touch()
        yield folder
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        (folder / STAGING_MARK).unlink()
        if out.exists():
            os.replace(out, old)
            (old / STAGING_MARK).touch()  # a run killed now leaves it for the next one to remove
        os.replace(folder, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if (folder / STAGING_MARK).is_file():  # still ours: not swapped into place
            shutil.rmtree(folder, ignore_errors=True)


_held: set = set()


@contextlib.contextmanager
def locked(out_dir):
    """One hlsflow run at a time on an output directory, also across containers (a lock file
    beside it: the directory itself is replaced by convert). The lock file is removed at the end."""
    out_dir = Path(out_dir)
    key = str(out_dir)
    if key in _held:
        yield
        return
    lock_path = out_dir.with_name(f".{out_dir.name}.lock")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        handle = _acquire(lock_path, out_dir)
    except OSError as exc:
        raise cannot_write(out_dir, exc) from exc
    with handle:
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)
            # Unlinked while still held: a run that opened the old file sees it gone and retries.
            with contextlib.suppress(OSError):
                lock_path.unlink()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(lock_path: Path, out_dir: Path):
    while True:
        handle = open(lock_path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise FlowError(f"Another hlsflow run is working on {out_dir}: wait for it to finish, or stop it.") \
                from None
        try:
            if os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()  # the run before removed this file as we opened it: lock the new one


@contextlib.contextmanager
def claimed(out_dir, inputs=()):
    """The output directory, checked (check_output_path), locked, cleared of dead runs' staging
    folders and proved hlsflow's (check_owned): what every stage that writes into it holds."""
    check_output_path(out_dir, inputs)
    with locked(out_dir):
        remove_dead_staging(out_dir)
        check_owned(out_dir)
        yield
