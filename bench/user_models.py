"""The models hls4ml users bring, tried as a new user would: for each, an empty folder outside the
checkout, `hlsflow init --model M --samples S`, `hlsflow flow`, then `hlsflow csim --cross-check N
--force` (the fast engine against hls4ml's C++ emulation, bit for bit). Run inside the image:
`docker run --rm -v "$PWD:/opt/hlsflow" -w /opt/hlsflow hlsflow:latest python bench/user_models.py`.

Prints one table (layers, exit codes, engine, csim's figure, images/s, cross-check) and writes
bench/results/user-models-<date>.md. The Keras models are built and briefly trained here, seeded;
the QKeras and HGQ ones are the bundled models/*.keras that models/make_quantized_models.py makes.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _fit(model, x, y, loss):
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    return model


def _classes(x, n):
    """Labels from a fixed random projection of the inputs: a task a small model can learn."""
    w = np.random.default_rng(1).normal(size=(int(np.prod(x.shape[1:])), n))
    return (x.reshape(len(x), -1) @ w).argmax(1)


def keras_models():
    """(name, io_type, build(root) -> (model path, samples path)) for the plain-Keras models."""
    import tensorflow as tf
    from tensorflow.keras import layers as L

    def save(root, name, model, x, y):
        model.save(root / f"{name}.keras")
        np.savez(root / f"{name}_samples.npz", X=x.astype(np.float32), y=y)
        return root / f"{name}.keras", root / f"{name}_samples.npz"

    def mlp_dropout(root):
        tf.keras.utils.set_random_seed(1)
        x = np.random.default_rng(2).normal(0, 1, (600, 16)).astype(np.float32)
        y = _classes(x, 5)
        m = tf.keras.Sequential([tf.keras.Input((16,)), L.Dense(32, activation="relu"), L.Dropout(0.2),
                                 L.Dense(16, activation="relu"), L.Dropout(0.2), L.Dense(5, activation="softmax")])
        return save(root, "mlp_dropout", _fit(m, x, y, "sparse_categorical_crossentropy"), x[:300], y[:300])

    def cnn_dropout(root):
        tf.keras.utils.set_random_seed(1)
        x = np.random.default_rng(3).uniform(0, 1, (600, 12, 12, 1)).astype(np.float32)
        y = _classes(x, 4)
        m = tf.keras.Sequential([tf.keras.Input((12, 12, 1)), L.Conv2D(6, 3, activation="relu"), L.MaxPooling2D(2),
                                 L.Dropout(0.25), L.Flatten(), L.Dense(4, activation="softmax")])
        return save(root, "cnn_dropout", _fit(m, x, y, "sparse_categorical_crossentropy"), x[:300], y[:300])

    def conv1d_sigmoid(root):
        tf.keras.utils.set_random_seed(1)
        x = np.random.default_rng(4).normal(0, 1, (600, 24, 4)).astype(np.float32)
        y = (_classes(x, 2) == 1).astype(np.float32)
        m = tf.keras.Sequential([tf.keras.Input((24, 4)), L.Conv1D(8, 3, activation="relu"),
                                 L.Conv1D(8, 3, activation="relu"), L.MaxPooling1D(2), L.Flatten(),
                                 L.Dense(1, activation="sigmoid")])
        return save(root, "conv1d_sigmoid", _fit(m, x, y, "binary_crossentropy"), x[:300], y[:300])

    def dwsep_cnn(root):
        tf.keras.utils.set_random_seed(1)
        x = np.random.default_rng(5).uniform(0, 1, (600, 12, 12, 3)).astype(np.float32)
        y = _classes(x, 4)
        m = tf.keras.Sequential([tf.keras.Input((12, 12, 3)), L.DepthwiseConv2D(3, activation="relu"),
                                 L.SeparableConv2D(8, 3, activation="relu"), L.GlobalAveragePooling2D(),
                                 L.Dense(4, activation="softmax")])
        return save(root, "dwsep_cnn", _fit(m, x, y, "sparse_categorical_crossentropy"), x[:300], y[:300])

    def lstm(root):
        tf.keras.utils.set_random_seed(1)
        x = np.random.default_rng(6).normal(0, 1, (600, 8, 4)).astype(np.float32)
        y = _classes(x, 3)
        m = tf.keras.Sequential([tf.keras.Input((8, 4)), L.LSTM(8), L.Dense(3, activation="softmax")])
        return save(root, "lstm", _fit(m, x, y, "sparse_categorical_crossentropy"), x[:100], y[:100])

    return [("Keras MLP + Dropout", "io_parallel", mlp_dropout), ("Keras CNN + Dropout", "io_stream", cnn_dropout),
            ("Conv1D, sigmoid output", "io_stream", conv1d_sigmoid),
            ("depthwise-separable CNN", "io_stream", dwsep_cnn), ("LSTM", "io_parallel", lstm)]


def bundled_models():
    """The QKeras and HGQ models models/make_quantized_models.py writes, each with its samples."""
    found = []
    for model in sorted((REPO / "models").glob("*.keras")):
        samples = model.with_name(model.stem + "_samples.npz")
        if samples.is_file() and any(word in model.stem for word in ("qkeras", "hgq")):
            found.append((model.stem, "io_stream" if "cnn" in model.stem else "io_parallel",
                          lambda root, m=model, s=samples: (m, s)))
    return found


def run(cmd, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "hlsflow", *map(str, cmd)], cwd=cwd, env=env, capture_output=True,
                          text=True)
    return proc, time.monotonic() - start


def csim_result(root: Path) -> dict:
    found = sorted(root.rglob("csim.json"))
    return json.loads(found[0].read_text()) if found else {}


def layers_of(model_path) -> str:
    from hlsflow.loading import load_keras_model

    names = [type(layer).__name__ for layer in load_keras_model(model_path).layers]
    return ", ".join(dict.fromkeys(n for n in names if n != "InputLayer"))


def figure(result: dict) -> str:
    metric = result.get("metric", "top1")
    if metric == "error":
        return f"max abs error {result.get('max_abs_error', result.get('max_abs_diff')):.3g}"
    value = result.get("agreement", result.get("top1_agreement"))
    return f"{value:.1%} ({metric})" if value is not None else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cross-check", type=int, default=50, help="samples through both engines")
    args = parser.parse_args()
    rows = []
    for name, io_type, make in keras_models() + bundled_models():
        root = Path(tempfile.mkdtemp(prefix="user-model-"))
        print(f"== {name}", flush=True)
        model, samples = make(root)
        steps = {}
        for step, cmd in (("init", ["init", "--model", model, "--samples", samples, "--io-type", io_type,
                                    "--config", root / "hls4ml_config.yml"]),
                          ("flow", ["flow", "--config", root / "hls4ml_config.yml"]),
                          ("cross-check", ["csim", "--config", root / "hls4ml_config.yml", "--cross-check",
                                           args.cross_check, "--force"])):
            if step == "cross-check" and csim_result(root).get("engine") == "cpp":
                steps[step] = ("n/a", 0.0)  # nothing to compare: the design runs on hls4ml's C++ alone
                continue
            proc, seconds = run(cmd, root)
            steps[step] = (proc.returncode, seconds)
            if proc.returncode:
                print(f"   {step} exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            if proc.returncode and step != "cross-check":
                break
        result = csim_result(root)
        checked = result.get("cross_check")
        rows.append((name, layers_of(model), io_type,
                     " / ".join(f"{code}" for code, _ in steps.values()),
                     result.get("engine", "-"), figure(result) if result else "-",
                     result.get("images_per_second", "-"),
                     "-" if not checked else ("identical" if checked.get("identical") else "DIFFERS")
                     + f" ({checked.get('samples')})"))
        print(f"   {rows[-1][3:]}", flush=True)
    head = ["model", "Keras layers", "io", "exit init / flow / cross-check", "engine", "csim figure", "images/s",
            "cross-check"]
    from hlsflow import console

    table = console.table(head, rows)
    print(table)
    out = REPO / "bench" / "results" / f"user-models-{datetime.date.today()}.md"
    out.write_text(f"# Models users bring ({datetime.date.today()})\n\n`python bench/user_models.py` in the image; "
                   "each model in an empty folder: init, flow, csim --cross-check.\n\n```\n" + table + "\n```\n")
    print(f"Written {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
