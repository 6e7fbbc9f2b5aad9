"""This user's record of the C++ trees g++ accepted (emulator/cpp.py's syntax check): a tree is a
function of the design alone (stages/convert.py), so the same design in another folder, or
converted again, is not checked twice. It lives in the user's own cache, never in an output
folder, which someone may hand over; the launcher mounts it into each flow container (light
imports only: the host command reads where it is). It holds accepted trees only: the worst a
forged entry could do is skip one syntax check, which Vivado's own compile would then make.
"""

import hashlib
import json
import os
import zlib
from pathlib import Path

from ..versions import gpp

ENV = "HLSFLOW_CPP_ACCEPTED"


def folder() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hlsflow" / "cpp-accepted"


def made_folder():
    """The folder, created; None where it cannot be (each container's check then just runs)."""
    where = folder()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return where


def key(tree_hash: str, std: str) -> str:
    return hashlib.sha256(json.dumps([tree_hash, gpp(), std]).encode()).hexdigest()


def before(entry: str):
    """g++'s output when it accepted this tree before, else None (an unreadable entry counts as none)."""
    try:
        return zlib.decompress((folder() / entry).read_bytes()).decode()
    except (OSError, zlib.error, UnicodeDecodeError):
        return None


def remember(entry: str, output: str) -> None:
    where = folder()
    try:
        where.mkdir(parents=True, exist_ok=True)
        tmp = where / f".{entry}.{os.getpid()}.tmp"
        tmp.write_bytes(zlib.compress(output.encode()))
        os.replace(tmp, where / entry)
    except OSError:  # a read-only home: the next run checks again
        pass
