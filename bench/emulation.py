"""Emulation speed, side by side in one run: Keras in float, hls4ml's C++ emulation on every core,
hlsflow's fast bit-exact engine, and this CPU's int32 ceiling, on the same reference samples (run
inside the image: `docker run --rm -v "$PWD:/opt/hlsflow" -w /opt/hlsflow hlsflow:latest python
bench/emulation.py`).

Prints images/s and ratios, checks that both emulations give the same bits, times a large check
on the fast engine alone, shows each multiply-accumulate layer's GMAC/s against the ceiling (the
engine's own int32 multiply-add-shift kernel on data that stays in cache, measured in the same
run) and where the rest of the time goes, and writes bench/results/emulation-<date>.md.
"""

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "models"))


def int32_ceiling(windows: int = 20, seconds: float = 0.2) -> float:
    """MAC/s of the engine's inner operation, s += (a * w + offset) >> shift in int32 lanes
    (kernels.mas32), as one long reduction per thread over 2 x 8 KB that stay in the L1 cache:
    no horizontal sums, no windows, no casts, nothing waiting on memory. The best of `windows`
    short windows: on a shared machine the others' load only ever slows it down."""
    from numba import njit, prange

    from hlsflow.emulator import kernels

    @njit(parallel=True)
    def spin(a, w, reps, out):
        for t in prange(out.shape[0]):
            s = np.int32(t)
            for r in range(reps):
                off = np.int32(r & 1)  # changes with r: no pass may be hoisted out of the loop
                for i in range(a.shape[0]):
                    s = kernels.mas32(s, a[i], w[i], off, np.int32(10))
            out[t] = s

    rng = np.random.default_rng(0)
    a = rng.integers(-2 ** 15, 2 ** 15, 2048, dtype=np.int32)
    w = rng.integers(-2 ** 14, 2 ** 14, 2048, dtype=np.int32)
    out = np.zeros(64, np.int32)  # 64 tasks spread over every thread
    reps = 100
    spin(a, w, 1, out)
    best = 0.0
    for _ in range(windows):
        calls, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            spin(a, w, reps, out)
            calls += 1
        best = max(best, calls * reps * a.size * out.size / (time.monotonic() - start))
    return best


def best_of(repeats: int, fn) -> tuple:
    """(fastest seconds, result) of `repeats` calls: load from other jobs only ever adds time."""
    best, result = None, None
    for _ in range(repeats):
        start = time.monotonic()
        result = fn()
        spent = time.monotonic() - start
        best = spent if best is None else min(best, spent)
    return best, result


def macs_per_image(keras_model) -> dict:
    """{layer: multiply-accumulates per image} of the Conv and Dense layers (hls4ml keeps their names)."""
    found = {}
    for layer in keras_model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        pixels = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 else 1
        found[layer.name] = int(np.prod(kernel.shape)) * pixels
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="images for Keras and the fast engine")
    parser.add_argument("--cpp-samples", type=int, default=50,
                        help="images for hls4ml's C++ emulation (slow: about 8 images/s), the first of --samples")
    parser.add_argument("--large", type=int, default=10000, help="images for the fast engine's large check (0: skip)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of Keras and the fast engine; the fastest counts")
    parser.add_argument("--ceiling-only", action="store_true", help="print the int32 ceiling in MAC/s and stop")
    parser.add_argument("--write", type=Path, default=None,
                        help="the results file (default: bench/results/emulation-<date>.md)")
    args = parser.parse_args()
    if args.ceiling_only:
        print(int32_ceiling())
        return

    import mini_resnet
    import tensorflow as tf

    from bench.run import machine
    from hlsflow import flow
    from hlsflow.emulator import cpp, engines
    from hlsflow.state import outdir
    from hlsflow.config import load_config
    from hlsflow.loading import load_keras_model

    tf.get_logger().setLevel("ERROR")
    out = Path(tempfile.mkdtemp(prefix="bench-emulation-")) / "ref"
    cfg = load_config(path=REPO / "project" / "hls4ml_config.yml", out=out, announce=False)
    flow.convert(cfg)  # the flow's own entry: the stage behind it is not the bench's business
    project = outdir.require_project(cfg)
    keras_model = load_keras_model(cfg.keras_model)
    x, _ = mini_resnet.synthetic_dataset(args.samples, seed=11)
    x_cpp = x[:min(args.cpp_samples, len(x))]
    cores = os.cpu_count() or 1
    macs = macs_per_image(keras_model)
    image_macs = sum(macs.values())
    rows = []

    keras_model.predict(x[:64], verbose=0)
    keras_s, y_keras = best_of(args.repeats, lambda: keras_model.predict(x, batch_size=64, verbose=0))
    rows.append(("Keras float (batch 64)", len(x), keras_s))

    caches = outdir.Caches(cfg.output_dir)  # what csim keeps, recorded as the flow records it
    build = cpp.build_library(cfg, project, caches)
    start = time.monotonic()
    y_cpp = cpp.run_emulation(build["library"], f"{cfg.project_name}_float", x_cpp, y_keras.shape[1], cores)
    cpp_s = time.monotonic() - start
    rows.append((f"hls4ml C++ emulation ({cores} processes)", len(x_cpp), cpp_s))

    start = time.monotonic()
    engine = engines.fast_engine(cfg, project, lambda: keras_model, True, caches)
    engine.run(x[:8])  # numba compiles its kernels on first use, or loads them from its cache
    setup_s = time.monotonic() - start
    fast_s, y_fast = best_of(args.repeats, lambda: engines.run_fast(engine, x, cores))
    rows.append((f"hlsflow fast engine ({cores} threads)", len(x), fast_s))
    identical = np.array_equal(y_cpp.view(np.uint32), y_fast[:len(x_cpp)].view(np.uint32))

    # In a process of its own, without TensorFlow: in this one, measured after Keras had run,
    # it came out at a fifth of the rate some layers reached.
    ceiling = float(subprocess.run([sys.executable, __file__, "--ceiling-only"], capture_output=True, text=True,
                                   check=True).stdout.split()[-1])
    rows.append(("int32 ceiling (multiply-add-shift in cache, every core)", None, image_macs / ceiling))

    large = None
    if args.large:
        xl, _ = mini_resnet.synthetic_dataset(args.large, seed=12)
        start = time.monotonic()
        engines.run_fast(engine, xl, cores)
        large = (args.large, time.monotonic() - start)

    part = x[:200]
    per_class, per_layer = {}, {}
    for _ in range(args.repeats):  # the fastest of the runs, per class and per layer
        spent_class, spent_layer = {}, {}
        engine.run(part, spent=spent_class)
        engine.run(part, spent=spent_layer, by_layer=True)
        for mine, spent in ((per_class, spent_class), (per_layer, spent_layer)):
            for key, value in spent.items():
                mine[key] = min(mine.get(key, value), value)

    rate = {name: (n / s if n else 1 / s) for name, n, s in rows}  # images/s; the ceiling per image
    keras_rate = rate[rows[0][0]]
    lines = [f"# Emulation speed, {datetime.date.today()}", "", f"Machine: {machine()}.",
             f"Reference Mini-ResNet ({cfg.io_type}, {cfg.hls_config['Model']['Strategy']}, ReuseFactor "
             f"{cfg.hls_config['Model']['ReuseFactor']}, {image_macs / 1e6:.1f} M multiply-accumulates per image), "
             f"synthetic CIFAR-shaped images, one run (Keras and the fast engine: the fastest of "
             f"{args.repeats}); on a shared machine the ratios within this run are what count.", "",
             "| path | images | seconds | images/s | vs Keras float |", "|---|---|---|---|---|"]
    for name, n, s in rows:
        r = rate[name]
        shown = f"{n}" if n else "(per image)"
        lines.append(f"| {name} | {shown} | {s:.2f} | {r:,.1f} | {r / keras_rate:.2f}x |")
    lines += ["", f"The ceiling: {ceiling / 1e9:.1f} GMAC/s, the engine's own int32 multiply-add-shift as one long "
              "reduction on data in the L1 cache, every core; the images/s it would give if every "
              "multiply-accumulate of the model ran at that rate and nothing else took time.",
              f"Fast engine vs C++ emulation on the first {len(x_cpp)} images: "
              f"{'bit-identical outputs' if identical else 'OUTPUTS DIFFER'}.",
              f"Fast engine set-up (in-memory conversion, weights, numba compilation or its cache): {setup_s:.1f} s."]
    if large:
        lines.append(f"Large check, fast engine alone: {large[0]:,} images in {large[1]:.1f} s "
                     f"({large[0] / large[1]:,.0f} images/s).")
    lines += ["", f"Each multiply-accumulate layer ({len(part)} images; the time includes building the windows, "
              "the cast to the output type and what is fused into its pass: a zero padding before it, a "
              "BatchNormalization and ReLU after it):", "",
              "| layer | M MAC/image | seconds | GMAC/s | of ceiling |", "|---|---|---|---|---|"]
    for name, n in macs.items():
        # a fused step's key names every step it runs ("zp+conv+bn+relu"): its seconds count here
        s = next((spent for key, spent in per_layer.items() if name in key.split("+")), None)
        if s:
            g = n * len(part) / s
            lines.append(f"| {name} | {n / 1e6:.2f} | {s:.3f} | {g / 1e9:.1f} | {g / ceiling:.0%} |")
    lines += ["", f"Where the fast engine's time goes ({len(part)} images, by layer class; steps fused into one "
              "pass are one row, their classes joined by +):", "",
              "| layer class | seconds | share |", "|---|---|---|"]
    total = sum(per_class.values())
    for cls, s in sorted(per_class.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {cls} | {s:.3f} | {s / total:.0%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    target = args.write or REPO / "bench" / "results" / f"emulation-{datetime.date.today()}.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    if not identical:
        sys.exit("The fast engine's outputs differ from the C++ emulation's: see the table above.")


if __name__ == "__main__":
    main()
