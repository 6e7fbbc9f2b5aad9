"""`hlsflow verify OUT`: recompute what manifest.json records and say whether the directory still
matches it. Pure file hashing: it runs on the host as well as in the image, and needs no engine."""

from pathlib import Path

from .. import __version__, console, steps
from ..errors import FlowError
from ..files import sha256
from . import signing
from .folder import all_files
from ..inputs import tree_hash
from .manifest import MANIFEST, Manifest, changed_outputs


def _manifest(out: Path) -> Manifest:
    if not out.is_dir():
        raise FlowError(f"{out} is not a directory: give the output directory of a flow run.")
    manifest = Manifest(out)
    if not manifest.exists:
        if (out / MANIFEST).exists():
            raise FlowError(f"{out / MANIFEST} is not an hlsflow manifest, so {out} is not an output folder "
                            "of hlsflow: give the folder a flow run wrote (its --out).")
        raise FlowError(f"{out} has no {MANIFEST}, so it is not an output folder of hlsflow (hlsflow "
                        f"{__version__} writes one with every stage): give the folder a flow run wrote (its --out).")
    return manifest


def _inputs_changed(manifest: Manifest) -> tuple:
    """(problems, notes) for the user's files the manifest names: changed ones are problems (the
    outputs are stale), ones not reachable from here are only noted."""
    problems, notes = [], []
    inputs = manifest.data.get("inputs", {})
    model = inputs.get("model") or {}
    checks = [(Path(model["path"]).with_name(name), digest, "model")
              for name, digest in (model.get("sha256") or {}).items() if model.get("path")]
    for kind in ("config", "samples"):
        entry = inputs.get(kind) or {}
        if entry.get("path") and entry.get("sha256"):
            checks.append((Path(entry["path"]), entry["sha256"], kind))
    for path, digest, kind in checks:
        if not path.is_file():
            notes.append(f"the {kind} file {path} is not here, so it was not checked")
        elif sha256(path) != digest:
            problems.append(f"input changed: the {kind} file {path} is not the one the outputs were made from")
    return problems, notes


def verify(out_dir) -> dict:
    out = Path(out_dir).absolute()
    manifest = _manifest(out)
    problems, notes, tracked, checked = [], [], set(), 0
    for name, record in manifest.stages.items():
        outputs = record.get("outputs") or {}
        tracked.update(outputs)
        status = record.get("status")
        if status != "ok":
            why = record.get("stale_because") if status == "stale" else "its last run did not finish"
            notes.append(f"{name} is {status if status == 'stale' else 'not complete'} ({why}): its files were "
                         "not checked")
            continue
        checked += len(outputs)
        if name not in {step.name for step in steps.REGISTRY}:
            notes.append(f"{name} is a record no step of this hlsflow declares (a newer hlsflow wrote it?): its "
                         "files were checked as recorded")
        for rel, what in changed_outputs(out, record):
            problems.append(f"{what}: {rel} (made by {name})")
        if name == steps.CONVERT.name and record.get("tree_hash") != tree_hash(outputs):
            problems.append("the manifest's project tree hash is not the hash of the files it lists")
    untracked = [rel for rel in all_files(out) if rel not in tracked]
    problems += [f"added: {rel} (made by no recorded stage)" for rel in untracked]
    input_problems, input_notes = _inputs_changed(manifest)
    problems += input_problems
    notes += input_notes

    for note in notes:
        console.say(f"  note: {note}")
    tree = manifest.data.get("tree_hash")
    if problems:
        for line in problems:
            console.detail(f"  {line}")
        raise FlowError(f"{out} does not match its manifest: {len(problems)} difference(s), listed above; run the "
                        "flow again to remake the outputs, or find out what changed them.", exit_code=1)
    ok_stages = [n for n, r in manifest.stages.items() if r.get("status") == "ok"]
    console.say(f"{out} matches its manifest: {checked} files of {len(ok_stages)} stage(s) ({', '.join(ok_stages)}) "
                f"intact; project tree sha256 {tree}.")
    # The hashes prove integrity only: whoever rewrites a file can rewrite its hash too.
    foreign = [n for n in ok_stages if not signing.holds(manifest.stages[n])]
    if not foreign:
        console.say(f"  written by you: every record is signed with your key ({signing.key_path()}).")
    else:
        console.say(f"  NOT signed with your key: {', '.join(foreign)}. The files match the manifest, but that does "
                    "not say who wrote them (anyone can rewrite a file and its hash): another user or machine recorded "
                    "them, or an older hlsflow that did not sign its records, or someone changed them. hlsflow makes those again before it "
                    "uses them.")
    return {"files": checked, "stages": ok_stages, "tree_hash": tree, "signed_by_you": not foreign,
            "not_signed": foreign}
