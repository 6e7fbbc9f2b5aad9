"""What the flow runs with: `python -m hlsflow.versions` (or `docker run IMAGE versions`).

Package versions come from importlib.metadata, so the report never imports TensorFlow.
"""

import functools
import os
import platform
import shutil
import subprocess
from importlib import metadata

from .console import say, table
from .standin import NOTE, is_test_double


def collect() -> dict[str, str]:
    vivado = shutil.which("vivado_hls")
    tensorflow = package_version("tensorflow-cpu", "tensorflow")
    # The keras3 lane (no TensorFlow): its Keras and backend instead; the reference's rows stay as they were.
    keras3 = {"Keras": package_version("keras"), "JAX": package_version("jax")} if tensorflow == "not installed" else {}
    return {
        "Python": platform.python_version(),
        "TensorFlow": tensorflow,
        **keras3,
        "numpy": package_version("numpy"),
        "hls4ml": package_version("hls4ml"),
        "g++": first_line(["g++", "--version"]),
        "graphviz": first_line(["dot", "-V"]),
        "image revision": os.environ.get("HLSFLOW_REVISION", "not an image"),
        "Vivado": f"{first_line([vivado, '-version'])} ({vivado})" + (f" ({NOTE})" if is_test_double(vivado) else "")
        if vivado else "none",
    }


def package_version(*names: str) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return "not installed"


def first_line(cmd: list[str]) -> str:
    """First line of a tool's stdout, or of its stderr (where `dot -V` writes)."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc.__class__.__name__})"
    lines = (done.stdout.strip() or done.stderr.strip() or "no output").splitlines()
    return lines[0].strip()


@functools.cache
def gpp() -> str:
    """g++'s version line, once per process: what the emulation library and the syntax check are made with."""
    return first_line(["g++", "--version"])


def main() -> None:
    say(table(["tool", "version"], collect().items()))


if __name__ == "__main__":
    main()
