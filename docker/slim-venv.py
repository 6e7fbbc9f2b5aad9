"""Slim /opt/venv without taking anything the image runs (docker/Dockerfile, build stage).

    python slim-venv.py strip   # strip the static symbols of extension modules, proven loadable
    python slim-venv.py trim    # import census: keep the .pyc of what our runs import, drop others
    python slim-venv.py check   # in the image: hlsflow's own imports whose .pyc is missing

`strip`: wheels ship many extension modules with their static symbol tables and debug info;
`strip --strip-unneeded` keeps every exported symbol. Libraries that patchelf has rewritten
(auditwheel's .libs folders, numba's thread pools) can come out of strip with load segments the
dynamic loader refuses: those keep their original bytes, and every library that loaded before
must still load after (else the build fails).

`trim`: the image sets PYTHONDONTWRITEBYTECODE, so a module without its .pyc is compiled in memory
on every import: the .pyc of everything our runs import stays. This runs what the image is used
for (TensorFlow/Keras, QKeras, HGQ, hls4ml with its Vivado and Vitis backends, numba's compiler,
matplotlib, pandas, pydot, dask.distributed, the JupyterLab server and kernel, pytest with its
plugins) in one process, records the .pyc of every module loaded and deletes every other .pyc
under site-packages. It needs no network and no project code (the venv layer must not change
when the code does). `check` (tests/image/test_slim_image.py) finds an import of hlsflow that
this workload misses: add it to `workload` below.
"""

import importlib
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SITE = Path(sysconfig.get_paths()["purelib"])

# Kept whole: the image's tools load these on demand (pytest's plugins and assertion rewriting,
# numba's compiler passes, hls4ml's backends and templates); all are small.
WHOLE = ("_pytest", "pytest", "xdist", "hypothesis", "numba", "hls4ml", "qkeras", "HGQ",
         "invoke", "dask_jobqueue", "jsonschema", "nbclient", "ipykernel", "pydot")


# --- strip ---------------------------------------------------------------------------------

def _segments_aligned(path: Path) -> bool:
    """What the dynamic loader checks of each PT_LOAD: offset and address agree modulo a page."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only (this image is x86_64)
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        kind, _, offset, vaddr = struct.unpack_from("<IIQQ", data, phoff + i * phentsize)
        if kind == 1 and (vaddr - offset) % 4096:
            return False
    return True


def _loadable(paths: list[Path]) -> set[Path]:
    """The libraries of `paths` that dlopen accepts, each asked in a fresh process (a library's
    constructor may abort a process that has loaded others)."""
    code = "import ctypes, sys; ctypes.CDLL(sys.argv[1])"

    def loads(path: Path) -> bool:
        return subprocess.run([sys.executable, "-I", "-S", "-c", code, str(path)], capture_output=True).returncode == 0

    # Hundreds of short processes: on every core, so the build waits for them once per core.
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return {p for p, ok in zip(paths, pool.map(loads, paths)) if ok}


def strip() -> None:
    # TensorFlow and llvmlite are stripped by the Dockerfile; .libs folders are auditwheel's.
    candidates = sorted(p for p in SITE.rglob("*.so*") if p.is_file() and not p.is_symlink()
                        and not any(part.endswith(".libs") for part in p.parts)
                        and p.relative_to(SITE).parts[0] not in ("tensorflow", "llvmlite"))
    before = _loadable(candidates)
    saved = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in candidates:
            copy = Path(tmp) / path.name
            shutil.copy2(path, copy)
            if subprocess.run(["strip", "--strip-unneeded", str(copy)],
                              capture_output=True).returncode == 0 \
                    and _segments_aligned(copy) and copy.stat().st_size < path.stat().st_size:
                saved += path.stat().st_size - copy.stat().st_size
                shutil.copy2(copy, path)
            copy.unlink()
    lost = sorted(before - _loadable(candidates))
    if lost:
        sys.exit("slim-venv: strip left these libraries unloadable: " + ", ".join(map(str, lost)))
    print(f"slim-venv: stripped {saved / 1e6:.0f} MB of static symbols from extension modules")


# --- import census -------------------------------------------------------------------------

def workload(tmp: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp / "plot.png")
    pd.DataFrame({"a": [1, 2]}).to_csv(tmp / "table.csv")

    import tensorflow as tf
    from tensorflow import keras
    import qkeras
    import HGQ  # noqa: F401

    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              qkeras.QDense(2, kernel_quantizer=qkeras.quantized_bits(6, 0)),
                              keras.layers.Activation("softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(np.zeros((8, 4)), np.eye(2)[np.arange(8) % 2], epochs=1, verbose=0)
    model.predict(np.zeros((2, 4)), verbose=0)
    model.save(tmp / "model.h5")
    qkeras.utils.load_qmodel(str(tmp / "model.h5"))
    tf.function(lambda x: x * 2)(tf.constant(1.0))

    import hls4ml

    config = hls4ml.utils.config_from_keras_model(model, granularity="name")
    for backend in ("Vivado", "Vitis"):
        hls = hls4ml.converters.convert_from_keras_model(
            model, hls_config=config, backend=backend, output_dir=str(tmp / backend))
        hls.write()
    hls4ml.utils.plot_model(hls, to_file=str(tmp / "model.png"))

    from numba import njit, prange

    @njit(parallel=True)
    def total(x):
        s = 0.0
        for i in prange(x.shape[0]):
            s += x[i]
        return s

    total(np.ones(4))

    for name in ("dask", "dask.array", "dask.bag", "distributed", "dask_jobqueue", "docker",
                 "invoke", "jsonschema", "yaml", "h5py", "psutil", "requests", "pydot", "scipy",
                 "scipy.optimize", "scipy.special", "scipy.stats", "IPython", "ipykernel.kernelapp",
                 "ipykernel.ipkernel", "nbformat", "nbclient", "jupyter_client",
                 "jupyter_server.serverapp", "jupyterlab.labapp", "jupyterlab_server",
                 "notebook_shim", "hypothesis.extra.numpy"):
        importlib.import_module(name)

    import pytest

    test = tmp / "test_census.py"
    test.write_text("from hypothesis import given, strategies as st\n\n"
                    "@given(st.integers())\ndef test_int(i):\n    assert i == i\n")
    if pytest.main([str(test), "-q", "-p", "no:cacheprovider", "-n", "0"]) != 0:
        sys.exit("slim-venv: the census's pytest run failed")


def loaded_pycs() -> set[Path]:
    return {Path(m.__cached__) for m in list(sys.modules.values())
            if isinstance(getattr(m, "__cached__", None), str)}


def trim() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(HOME=tmp, MPLCONFIGDIR=tmp, NUMBA_CACHE_DIR=tmp,
                          TF_CPP_MIN_LOG_LEVEL="2")
        workload(Path(tmp))
    keep = loaded_pycs() | {pyc for name in WHOLE for pyc in (SITE / name).rglob("*.pyc")}
    kept = dropped = size = 0
    for pyc in sorted(SITE.rglob("__pycache__/*.pyc")):
        if pyc in keep:
            kept += 1
        else:
            size += pyc.stat().st_size
            dropped += 1
            pyc.unlink()
    for folder in sorted(SITE.rglob("__pycache__"), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    print(f"slim-venv: kept {kept} .pyc, dropped {dropped} ({size / 1e6:.0f} MB) of modules "
          "no run imports")


def check() -> None:
    """hlsflow's modules, imported: print those of site-packages that have no .pyc."""
    import pkgutil

    import hlsflow

    for info in pkgutil.walk_packages(hlsflow.__path__, "hlsflow."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    missing = sorted(str(p) for p in loaded_pycs() if SITE in p.parents and not p.exists())
    print("\n".join(missing))
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    sys.dont_write_bytecode = True  # this run must not add bytecode of its own
    {"strip": strip, "trim": trim, "check": check}[sys.argv[1]]()
