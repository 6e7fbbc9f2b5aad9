"""The fast engine's kernels compiled ahead of time: the signatures the engine calls them with,
listed in kernel_signatures.txt (written by `invoke kernel-signatures`), compiled into numba's
cache when the image is built (`python -m hlsflow.emulator.precompile`, with NUMBA_CACHE_DIR and
NUMBA_CPU_NAME set to the folder and x86-64 level; kernelcache.py says why by level)."""

import sys
from pathlib import Path

SIGNATURES = Path(__file__).with_name("kernel_signatures.txt")


def _dispatchers() -> dict:
    """{name: numba dispatcher} of the kernels' public functions (kernels/__init__.py names them) that numba caches on disk. Its
    private ones run only inside those, compiled with them; they show signatures only in a process
    that compiled rather than loaded their callers, so listing them would depend on the cache."""
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    from . import kernels

    return {name: f for name, f in vars(kernels).items()
            if isinstance(f, CPUDispatcher) and not isinstance(f._cache, NullCache) and not name.startswith("_")}


def encode(name: str, signature: tuple) -> str:
    """One line of kernel_signatures.txt: the kernel and its argument types as numba writes them."""
    return f"{name}: {', '.join(repr(t) for t in signature)}"


def decode(line: str) -> tuple:
    """(name, argument types) from a line of encode()."""
    from numba.core import types

    name, _, args = line.partition(": ")
    names = {k: v for k, v in vars(types).items() if not k.startswith("_")}
    names["bool"] = types.boolean
    signature = eval(f"({args},)", {"__builtins__": {}}, names)  # our own file, numba's type names only
    return name, tuple(signature)


def in_use() -> list:
    """The lines of every signature this process has compiled or loaded, sorted."""
    return sorted(encode(name, sig) for name, f in _dispatchers().items() for sig in f.signatures)


def compile_listed(path=SIGNATURES) -> int:
    """Compiles (and so caches) every signature listed in `path`; returns how many."""
    dispatchers = _dispatchers()
    lines = [line for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]
    for i, line in enumerate(lines, 1):
        name, signature = decode(line)
        dispatchers[name].compile(signature)
        print(f"compiled {i}/{len(lines)}: {name}", flush=True)
    return len(lines)


if __name__ == "__main__":
    # The image's build: NUMBA_CACHE_DIR and NUMBA_CPU_NAME say where to and for which level.
    sys.exit(0 if compile_listed() else 1)
