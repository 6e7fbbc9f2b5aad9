"""Training the reference Mini-ResNet, on CIFAR-10 when it is at hand, else on synthetic data.

Writes the model, a labelled sample set that `invoke csim` uses by default, and a metadata
file that says which data it was trained on (a synthetic model says so in all three).
"""

import json
import os
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np

from .. import console
from ..errors import FlowError
from ..files import REPO_ROOT


def _mini_resnet():
    sys.path.insert(0, str(REPO_ROOT / "models"))
    import mini_resnet

    return mini_resnet


class _CifarUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches are pickles: a dict of bytes, lists and one uint8 array. Only the
    globals such an array needs are found; any other (os.system, builtins.open, ...) is refused,
    so a file someone hands over as "CIFAR-10" cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise FlowError(f"The CIFAR-10 file names {module}.{name}, which a CIFAR-10 batch does not hold: give "
                            "the python-version tarball from the CIFAR-10 site or its extracted folder.")
        return super().find_class(module, name)


def _read_cifar_batches(batches):
    import io

    xs, ys = [], []
    for raw in batches:
        d = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
        xs.append(d[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.array(d[b"labels"]))
    return (np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys).astype(np.int64))


def load_cifar10(path=None):
    """CIFAR-10 as ((x_train, y_train), (x_test, y_test)) from a local copy, or None.

    `path` may be the python-version tarball or its extracted folder; without it, the Keras
    datasets cache is looked at. Nothing is downloaded: a lab machine may have no network.
    """
    candidates = [Path(path)] if path else [
        Path.home() / ".keras/datasets/cifar-10-batches-py",
        Path.home() / ".keras/datasets/cifar-10-python.tar.gz",
    ]
    for cand in candidates:
        if cand.is_dir() and (cand / "data_batch_1").exists():
            read = lambda name: (cand / name).read_bytes()  # noqa: E731
        elif cand.is_file() and tarfile.is_tarfile(cand):
            tar = tarfile.open(cand)
            members = {Path(m.name).name: m for m in tar.getmembers()}
            read = lambda name: tar.extractfile(members[name]).read()  # noqa: E731
        else:
            continue
        train = _read_cifar_batches(read(f"data_batch_{i}") for i in range(1, 6))
        test = _read_cifar_batches([read("test_batch")])
        return train, test
    if path:
        raise FlowError(f"No CIFAR-10 found at {path}: give the python-version tarball or its extracted folder.")
    return None


def train_model(model_path, samples_path, epochs=6, n_train=6000, n_samples=300, cifar=None, seed=0):
    import tensorflow as tf

    mr = _mini_resnet()
    tf.keras.utils.set_random_seed(seed)
    data = load_cifar10(cifar)
    if data is not None:
        dataset = "cifar10"
        (x_train, y_train), (x_test, y_test) = data
    else:
        dataset = "synthetic"
        console.warn("CIFAR-10 not found locally: training on the project's synthetic 10-class set instead.")
        x_train, y_train = mr.synthetic_dataset(n_train, seed=seed)
        x_test, y_test = mr.synthetic_dataset(n_samples, seed=seed + 1)
    console.step(f"Training the Mini-ResNet on {dataset} ({len(x_train)} images, {epochs} epochs)")
    model = mr.build_model(name=f"mini_resnet_{dataset}")
    model.compile(optimizer=tf.keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, validation_split=0.1,
              verbose=2 if not sys.stdout.isatty() else 1)
    x_s, y_s = x_test[:n_samples], y_test[:n_samples]
    _, accuracy = model.evaluate(x_s, y_s, verbose=0)

    model_path, samples_path = Path(model_path), Path(samples_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_model = model_path.with_name(model_path.stem + ".partial.keras")
    model.save(tmp_model)
    os.replace(tmp_model, model_path)
    tmp_samples = samples_path.with_name(samples_path.stem + ".partial.npz")
    np.savez_compressed(tmp_samples, X=x_s.astype(np.float32), y=y_s.astype(np.int64),
                        dataset=np.array(dataset))
    os.replace(tmp_samples, samples_path)
    meta = {
        "model": model_path.name,
        "dataset": dataset,
        "trained_on_synthetic_data": dataset == "synthetic",
        "seed": seed,
        "epochs": epochs,
        "train_images": int(len(x_train)),
        "samples": samples_path.name,
        "sample_accuracy": round(float(accuracy), 4),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
    }
    model_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    console.say(f"Wrote {model_path} ({dataset}, accuracy {accuracy:.1%} on {len(x_s)} held-out samples)")
    return meta
