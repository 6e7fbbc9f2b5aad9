"""`manifest.json`, the one record beside an output folder's results: its format (checked against
manifest.schema.json), reading and writing it, and the runs and environments it keeps.

For every step it says what the step was made from (the hashes of its inputs), the sha256 of
every file it wrote, how each run of it ended (command line, start, duration, exit status,
reused or not) and in which environment (image, versions). `hlsflow verify` (verify.py)
recomputes what it records.
"""

import datetime
import json
from pathlib import Path

from .. import __version__
from ..errors import FlowError
from ..files import read_json, sha256, write_json
from ..image import sbom
from ..inputs import command_line, digest, environment, hash_files
from ..steps import MANIFEST  # named beside the folder's other own files

FORMAT = "hlsflow-manifest/1"
RUNS_KEPT = 200


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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
        from . import signing

        for name in names:
            record = self.stages.get(name)
            if record and record.get("status") == "ok":
                held = signing.holds(record)
                record["status"] = "stale"
                record["stale_because"] = why
                if held:  # still vouches for its files; a record that was not the user's stays unsigned
                    signing.sign(record)


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
