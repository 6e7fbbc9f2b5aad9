"""hls4ml's own C++ emulation of a written project.

ModelGraph.compile() only runs g++ on the generated C++ (it never runs Vivado); here the
project's build_lib.sh runs the same way, once per project tree (recorded in the manifest), and
the library is loaded in one worker process per core, because a single hls4ml predict() call
uses one core. Also: g++'s syntax check of the written firmware, and hls4ml's per-layer trace.
"""

import contextlib
import copy
import io
import multiprocessing
import re
import resource
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from .. import console, steps
from ..design import convert_model
from ..errors import FlowError
from ..versions import gpp
from . import _emulation_worker, accepted

CHUNK = 8  # images per task handed to a worker: small enough for a live progress bar
BUILD_LOG = steps.BUILD_EMULATION.outputs[0]
CHECK_LOG = steps.CHECK_CPP.outputs[0]


def build_library(cfg, project: dict, caches) -> dict:
    """g++ the emulation library of the current project unless `caches` (state.records.Caches)
    holds it built."""
    out = cfg.output_dir
    lib = steps.emulation_library(out, cfg.project_name, project["stamp"])
    # build_lib.sh's objects (it removes them when it gets that far), its library and our log.
    leaves = [f"{cfg.project_name}.o", f"{cfg.project_name}_bridge.o", lib.relative_to(out).as_posix(), BUILD_LOG]

    def work(into):
        console.step("Building the bit-accurate emulation with g++ (this is C emulation, not Vivado)")
        start = time.monotonic()
        proc = subprocess.Popen(["bash", "./build_lib.sh"], cwd=out, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        while True:
            try:
                output, _ = proc.communicate(timeout=5)
                break
            except subprocess.TimeoutExpired:
                console.say(f"  g++ still compiling... {time.monotonic() - start:.0f}s")
        seconds = time.monotonic() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        (out / BUILD_LOG).write_text(output)
        if proc.returncode != 0 or not lib.exists():
            tail = "\n".join(output.strip().splitlines()[-15:])
            console.say(tail)
            raise FlowError(f"g++ could not build the emulation library (exit {proc.returncode}); the compiler "
                            f"output is in {out / BUILD_LOG}: {known_fix(output)}")
        console.say(f"  built {lib.name} in {seconds:.1f}s (peak g++ memory {peak_mb:.0f} MB)")
        result = {"library": str(lib), "built": True, "seconds": round(seconds, 2), "peak_mb": round(peak_mb, 1)}
        return steps.Outcome([lib.relative_to(out).as_posix(), BUILD_LOG], result=result)

    record, reused = caches.keep(steps.BUILD_EMULATION, {"project": project["tree_hash"], "g++": gpp()}, work,
                                 leaves=leaves, current=f"Emulation library up to date: {lib.name}")
    if reused:
        return {"library": str(lib), "built": False, "seconds": 0.0, "peak_mb": None}
    return record["result"]


def run_emulation(lib: str, function: str, x: np.ndarray, n_out: int, workers: int) -> np.ndarray:
    chunks = [x[i:i + CHUNK] for i in range(0, len(x), CHUNK)]
    progress = console.Progress(len(x), f"emulating on {workers} core{'s' if workers > 1 else ''}")
    results = []
    if workers == 1:
        _emulation_worker.init(lib, function, n_out)
        for chunk in chunks:
            results.append(_emulation_worker.run(chunk))
            progress.advance(len(chunk))
    else:
        # spawn, not fork: the parent holds TensorFlow's threads, which fork does not survive.
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_emulation_worker.init, initargs=(lib, function, n_out)) as pool:
            for out in pool.imap(_emulation_worker.run, chunks):
                results.append(out)
                progress.advance(len(out))
    progress.close()
    return np.concatenate(results) if results else np.zeros((0, n_out), np.float32)


def known_fix(compiler_output: str) -> str:
    """What to do about g++'s errors on hls4ml's C++: the fix for the ones we know, else where to look."""
    if re.search(r"'softmax_config\d+' was not declared", compiler_output.replace("\u2018", "'").replace("\u2019", "'")):
        # hls4ml 1.3.0 declares Softmax_configN for a Keras Softmax layer but calls softmax_configN
        return ("hls4ml 1.3.0 misnames the config of a standalone Keras Softmax layer; use Activation('softmax') "
                "or activation='softmax' on the layer before it, which compute the same.")
    return "change the layer or setting the errors above name, or report them to hls4ml."


def _gpp_ready():
    if shutil.which("g++") is None:
        raise FlowError("csim checks the written C++ with g++, which is not on PATH: install g++ (Debian: "
                        "apt-get install g++) or run hlsflow from its image.")


@contextlib.contextmanager
def compiles_checked(cfg, project: dict, caches):
    """g++ -fsyntax-only on the written firmware, once per project tree, run beside the block (the
    emulation) and recorded at its end: the fast engine reads the design's types and weights but
    not its C++, so without this a design hls4ml wrote wrongly (a config it names but never
    declares) would pass csim and fail only in Vivado. A few seconds of g++, no code generated; a
    tree g++ accepted before (in any folder, same g++) is not checked again."""
    out = cfg.output_dir
    inputs = {"project": project["tree_hash"], "g++": gpp()}
    proc = std = key = remembered = None
    if caches.kept(steps.CHECK_CPP, inputs) is None:
        _gpp_ready()
        std = "-std=c++23" if subprocess.run(["g++", "-Werror", "-fsyntax-only", "-std=c++23", "-xc++", "-"], input="",
                                             capture_output=True, text=True).returncode == 0 else "-std=c++11"
        key = accepted.key(project["tree_hash"], std)
        remembered = accepted.before(key)
        if remembered is not None:
            console.step("g++ accepted this same C++ before (same design, same g++): not checked again")
        else:
            console.step("Checking that g++ accepts the written C++ (syntax and templates only), beside the emulation")
            # build_lib.sh chooses the standard the same way; WEIGHTS_DIR is what it defines too
            proc = subprocess.Popen(["g++", "-fsyntax-only", std, "-Ifirmware/ap_types/",
                                     f'-DWEIGHTS_DIR="{out / "firmware" / "weights"}"', f"firmware/{cfg.project_name}.cpp"],
                                    cwd=out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield
        if proc is not None:
            stdout, stderr = proc.communicate()
    finally:
        if proc is not None and proc.poll() is None:  # the block failed or was cancelled: g++ goes with it
            proc.kill()
            proc.communicate()

    def work(into):
        if remembered is None and proc is None:  # the record went stale meanwhile: not under the folder's lock
            raise FlowError(f"The syntax check's record in {out} changed during this run: run csim again.")
        output = remembered if remembered is not None else stdout + stderr
        (out / CHECK_LOG).write_text(output)
        if remembered is None:
            if proc.returncode != 0:
                errors = [line for line in stderr.splitlines() if "error" in line][:5]
                console.say("\n".join(errors))
                raise FlowError(f"g++ rejects the C++ hls4ml wrote for this design (the errors are in {out / CHECK_LOG}), "
                                f"so neither emulation nor Vivado can use it: {known_fix(stderr)}")
            accepted.remember(key, output)
        return steps.Outcome([CHECK_LOG], result={"std": std})

    caches.keep(steps.CHECK_CPP, inputs, work, ready=_gpp_ready)


def cpp_trace(cfg, keras_model, x, workdir: Path) -> tuple:
    """(ModelGraph, {layer: outputs}): hls4ml's bit-accurate per-layer trace, from a traced copy of
    the design compiled with g++ in workdir."""
    traced_cfg = copy.deepcopy(cfg)
    for layer in traced_cfg.hls_config.setdefault("LayerName", {}).values():
        layer["Trace"] = True
    for layer in keras_model.layers:
        traced_cfg.hls_config["LayerName"].setdefault(layer.name, {})["Trace"] = True
    hls_model, _ = convert_model(keras_model, traced_cfg, workdir)
    console.step("Compiling a traced copy of the design (g++) for hls4ml's per-layer trace")
    with contextlib.redirect_stdout(io.StringIO()):
        _, trace = hls_model.trace(np.ascontiguousarray(x))
    return hls_model, trace
