"""Where the fast engine's compiled kernels are kept, and the ones the image ships.

numba compiles kernels/'s loops on first use (about 25 s for a CNN) and keeps them in a cache
folder (NUMBA_CACHE_DIR: the launcher mounts a per-machine one; else a folder in the temporary
directory, which lives as long as the container). numba keys that cache by the CPU it compiled
for, by name and features, so code compiled for this exact CPU loads on no other. The kernels are
therefore compiled for the x86-64 level the CPU has (x86-64-v4: AVX-512; x86-64-v3: AVX2 and
FMA), which any CPU of that level runs; on the reference model the engine ran as fast as when
compiled for this machine's own CPU (bench/results/kernel-target-2026-12-02.md). The image ships
them compiled for both levels (precompile.py, run when the image is built, a folder per level
under $HLSFLOW_KERNELS) and every process copies the shipped files of its level that its cache
folder lacks before numba looks: a container started from the image alone (`docker run`, a Slurm
job, a CI job) emulates at once. Another architecture, or an x86-64 CPU below v3, compiles for
itself, as before.
"""

import hashlib
import os
import platform
import shutil
import tempfile
from pathlib import Path

SHIPPED = "HLSFLOW_KERNELS"  # the image's folder of compiled kernels (set in the Dockerfile)
# Kernels compiled for this CPU where the image ships none for it: a per-user folder the launcher
# mounts read-only, filled only by a container that holds no user's file (cli/launcher.py). numba's
# cache index is a pickle: nothing a model or project could write is ever read as one.
USER_KERNELS = "HLSFLOW_USER_KERNELS"
# A file of kernels/: numba keeps the kernels of every file of that folder in one folder of its cache.
KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels", "__init__.py")
_V3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave", "cx16", "popcnt", "sse4_1",
       "sse4_2", "ssse3"}
# The flags /proc/cpuinfo must show for each level, highest first.
LEVELS = {"x86-64-v4": _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}, "x86-64-v3": _V3}


def cpu_level(flags=None):
    """The highest level of LEVELS this CPU has, or None (another architecture, an older CPU, no
    /proc/cpuinfo to read)."""
    if flags is None:
        if platform.machine() not in ("x86_64", "AMD64"):
            return None
        try:  # the first CPU's line is enough (a node's /proc/cpuinfo lists every core)
            with open("/proc/cpuinfo") as cpuinfo:
                line = next(line for line in cpuinfo if line.startswith("flags"))
        except (OSError, StopIteration):
            return None
        flags = set(line.split(":", 1)[1].split())
    return next((name for name, needed in LEVELS.items() if needed <= set(flags)), None)


def prepare() -> str:
    """Called before numba is imported: the cache folder and the target level in numba's
    environment variables (a user's own settings win), and the shipped kernels copied in.
    Returns the cache folder."""
    cache = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(tempfile.gettempdir(), f"hlsflow-numba-{os.getuid()}")
    os.environ["NUMBA_CACHE_DIR"] = cache
    if "NUMBA_CPU_NAME" not in os.environ:
        level = cpu_level()
        if level:
            os.environ.update(NUMBA_CPU_NAME=level, NUMBA_CPU_FEATURES="")
            if os.environ.get(SHIPPED):
                seed(cache, os.path.join(os.environ[SHIPPED], level), numba_folder(KERNELS))
    if os.environ.get(USER_KERNELS):
        seed(cache, os.environ[USER_KERNELS], numba_folder(KERNELS))
    return cache


def numba_folder(source: str) -> str:
    """The folder under the cache folder where numba keeps the kernels of the file `source`: named
    for the file's folder and a hash of its path (numba's rule, numba/core/caching.py). The image
    compiled kernels/ under /opt/hlsflow; a checkout mounted elsewhere has other folders."""
    folder = os.path.dirname(os.path.abspath(source))
    return f"{os.path.basename(folder)}_{hashlib.sha1(folder.encode()).hexdigest()}"


def seed(cache: str, shipped, folder: str) -> int:
    """Copies into cache/folder each file that the shipped folder's own numba folder holds and
    cache/folder lacks (one that numba rewrote there, with more signatures, stays), each by a
    rename so that a process reading the folder meanwhile never sees half a file. The shipped
    kernels serve a kernels/ at another path too (a checkout mounted into the image, as the
    tests run): numba loads them only where the file's content is the one they were compiled from,
    and compiles otherwise. Returns how many; an unwritable cache folder copies nothing (numba then
    compiles, as without a shipped folder)."""
    if not shipped or not os.path.isdir(shipped) or os.path.realpath(shipped) == os.path.realpath(cache):
        return 0
    copied = 0
    target_folder = os.path.join(cache, folder)
    for root, _, names in os.walk(shipped):
        for name in names if root != shipped else ():
            target = os.path.join(target_folder, name)
            if os.path.exists(target):
                continue
            partial = f"{target}.{os.getpid()}.partial"
            try:
                os.makedirs(target_folder, exist_ok=True)
                shutil.copyfile(os.path.join(root, name), partial)
                os.replace(partial, target)
            except OSError:
                return copied
            finally:
                if os.path.exists(partial):  # a copy cut short: by an error, Ctrl-C or SIGTERM
                    os.remove(partial)
            copied += 1
    return copied


def numba_cache(image_id: str):
    """The host folder for the fast engine's kernels compiled for this CPU, where the image ships
    none for it, created; None where it cannot be. Keyed by this CPU (model and flags) and the
    image (its numba), so another machine's or image's code is never loaded; numba's own cache
    index checks the CPU's name and features again."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = [line for line in lines if line.startswith(("model name", "flags"))][:2]
    except OSError:  # no /proc (macOS): the container runs in a VM of this machine's CPU
        cpu = [platform.machine(), platform.processor()]
    key = hashlib.sha256("\n".join(cpu).encode()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "hlsflow" / "numba" / f"{key}-{image_id.split(':')[-1][:12]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return str(folder) if os.access(folder, os.W_OK) else None
