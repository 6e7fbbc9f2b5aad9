"""Emulation speed, side by side in one run: Keras in float, hls4ml's C++ emulation on every core,
and hlsflow's fast bit-exact engine, on the same reference samples (run inside the image:
`docker run --rm -v "$PWD:/opt/hlsflow" -w /opt/hlsflow hlsflow:latest python bench/emulation.py`).

Prints images/s and ratios, checks that both emulations give the same bits, times a large check
on the fast engine alone, shows where the fast engine's time goes per layer class, and writes
bench/results/emulation-<date>.md.
"""

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "models"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="images for the three-way comparison")
    parser.add_argument("--large", type=int, default=10000, help="images for the fast engine's large check (0: skip)")
    args = parser.parse_args()

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
    cores = os.cpu_count() or 1
    rows = []

    keras_model.predict(x[:64], verbose=0)
    start = time.monotonic()
    y_keras = keras_model.predict(x, batch_size=64, verbose=0)
    keras_s = time.monotonic() - start
    rows.append(("Keras float (batch 64)", len(x), keras_s))

    build = cpp.build_library(cfg, project)
    start = time.monotonic()
    y_cpp = cpp.run_emulation(build["library"], f"{cfg.project_name}_float", x, y_keras.shape[1], cores)
    cpp_s = time.monotonic() - start
    rows.append((f"hls4ml C++ emulation ({cores} processes)", len(x), cpp_s))

    start = time.monotonic()
    engine = engines.fast_engine(cfg, keras_model, required=True)
    engine.run(x[:8])  # numba compiles its kernels on first use
    setup_s = time.monotonic() - start
    start = time.monotonic()
    y_fast = engines.run_fast(engine, x, cores)
    fast_s = time.monotonic() - start
    rows.append((f"hlsflow fast engine ({cores} threads)", len(x), fast_s))
    identical = np.array_equal(y_cpp.view(np.uint32), y_fast.view(np.uint32))

    large = None
    if args.large:
        xl, _ = mini_resnet.synthetic_dataset(args.large, seed=12)
        start = time.monotonic()
        engines.run_fast(engine, xl, cores)
        large = (args.large, time.monotonic() - start)

    per_class = {}
    engine.run(x[:200], spent=per_class)

    lines = [f"# Emulation speed, {datetime.date.today()}", "", f"Machine: {machine()}.",
             f"Reference Mini-ResNet ({cfg.io_type}, {cfg.hls_config['Model']['Strategy']}, ReuseFactor "
             f"{cfg.hls_config['Model']['ReuseFactor']}), {len(x)} synthetic CIFAR-shaped images, one run.", "",
             "| path | images | seconds | images/s | vs C++ | vs Keras |", "|---|---|---|---|---|---|"]
    for name, n, s in rows:
        lines.append(f"| {name} | {n} | {s:.1f} | {n / s:,.1f} | {cpp_s / s:.1f}x | {s / keras_s:.1f}x slower |"
                     if name != rows[0][0] else f"| {name} | {n} | {s:.1f} | {n / s:,.1f} | {cpp_s / s:.1f}x | 1.0x |")
    lines += ["", f"Fast engine vs C++ emulation on these {len(x)} images: "
              f"{'bit-identical outputs' if identical else 'OUTPUTS DIFFER'}.",
              f"Fast engine set-up (in-memory conversion, weights, numba compilation): {setup_s:.1f} s, once per run."]
    if large:
        lines.append(f"Large check, fast engine alone: {large[0]:,} images in {large[1]:.1f} s "
                     f"({large[0] / large[1]:,.0f} images/s).")
    lines += ["", "Where the fast engine's time goes (200 images, by layer class):", "",
              "| layer class | seconds | share |", "|---|---|---|"]
    total = sum(per_class.values())
    for cls, s in sorted(per_class.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {cls} | {s:.2f} | {s / total:.0%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"emulation-{datetime.date.today()}.md").write_text(text)
    if not identical:
        sys.exit("The fast engine's outputs differ from the C++ emulation's: see the table above.")


if __name__ == "__main__":
    main()
