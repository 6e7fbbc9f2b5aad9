"""Whose folder it is: which files of an output folder hlsflow can prove it wrote (by its
records, never by a file's name), what a path may be before hlsflow writes into it, and the
staging folder a whole project is written into before it replaces the old one."""

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from .. import files, steps
from ..errors import FlowError
from ..inputs import hash_files
from ..steps import MANIFEST, STAGING_MARK
from . import signing
from .manifest import Manifest

# Unfinished runs of these statuses may have left files they never recorded as outputs: a run that
# failed or was stopped records them exactly ("left"); one killed outright leaves only what it said
# at its start it may write ("may_leave": exact paths, a folder ending in "/").
UNFINISHED_STATUSES = ("running", "failed", "interrupted")
# STAGING_MARK (steps.py) is written first into convert's staging folder (and into a replaced
# project before it is deleted), so that a run killed half-way leaves folders the next run can
# prove are hlsflow's to remove.


def all_files(root: Path) -> list:
    """Relative paths of every file under root, the folder's own files (steps.bookkeeping) aside."""
    return files.all_files(root, steps.bookkeeping)


def snapshot(root: Path) -> dict:
    return files.snapshot(root, steps.bookkeeping)


def changed_since(root: Path, before: dict) -> list:
    return files.changed_since(root, before, steps.bookkeeping)


def _entries(root: Path):
    """Relative paths of every file and symbolic link under root (links are not followed)."""
    for folder, dirs, names in os.walk(root):
        base = Path(folder)
        for name in sorted(names) + sorted(d for d in dirs if (base / d).is_symlink()):
            yield (base / name).relative_to(root).as_posix()


def atomic_temp_of(rel: str):
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
    original = atomic_temp_of(rel)
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
    # Records this user's key signed vouch for every file they name. Others (a handed folder, or a
    # run in a container with a key of its own) vouch only for outputs still byte for byte as they
    # recorded them: a manifest.json naming the user's thesis.tex cannot make it hlsflow's to delete.
    records = list(manifest.stages.values())
    files, folders = accounted_files(r for r in records if signing.holds(r))
    claimed = {rel: h for r in records if not signing.holds(r) for rel, h in (r.get("outputs") or {}).items()}
    return [rel for rel in entries if not is_accounted(rel, files, folders) and not _as_recorded(out_dir, rel, claimed)]


def _as_recorded(out_dir: Path, rel: str, claimed: dict) -> bool:
    path = out_dir / rel
    return (rel in claimed and path.is_file() and not path.is_symlink()
            and hash_files(out_dir, [rel])[rel] == claimed[rel])


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


def check_owned(out_dir) -> None:
    """FlowError naming the first file hlsflow did not write, when out_dir holds one."""
    foreign = foreign_files(out_dir)
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        manifest = Manifest(out_dir)
        if manifest.exists and not all(signing.holds(r) for r in manifest.stages.values()):
            raise FlowError(f"{out_dir} holds {foreign[0]}{more}, which no record signed with your key names (its "
                            "manifest.json was not all written by you: a handed folder, or a container without your "
                            "key), so hlsflow will not replace it: choose another --out, or remove that folder "
                            "yourself if it is yours.")
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
            if folder.is_dir() and not folder.is_symlink() and _marked(folder):
                shutil.rmtree(folder, ignore_errors=True)


def _mark(folder: Path) -> None:
    """The staging mark: the folder's name signed with this user's key, so that a folder someone
    else made (in an archive unpacked beside the output, say) never passes for one to remove."""
    (folder / STAGING_MARK).write_text(signing.vouch(f"staging:{folder.name}"))


def _marked(folder: Path) -> bool:
    mark = folder / STAGING_MARK
    try:
        return mark.is_file() and not mark.is_symlink() and signing.vouches(f"staging:{folder.name}",
                                                                           mark.read_text()[:200])
    except (OSError, UnicodeDecodeError):
        return False


def cannot_write(out_dir, exc: OSError) -> FlowError:
    return FlowError(f"Cannot write the output directory {out_dir} ({exc.strerror}): choose a writable --out.")


def check_writable(out: Path) -> None:
    """FlowError unless a folder can be made beside out (where staging goes) and out holds only
    hlsflow's files: it is about to be replaced whole."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".hlsflow-write-test-"):
            pass  # a name of its own, made exclusively: never one of the user's files
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
        _mark(folder)
        yield folder
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        (folder / STAGING_MARK).unlink()
        if out.exists():
            os.replace(out, old)
            _mark(old)  # a run killed now leaves it for the next one to remove
        os.replace(folder, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if _marked(folder):  # still ours: not swapped into place
            shutil.rmtree(folder, ignore_errors=True)
