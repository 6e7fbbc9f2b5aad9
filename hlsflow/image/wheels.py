"""The image's Python packages: the hash-checked locks (`invoke lock`) and the wheelhouse the host
downloads from them, so that nothing inside the image build needs the network."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path

from ..console import Progress, error, step
from ..errors import FlowError
from ..files import REPO_ROOT as ROOT
from ..files import sha256

DOCKER_DIR = ROOT / "docker"
BUILD_DIR = ROOT / "build"
# Where the lock's wheels are kept; HLSFLOW_WHEELHOUSE shares one between checkouts.
WHEELHOUSE = Path(os.environ.get("HLSFLOW_WHEELHOUSE") or BUILD_DIR / "wheelhouse")
# Every wheel any checkout of this user downloaded, for the next checkout (a fresh clone, a CI
# job) to link instead of asking pip again: 181 wheels, about 490 MB, 14-19 s of pip. Only ever
# added to: a wheel counts only where its sha256 is one a lock names. Deleting it is harmless.
SHARED = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hlsflow" / "wheels"
LOCK = DOCKER_DIR / "requirements.lock"
# The SBOM generator's own lock: its wheels go to a separate folder of the build context, so the
# image's venv layer never depends on them.
SBOM_LOCK = DOCKER_DIR / "sbom-requirements.lock"
# Tools the image build runs but never ships (uv, which installs the venv): their wheels go to a
# folder of their own too.
BUILD_LOCK = DOCKER_DIR / "build-requirements.lock"
# Packages installed with --no-deps after LOCK (docker/requirements-nodeps.in says why): each pin's
# wheel hash only, no resolution. Their wheels go into the image's wheelhouse with LOCK's.
NODEPS_LOCK = DOCKER_DIR / "requirements-nodeps.lock"
# The keras3 lane (docker/keras3/): its own three locks and its own wheelhouse, since it pins other
# versions of packages the reference also has (numpy 2), and each wheelhouse drops wheels no lock of
# its own names. uv's lock (BUILD_LOCK) is shared.
KERAS3_DIR = DOCKER_DIR / "keras3"
KERAS3_LOCKS = (KERAS3_DIR / "requirements.lock", KERAS3_DIR / "requirements-nodeps.lock",
                KERAS3_DIR / "sbom-requirements.lock")
KERAS3_WHEELHOUSE = Path(os.environ.get("HLSFLOW_WHEELHOUSE_KERAS3") or BUILD_DIR / "wheelhouse-keras3")
# The format of the lock files follows pip-compile's version.
PIP_TOOLS = "pip-tools==7.6.2"
# Glibc 2.36 (bookworm) runs every manylinux wheel up to 2_36; pip needs each tag spelled out.
PLATFORMS = [f"manylinux_2_{v}_x86_64" for v in range(36, 16, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def lock(lane: str = "reference") -> None:
    """Regenerate docker/requirements.lock, sbom-requirements.lock, build-requirements.lock and
    host-requirements.lock from their .in files with pip-compile, installed into build/lock-venv
    when missing, and requirements-nodeps.lock from its .in (hashes only, see _lock_nodeps).
    lane="keras3": docker/keras3/'s requirements, sbom-requirements and requirements-nodeps instead."""
    if sys.version_info[:2] != (3, 11):
        raise FlowError("`invoke lock` must run under Python 3.11, the image's Python, or the "
                        "lock would pin for another version: run it with a 3.11 interpreter.")
    venv = BUILD_DIR / "lock-venv"
    pip_compile = venv / "bin" / "pip-compile"
    if not pip_compile.exists():
        step(f"Installing {PIP_TOOLS} into {venv.relative_to(ROOT)}")
        _check_call([sys.executable, "-m", "venv", str(venv)], "creating build/lock-venv")
        _check_call([str(venv / "bin" / "pip"), "install", "--quiet", PIP_TOOLS],
                    f"installing {PIP_TOOLS}")
    folder, names = "docker", ("requirements", "sbom-requirements", "build-requirements", "host-requirements")
    if lane == "keras3":
        folder, names = "docker/keras3", ("requirements", "sbom-requirements")
    for name in names:
        step(f"Locking {folder}/{name}.in")
        # No index or find-links lines: the locks must not carry this machine's pip settings.
        _check_call([str(pip_compile), "--quiet", "--generate-hashes", "--strip-extras",
                     "--no-header", "--allow-unsafe", "--no-emit-index-url",
                     "--no-emit-find-links", "--output-file", f"{folder}/{name}.lock",
                     f"{folder}/{name}.in"], f"pip-compile of {folder}/{name}.in", cwd=ROOT)
    step(f"Locking {folder}/requirements-nodeps.in")
    _lock_nodeps(ROOT / folder / "requirements-nodeps.lock")


def _lock_nodeps(nodeps_lock: Path = NODEPS_LOCK) -> None:
    """requirements-nodeps.lock: each `name==version` of the .in with the hash of its wheel for the
    image's platform, downloaded without its dependencies (pip-compile would resolve them)."""
    source = nodeps_lock.with_suffix(".in").read_text().splitlines()
    pins = [line.split("#", 1)[0].strip() for line in source]
    lines = []
    with tempfile.TemporaryDirectory(dir=BUILD_DIR) as tmp:
        for pin in filter(None, pins):
            dest = Path(tmp) / pin
            _check_call([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                         "--only-binary=:all:", "--dest", str(dest), "--python-version", "3.11",
                         "--implementation", "cp", "--abi", "cp311",
                         *(f"--platform={p}" for p in PLATFORMS), pin], f"pip download {pin}")
            (whl,) = dest.glob("*.whl")
            lines.append(f"{pin} \\\n    --hash=sha256:{sha256(whl)}")
    nodeps_lock.write_text("# Written by `invoke lock` from requirements-nodeps.in: install with "
                           "--no-deps.\n" + "\n".join(lines) + "\n")


def download_wheels(locks=(LOCK, NODEPS_LOCK, SBOM_LOCK, BUILD_LOCK),
                    wheelhouse: Path = WHEELHOUSE) -> dict[Path, list[Path]]:
    """Each lock's wheels, in `wheelhouse` (build/wheelhouse): those already there are kept, the
    missing ones linked from SHARED or downloaded by the host's pip, every hash checked, stale ones
    (in no lock) removed."""
    per_lock = {lock: _lock_entries(lock) for lock in locks}
    wheelhouse.mkdir(parents=True, exist_ok=True)
    have = _scan_wheelhouse(per_lock, wheelhouse)
    missing = _missing(per_lock, have)
    if missing and _link_shared(per_lock, missing, wheelhouse):
        have = _scan_wheelhouse(per_lock, wheelhouse)
        missing = _missing(per_lock, have)
    if missing:
        _pip_download(sorted(missing.values()), wheelhouse)
        have = _scan_wheelhouse(per_lock, wheelhouse)
        left = sum(len(set(entries) - set(have[lock])) for lock, entries in per_lock.items())
        if left:
            names = " and ".join(str(lock.relative_to(ROOT)) for lock in locks)
            raise FlowError(f"pip left {left} wheels of {names} undownloaded: check that each "
                            "pinned version has a Linux x86_64 cp311 wheel, then run again.")
    _share(have, wheelhouse)
    return {lock: sorted(have[lock].values()) for lock in locks}


def _missing(per_lock, have) -> dict[str, str]:
    """name -> requirement line of each package a lock pins and the wheelhouse lacks. One line per
    package: the locks pin shared packages alike (sbom-requirements.in says why)."""
    return {name: line for lock, entries in per_lock.items()
            for name, (line, _) in entries.items() if name not in have[lock]}


def _lock_entries(lock: Path = LOCK) -> dict[str, tuple[str, set[str]]]:
    """name -> (its requirement line with hashes, its sha256 hashes); option lines dropped."""
    entries = {}
    for line in lock.read_text().replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match:
            hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
            entries[match.group(1).lower()] = (line, hashes)
    return entries


def lock_versions(lock: Path = LOCK) -> dict[str, str]:
    return {name: line.split("==", 1)[1].split()[0]
            for name, (line, _) in _lock_entries(lock).items()}


def _scan_wheelhouse(per_lock, wheelhouse: Path = WHEELHOUSE) -> dict[Path, dict[str, Path]]:
    """lock -> {name: its wheel in the wheelhouse} for the wheels matching one of its hashes."""
    wanted = {lock: {h: name for name, (_, hashes) in entries.items() for h in hashes}
              for lock, entries in per_lock.items()}
    have = {lock: {} for lock in per_lock}
    for whl in sorted(wheelhouse.glob("*.whl")):
        digest = sha256(whl, cache=True)
        hits = [lock for lock, names in wanted.items() if digest in names]
        for lock in hits:
            have[lock][wanted[lock][digest]] = whl
        if not hits:
            whl.unlink()  # from an older lock: it would only bloat the build context
    return have


def _link_shared(per_lock, missing: dict, wheelhouse: Path = WHEELHOUSE) -> int:
    """Links (or copies, across file systems) into the wheelhouse each wheel of SHARED whose sha256
    a lock names for a missing package; returns how many."""
    wanted = {h for entries in per_lock.values() for name, (_, hashes) in entries.items() if name in missing
              for h in hashes}
    names = {re.sub(r"[-_.]+", "-", name) for name in missing}
    linked = 0
    for whl in sorted(SHARED.glob("*.whl")) if SHARED.is_dir() else ():
        target = wheelhouse / whl.name
        # A wheel's file name starts with its project's name: only a missing package's is hashed.
        if target.exists() or re.sub(r"[-_.]+", "-", whl.name.split("-")[0].lower()) not in names:
            continue
        if sha256(whl, cache=True) not in wanted:
            continue
        try:
            _link_or_copy(whl, target)
        except OSError:  # an unreadable cache: pip downloads what is missing, as without one
            continue
        linked += 1
    if linked:
        step(f"Took {linked} wheels from {SHARED}")
    return linked


def _share(have, wheelhouse: Path = WHEELHOUSE) -> None:
    """Adds the wheelhouse's wheels to SHARED; a cache that cannot be written is left alone."""
    if wheelhouse.resolve() == SHARED.resolve():
        return
    try:
        SHARED.mkdir(parents=True, exist_ok=True)
        for whl in {w for wheels in have.values() for w in wheels.values()}:
            if not (SHARED / whl.name).exists():
                _link_or_copy(whl, SHARED / whl.name)
    except OSError:
        pass


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where both are on one file system, else a copy; by a rename, so that no half
    file ever stands under the wheel's name."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        try:
            os.link(source, partial)
        except OSError:
            shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _pip_download(requirements: list[str], wheelhouse: Path = WHEELHOUSE) -> None:
    step(f"Downloading {len(requirements)} wheels into {wheelhouse}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=BUILD_DIR) as reqs:
        reqs.write("\n".join(requirements) + "\n")
        reqs.flush()
        # The image's platform, whatever the host's Python: cp311 on manylinux x86_64.
        cmd = [sys.executable, "-m", "pip", "download", "--require-hashes", "--no-deps",
               "--only-binary=:all:", "--progress-bar", "off", "--dest", str(wheelhouse),
               "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
               *(f"--platform={p}" for p in PLATFORMS), "-r", reqs.name]
        # A bar only from the main thread: beside the base's fetch (build.py), whose lines would cut it.
        beside = threading.current_thread() is not threading.main_thread()
        progress = Progress(len(requirements), "wheels", plain=beside)
        tail = deque(maxlen=20)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            tail.append(line.rstrip())
            if line.startswith(("Collecting ", "Processing ")):  # one per wheel
                progress.advance()
        progress.close()
    if proc.wait() != 0:
        error("pip download failed; its last lines:\n" + "\n".join(tail))
        raise FlowError("Downloading the image's wheels failed: check that this machine can "
                        "reach PyPI (or your pip index settings) and run again.")


def _check_call(cmd, what: str, **kwargs) -> None:
    try:
        subprocess.run(cmd, check=True, **kwargs)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise FlowError(f"{what} failed ({exc}): see the output above, fix the cause and run "
                        "`invoke lock` again.") from exc
