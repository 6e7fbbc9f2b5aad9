"""Flow-side benchmark figures, measured where the flow runs (inside the image, or natively).

Prints one JSON object: each figure with ours, the baseline and notes. `bench/run.py` (the
`invoke bench` task) composes these with the host-side figures into the Markdown table.
Nothing here is asserted: these are measurements, side by side in one run.
"""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "models"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hlsflow import console, design  # noqa: E402
from hlsflow.config import load_config  # noqa: E402
from hlsflow.emulator import cpp  # noqa: E402
from hlsflow.loading import load_keras_model  # noqa: E402
from hlsflow.state import outdir  # noqa: E402

# Runs a command and reports its wall time and the peak RSS of its largest descendant
# (RUSAGE_CHILDREN covers every reaped descendant: g++ and its cc1plus).
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.monotonic(); rc = subprocess.call(sys.argv[1:])\n"
    "print(rc, time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
)


def measured_build(project_dir: Path, limit_s: float) -> dict:
    """Time and peak memory of the project's build_lib.sh (the g++ emulation build)."""
    proc = subprocess.Popen([sys.executable, "-c", MEASURE, "bash", "./build_lib.sh"], cwd=project_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return {"completed": False, "seconds": limit_s, "peak_mb": None}
    rc, seconds, peak = out.split()
    return {"completed": rc == "0", "seconds": float(seconds), "peak_mb": float(peak)}


def prediction_runs(project_dir: Path, lib: Path, project: str, x) -> str:
    """Run one image through the built library in a child process: an assertion abort kills
    only the child, and we report how it ended."""
    np_file = project_dir / "one_image.npy"
    import numpy as np

    np.save(np_file, x[:1])
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--predict-one", str(lib),
                           f"{project}_float", str(np_file)], capture_output=True, text=True, timeout=600)
    if proc.returncode == 0:
        return "runs"
    if proc.returncode < 0:
        return f"aborts ({signal.Signals(-proc.returncode).name})"
    return f"fails (exit {proc.returncode})"


def emulation_build(baseline_limit_s: float) -> dict:
    import numpy as np

    ours_cfg = load_config()
    seed_cfg = load_config(REPO / "project" / "seed_config.yml", io_type="io_parallel")
    keras_model = load_keras_model(ours_cfg.keras_model)
    x = np.load(ours_cfg.samples_path())["X"][:1]
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, cfg, limit in (("ours", ours_cfg, 1800), ("baseline", seed_cfg, baseline_limit_s)):
            console.step(f"bench: emulation build, {label} ({cfg.io_type}; limit {limit:.0f} s)")
            prj = Path(tmp) / label
            hls_model, _ = design.convert_model(keras_model, cfg, prj)
            with contextlib.redirect_stdout(io.StringIO()):
                hls_model.write()
            # hls4ml's own random stamp (convert() would replace it): it names the library build_lib.sh makes
            lib = outdir.emulation_library(prj, cfg.project_name, hls_model.config.get_config_value("Stamp"))
            figures = measured_build(prj, limit)
            figures["prediction"] = prediction_runs(prj, lib, cfg.project_name, x) if figures["completed"] else \
                "not reached"
            result[label] = figures
    return result


def throughput(n_images: int) -> dict:
    """Images/s through our bit-accurate emulation, one worker against every core."""
    import mini_resnet
    import numpy as np

    from hlsflow import flow

    cfg = load_config(out=str(Path(tempfile.mkdtemp()) / "prj"))
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        flow.convert(cfg)
        lib = cpp.build_library(cfg, outdir.require_project(cfg), outdir.Caches(cfg.output_dir))["library"]
    x, _ = mini_resnet.synthetic_dataset(n_images, seed=11)
    fn = f"{cfg.project_name}_float"
    figures = {}
    for workers in (1, os.cpu_count() or 1):
        n = min(n_images, 120) if workers == 1 else n_images
        start = time.monotonic()
        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
            cpp.run_emulation(lib, fn, x[:n], 10, workers)
        seconds = time.monotonic() - start
        figures[f"workers_{workers}"] = {"images": n, "seconds": seconds, "images_per_second": n / seconds}
    # The whole agreement check a user runs, Keras included, on n_images.
    keras_model = load_keras_model(cfg.keras_model)
    start = time.monotonic()
    y_keras = keras_model.predict(x, batch_size=64, verbose=0)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
        y_hls = cpp.run_emulation(lib, fn, x, 10, os.cpu_count() or 1)
    figures["agreement_check"] = {"images": n_images, "seconds": time.monotonic() - start,
                                  "top1_agreement": float(np.mean(y_keras.argmax(1) == y_hls.argmax(1)))}
    return figures


def design_limit() -> dict:
    """MACs, the DSP-bound minimum latency, and the preflight's estimates for the configured design."""
    from hlsflow import parts
    from hlsflow import preflight

    cfg = load_config()
    keras_model = load_keras_model(cfg.keras_model)
    with design.in_memory(keras_model, cfg) as hls_model:
        check = preflight.run(hls_model, cfg)
    part = parts.find_part(cfg.part)
    if part is None:
        raise SystemExit(f"{cfg.part} is not in hlsflow's device table: the figures need its DSP count.")
    f_hz = 1e9 / cfg.clock_period
    # In io_stream each layer computes one output pixel per ReuseFactor cycles (Resource strategy);
    # layers overlap in a dataflow pipeline, so the slowest one sets the interval.
    layer_cycles = [e.positions * e.reuse_used for e in check.layers]
    return {
        "part": part.name, "dsp": part.DSP, "clock_ns": cfg.clock_period, "macs": check.total_macs,
        "dsp_bound_cycles": check.total_macs / part.DSP,
        "dsp_bound_latency_us": check.total_macs / (part.DSP * f_hz) * 1e6,
        "estimated_multipliers": check.total_multipliers,
        "estimated_interval_cycles": max(layer_cycles),
        "estimated_latency_cycles": sum(layer_cycles),
    }


def predict_one(lib: str, function: str, np_file: str) -> None:
    """The child of prediction_runs: one image through the library, in this process alone."""
    import numpy as np

    print(cpp.run_emulation(lib, function, np.load(np_file), 10, 1).argmax())


def main():
    if sys.argv[1:2] == ["--predict-one"]:
        return predict_one(*sys.argv[2:5])
    figures = {"emulation_build": emulation_build(float(os.environ.get("BENCH_BASELINE_LIMIT", 1200))),
               "throughput": throughput(int(os.environ.get("BENCH_IMAGES", 1000))),
               "design": design_limit()}
    print("BENCH-JSON " + json.dumps(figures))


if __name__ == "__main__":
    main()
