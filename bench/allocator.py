"""The fast engine with glibc's allocator as it comes, and as the engine sets it (fastemu's
_keep_freed_memory), side by side: images/s and peak memory on the reference Mini-ResNet, each in
a child process of its own, alternating, the Keras model loaded first as in `hlsflow csim` (run
inside the image: `docker run --rm -v "$PWD:/opt/hlsflow" -w /opt/hlsflow hlsflow:latest python
bench/allocator.py`). Writes bench/results/allocator-<date>.md.
"""

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys, time
sys.path[:0] = [{repo!r}, {models!r}]
import mini_resnet
from hlsflow.config import load_config
from hlsflow.emulator import engines, fastemu
from hlsflow.loading import load_keras_model
from hlsflow.state import outdir
from hlsflow import flow
if {default!r}:
    fastemu._keep_freed_memory = lambda: None  # as before: glibc's own thresholds
cfg = load_config(path={config!r}, out={out!r}, announce=False)
flow.convert(cfg)
keras_model = load_keras_model(cfg.keras_model)
engine = engines.fast_engine(cfg, outdir.require_project(cfg), lambda: keras_model, True, outdir.Caches(cfg.output_dir))
x, _ = mini_resnet.synthetic_dataset({samples}, seed=11)
keras_model.predict(x[:64], verbose=0)
engine.run(x[:8])  # numba's kernels loaded (or compiled) before the clock starts
best = None
for _ in range({repeats}):
    start = time.monotonic()
    engines.run_fast(engine, x, 2)
    spent = time.monotonic() - start
    best = spent if best is None else min(best, spent)
print(json.dumps({{"images_per_s": len(x) / best,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run(default: bool, out: Path, samples: int, repeats: int) -> dict:
    code = CHILD.format(repo=str(REPO), models=str(REPO / "models"), default=default, out=str(out),
                        config=str(REPO / "project" / "hls4ml_config.yml"), samples=samples, repeats=repeats)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="engine runs per process; the fastest counts")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of processes, alternating")
    parser.add_argument("--write", type=Path, help="the results file (default bench/results/allocator-<date>.md)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-allocator-")) / "ref"
    rows = []
    for i in range(args.rounds):
        for default in (True, False):
            found = run(default, out, args.samples, args.repeats)
            label = "glibc's thresholds (before)" if default else "freed memory kept (the engine now)"
            rows.append((i + 1, label, found["images_per_s"], found["peak_mb"]))
            print(f"round {i + 1}, {label}: {found['images_per_s']:,.0f} images/s, peak {found['peak_mb']:,.0f} MB",
                  flush=True)
    lines = [f"# The fast engine and glibc's allocator, {datetime.date.today().isoformat()}", "",
             f"Reference Mini-ResNet, {args.samples} synthetic images in batches of 100 (engines.run_fast, 2 threads), "
             f"the fastest of {args.repeats} runs per process; the Keras model loaded and run first, as in csim. "
             "Peak memory: the process's maximum resident set (conversion and TensorFlow included).", "",
             "| round | allocator | images/s | peak MB |", "|---|---|---|---|"]
    lines += [f"| {r} | {label} | {ips:,.0f} | {mb:,.0f} |" for r, label, ips, mb in rows]
    target = args.write or REPO / "bench" / "results" / f"allocator-{datetime.date.today().isoformat()}.md"
    target.write_text("\n".join(lines) + "\n")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
