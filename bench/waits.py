"""What users wait on (issue 41), timed as a user runs it: the installed host `hlsflow`, one
container per command, from an empty folder outside the checkout. Each goal is a ratio to a
baseline timed in the same run, so a busy machine moves both sides:

  - an empty container start (`docker run --rm IMAGE true`) against `check`, `init`, `plan`;
  - one `convert csim` of a model against `tune-precision` of the same model;
  - one `flow` of a small MLP against a 4-point `sweep` of it on 2 workers.

With `--baseline-image REF` every figure is timed again on that image (e.g. the previous commit's
`hlsflow:0.2.0-<sha>`), side by side; with `--warm SECONDS` again on `--image` with HLSFLOW_WARM set
(cli/warm.py: a command after the first in the same folder and mounts is served by a container that
has TensorFlow imported). `check again` and `flow --force` are the second command of their kind in
the folder: what a user's loop costs once the first has run. Run on the host, from the checkout:

    .venv-host/bin/python bench/waits.py [--image hlsflow:latest] [--baseline-image REF] [--warm 600] [--all]

The models are made here, seeded, in the image (like those issue 41 names): a 16-input MLP on
inputs ~N(0, 1000), a jet-tagging MLP with BatchNormalization and Dropout, a small Conv1D
classifier; `--all` adds the bundled digits CNN. Writes bench/results/waits-<date>.md.
"""

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.run import machine  # noqa: E402

HLSFLOW = shutil.which("hlsflow", path=str(REPO / ".venv-host" / "bin")) or "hlsflow"

MAKE_MODELS = r"""
import numpy as np, tensorflow as tf
from tensorflow.keras import layers as L

def classes(x, n, seed):
    w = np.random.default_rng(seed).normal(size=(int(np.prod(x.shape[1:])), n))
    return (x.reshape(len(x), -1) @ w).argmax(1)

def save(name, model, x, y):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    model.save(f"{name}.keras")
    np.savez(f"{name}_samples.npz", X=x[:300].astype(np.float32), y=y[:300])

tf.keras.utils.set_random_seed(1)
x = np.random.default_rng(1).normal(0, 1000, (900, 16)).astype(np.float32)
save("wide_mlp", tf.keras.Sequential([tf.keras.Input((16,)), L.Dense(32, activation="relu"),
     L.Dense(16, activation="relu"), L.Dense(5, activation="softmax")]), x, classes(x, 5, 2))
x = np.random.default_rng(3).normal(0, 1, (900, 16)).astype(np.float32)
save("jet_mlp", tf.keras.Sequential([tf.keras.Input((16,)), L.Dense(64), L.BatchNormalization(),
     L.Activation("relu"), L.Dropout(0.2), L.Dense(32), L.BatchNormalization(), L.Activation("relu"),
     L.Dropout(0.2), L.Dense(32, activation="relu"), L.Dense(5, activation="softmax")]), x, classes(x, 5, 4))
x = np.random.default_rng(5).normal(0, 1, (900, 32, 3)).astype(np.float32)
save("conv1d", tf.keras.Sequential([tf.keras.Input((32, 3)), L.Conv1D(8, 3, activation="relu"),
     L.MaxPooling1D(2), L.Conv1D(8, 3, activation="relu"), L.Flatten(), L.Dense(4, activation="softmax")]),
     x, classes(x, 4, 6))
"""


def run(cmd, cwd, env) -> tuple:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.monotonic() - start, proc


def timed(cmd, cwd, env, label) -> float:
    seconds, proc = run(cmd, cwd, env)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"  {label}: exit {proc.returncode}: {last}", file=sys.stderr)
        return float("nan")
    print(f"  {label}: {seconds:.1f} s", file=sys.stderr)
    return seconds


def figures(image: str, models: list, made: Path, root: Path, warm=None) -> dict:
    """Every timing for one image, each in a folder of its own under `root`; with HLSFLOW_WARM=`warm`
    when given."""
    root.mkdir()
    env = dict(os.environ, HLSFLOW_IMAGE=image)
    env.pop("HLSFLOW_CONFIG", None)
    env.pop("HLSFLOW_WARM", None)
    if warm:
        env["HLSFLOW_WARM"] = str(warm)
    fig = {}
    starts = []
    for _ in range(3):
        starts.append(run(["docker", "run", "--rm", image, "true"], root, env)[0])
    fig["empty start"] = statistics.median(starts)
    print(f"  empty start: {fig['empty start']:.2f} s (median of 3)", file=sys.stderr)

    small = root / "small"
    shutil.copytree(made, small)
    m, s = "jet_mlp.keras", "jet_mlp_samples.npz"
    fig["init"] = timed([HLSFLOW, "init", "--model", m, "--samples", s], small, env, "init")
    fig["check"] = timed([HLSFLOW, "check"], small, env, "check")
    fig["check again"] = timed([HLSFLOW, "check"], small, env, "check again")
    fig["plan"] = timed([HLSFLOW, "plan"], small, env, "plan")
    fig["flow"] = timed([HLSFLOW, "flow"], small, env, "flow")
    fig["flow --force"] = timed([HLSFLOW, "flow", "--force"], small, env, "flow --force")
    (small / "grid.yml").write_text("ReuseFactor: [1, 2, 4, 8]\n")
    fig["sweep 4 points"] = timed([HLSFLOW, "sweep", "--grid", "grid.yml", "--workers", "2"], small, env,
                                  "sweep")
    for name in models:
        work = root / f"tune-{name}"
        shutil.copytree(made, work)
        flags = ["--model", f"{name}.keras", "--samples", f"{name}_samples.npz"]
        timed([HLSFLOW, "init", *flags], work, env, f"{name} init")
        fig[f"{name}: convert csim"] = timed([HLSFLOW, "convert", "csim"], work, env, f"{name} convert csim")
        fig[f"{name}: tune-precision"] = timed([HLSFLOW, "tune-precision"], work, env, f"{name} tune")
    return fig


def goals(fig: dict, models: list) -> list:
    """(goal, measured ratio or seconds, limit) as issue 41 states them."""
    rows = [("check / empty start", fig["check"] / fig["empty start"], 3.0),
            ("check again / empty start", fig["check again"] / fig["empty start"], 3.0),
            ("sweep 4 points on 2 workers / flow", fig["sweep 4 points"] / fig["flow"], 1.2),
            ("flow on a small model, s", fig["flow"], 5.0),
            ("flow --force again on it, s", fig["flow --force"], 5.0)]
    rows += [(f"{n}: tune-precision / convert csim", fig[f"{n}: tune-precision"] / fig[f"{n}: convert csim"], 2.5)
             for n in models]
    return rows


def render(results: dict, models: list) -> str:
    names = list(results)
    keys = list(next(iter(results.values())))
    out = [f"# What users wait on, {datetime.date.today()}", "",
           f"Machine: {machine()}. One run each (empty start: median of 3), host `hlsflow` -> one container per "
           "command (with HLSFLOW_WARM: a warm container per folder and mounts), from empty folders outside the "
           "checkout. Other work may have shared the machine; "
           "each goal is a ratio to a baseline timed in the same run.", "",
           "| seconds | " + " | ".join(f"`{n}`" for n in names) + " |",
           "|---|" + "---|" * len(names)]
    out += [f"| {k} | " + " | ".join(f"{results[n][k]:.1f}" for n in names) + " |" for k in keys]
    out += ["", "| goal (issue 41) | " + " | ".join(f"`{n}`" for n in names) + " | limit |",
            "|---|" + "---|" * len(names) + "---|"]
    per = {n: goals(results[n], models) for n in names}
    for i, (label, _, limit) in enumerate(per[names[0]]):
        cells = []
        for n in names:
            v = per[n][i][1]
            cells.append(f"{v:.2f} {'met' if v <= limit else 'NOT met'}")
        out.append(f"| {label} | " + " | ".join(cells) + f" | {limit} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=os.environ.get("HLSFLOW_IMAGE", "hlsflow:latest"))
    ap.add_argument("--baseline-image")
    ap.add_argument("--all", action="store_true", help="also tune the bundled digits CNN")
    ap.add_argument("--warm", type=float, help="also time --image with HLSFLOW_WARM set to this many seconds")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"waits-{datetime.date.today()}.md")
    args = ap.parse_args()
    models = ["wide_mlp", "jet_mlp", "conv1d"] + (["digits_cnn"] if args.all else [])
    with tempfile.TemporaryDirectory(prefix="hlsflow-waits-") as tmp:
        root = Path(tmp)
        (root / "models").mkdir()
        subprocess.run(["docker", "run", "--rm", "-v", f"{root / 'models'}:/m", "-w", "/m", "--user",
                        f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp", args.image, "python", "-c", MAKE_MODELS],
                       check=True, capture_output=True)
        if args.all:
            for f in ("digits_cnn.keras", "digits_samples.npz"):
                shutil.copy(REPO / "models" / f, root / "models" / f)
            (root / "models" / "digits_samples.npz").rename(root / "models" / "digits_cnn_samples.npz")
        results = {}
        runs = [(image, image, None) for image in (args.baseline_image, args.image) if image]
        if args.warm:
            runs.append((f"{args.image}, HLSFLOW_WARM={args.warm:g}", args.image, args.warm))
        for name, image, warm in runs:
            print(f"{name}:", file=sys.stderr)
            folder = root / f"{len(results)}-{image.replace('/', '_').replace(':', '_')}"
            results[name] = figures(image, models, root / "models", folder, warm=warm)
    text = render(results, models)
    print(text)
    args.out.write_text(text)
    print(f"Wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
