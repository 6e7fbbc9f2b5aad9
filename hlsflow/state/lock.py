"""One hlsflow run at a time on an output folder, and the claim every run that writes into one
holds: the path checked, the folder locked, dead runs' staging removed, the folder proved
hlsflow's."""

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

from ..errors import FlowError
from . import signing
from .folder import cannot_write, check_output_path, check_owned, remove_dead_staging


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


def _mark(lock_path: Path) -> str:
    return signing.vouch(f"lock:{lock_path.name}")


def _create(lock_path: Path) -> None:
    """The lock file, made whole with this user's mark in it (linked into place: never half-written,
    never over a file that is there), so that the file removed at the end is provably hlsflow's."""
    if lock_path.exists():
        return
    with tempfile.NamedTemporaryFile("w", dir=lock_path.parent, prefix=f"{lock_path.name}.") as made:
        made.write(_mark(lock_path))
        made.flush()
        try:
            os.link(made.name, lock_path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: made exclusively, then written
            with contextlib.suppress(FileExistsError), open(lock_path, "x") as f:
                f.write(_mark(lock_path))


def _acquire(lock_path: Path, out_dir: Path):
    while True:
        _create(lock_path)
        handle = open(lock_path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise FlowError(f"Another hlsflow run is working on {out_dir}: wait for it to finish, or stop it.") \
                from None
        try:
            if os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                with open(lock_path, errors="replace") as f:
                    ours = signing.vouches(f"lock:{lock_path.name}", f.read(200))
                if ours:
                    return handle
                handle.close()
                raise FlowError(f"{lock_path} is not a lock file of your hlsflow runs (hlsflow keeps one of that name "
                                f"beside {out_dir.name} while it works, and removes it after): if it is yours, move "
                                "it; if an earlier hlsflow run left it and none is running now, delete it.")
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
