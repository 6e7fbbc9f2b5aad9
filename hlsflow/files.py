"""Writing results so that readers see the old file or the whole new one, never half of one; and
hashing files. And where the checkout is: the one place that says so."""

import hashlib
import json
import os
from pathlib import Path

# The checkout (or, installed, the folder holding the package): where project/, models/, docker/
# and tests/ are for the tasks that work on hlsflow itself.
REPO_ROOT = Path(__file__).resolve().parent.parent


def write_atomically(path, data) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, value) -> None:
    write_atomically(path, json.dumps(value, indent=2) + "\n")


def read_json(path):
    """The parsed file, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


_hash_cache: dict = {}


def sha256(path, cache: bool = False) -> str:
    """sha256 of a file, streamed; with cache=True remembered per (path, size, mtime) so that
    hashing the same unchanged file again within one process costs nothing."""
    path = Path(path)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if cache and key in _hash_cache:
        return _hash_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def all_files(root, skip=lambda rel: False) -> list:
    """Relative paths of every file under root (symbolic links aside), sorted, but those `skip` names."""
    root = Path(root)
    return sorted(rel for rel in (path.relative_to(root).as_posix() for path in root.rglob("*")
                                  if path.is_file() and not path.is_symlink()) if not skip(rel))


def snapshot(root, skip=lambda rel: False) -> dict:
    """{relative path: (size, mtime, inode)}: what a tool changed is what differs afterwards."""
    root = Path(root)
    result = {}
    for rel in all_files(root, skip):
        st = (root / rel).stat()
        result[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return result


def changed_since(root, before: dict, skip=lambda rel: False) -> list:
    """Files under root that are new or rewritten since `snapshot` returned `before`."""
    return [rel for rel, sig in snapshot(root, skip).items() if before.get(rel) != sig]
