"""Who recorded a stage: each record in manifest.json carries an HMAC-SHA256 made with a key only
this user holds (~/.config/hlsflow/signing.key, created on first use, mode 0600).

A manifest proves a folder's integrity, never its authorship: anyone can rewrite the files and
their hashes. hlsflow loads and runs what an output folder holds (the pickled fast engine, the
emulation library, the project's C++ and Tcl), so it reuses a record only when the signature
holds for this user's key: a folder someone handed over, or rewrote, is made again from the
model and config, which are data. The launcher mounts the key read-only into each container
(HLSFLOW_SIGNING_KEY names it there); a sweep hands it to its workers with each point.
"""

import functools
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

ENV = "HLSFLOW_SIGNING_KEY"
FIELD = "signature"
_given = None  # a key handed to this process (a sweep's worker), instead of the file


def key_path() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "hlsflow" / "signing.key"


def ensure_key() -> Path:
    """The key file, created (32 random bytes, readable by this user alone) when missing; OSError
    when it can be neither read nor made."""
    path = key_path()
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return path


@functools.cache
def _file_key() -> bytes:
    try:
        data = ensure_key().read_bytes()
    except OSError as exc:
        from .. import console

        console.warn(f"No signing key could be read or made at {key_path()} ({exc.strerror}): this run's records "
                     f"are signed with a key of its own, so the next run does them again; set {ENV} to a "
                     "writable file's path to keep one.")
        return secrets.token_bytes(32)
    if len(data) < 16:
        from ..errors import FlowError

        raise FlowError(f"The signing key {key_path()} is damaged (shorter than 16 bytes): delete it, and hlsflow "
                        "makes a new one (what it recorded before is then done again once).")
    return data


class Secret:
    """The key as handed to a sweep's worker: Dask may print a task's arguments in its logs."""

    def __init__(self, value: bytes):
        self.value = value

    def __repr__(self) -> str:
        return "<hlsflow signing key>"


def current_key() -> bytes:
    return _given or _file_key()


def use(key: bytes) -> None:
    """Sign and check with this key in this process (a worker running a sweep's point)."""
    global _given
    _given = key


def _message(record: dict) -> bytes:
    body = {k: v for k, v in record.items() if k != FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(record: dict) -> dict:
    record[FIELD] = hmac.new(current_key(), _message(record), hashlib.sha256).hexdigest()
    return record


def holds(record: dict) -> bool:
    """Whether this user's key made the record's signature (over every field it has now)."""
    given = record.get(FIELD)
    if not isinstance(given, str):
        return False
    expected = hmac.new(current_key(), _message(record), hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.lower(), expected)


def vouch(text: str) -> str:
    """A mark only this user's key makes for `text` (a staging folder's or a lock file's name)."""
    return hmac.new(current_key(), f"hlsflow-mark\0{text}".encode(), hashlib.sha256).hexdigest()


def vouches(text: str, mark: str) -> bool:
    return hmac.compare_digest(mark.strip().lower().encode(), vouch(text).encode())
