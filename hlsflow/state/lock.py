"""One hlsflow run at a time on an output folder, and the claim every run that writes into one
holds: the path checked, the folder locked, dead runs' staging removed, the folder proved
hlsflow's."""

import contextlib
import fcntl
import os
from pathlib import Path

from ..errors import FlowError
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
