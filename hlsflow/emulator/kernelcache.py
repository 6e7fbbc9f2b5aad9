"""Where the fast engine's compiled kernels are kept, and the ones the image ships.

numba compiles kernels.py's loops on first use (about 25 s for a CNN) and keeps them in a cache
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

import os
import platform
import shutil
import tempfile

SHIPPED = "HLSFLOW_KERNELS"  # the image's folder of compiled kernels (set in the Dockerfile)
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
                seed(cache, os.path.join(os.environ[SHIPPED], level))
    return cache


def seed(cache: str, shipped) -> int:
    """Copies into `cache` each file of `shipped` it does not have (one that numba rewrote there,
    with more signatures, stays), each by a rename so that a process reading the folder meanwhile
    never sees half a file. Returns how many; an unwritable cache folder copies nothing (numba then
    compiles, as without a shipped folder)."""
    if not shipped or not os.path.isdir(shipped) or os.path.realpath(shipped) == os.path.realpath(cache):
        return 0
    copied = 0
    for root, _, names in os.walk(shipped):
        folder = os.path.join(cache, os.path.relpath(root, shipped))
        for name in names:
            target = os.path.join(folder, name)
            if os.path.exists(target):
                continue
            partial = f"{target}.{os.getpid()}.partial"
            try:
                os.makedirs(folder, exist_ok=True)
                shutil.copyfile(os.path.join(root, name), partial)
                os.replace(partial, target)
            except OSError:
                return copied
            finally:
                if os.path.exists(partial):  # a copy cut short: by an error, Ctrl-C or SIGTERM
                    os.remove(partial)
            copied += 1
    return copied
