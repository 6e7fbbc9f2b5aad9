"""Small stand-ins for the two models of issue 21 whose first flow and tune-precision fell short,
shared by tests/stages/test_init_types.py and tests/search/test_tune_widening.py. Seeded, trained
in seconds; samples keep only items whose top-1 has a margin (a near-tie flips on any rounding and
tests nothing).
- `conv_model`: a Conv1D net on unnormalised signals (about -55..95) with MaxPooling and a softmax
  head: every data-path type overflows ap_fixed<16,6>, the max pooling's accumulator too.
- `mlp_model`: an MLP whose inputs are ~N(0, 1000): a thousand times the default range, logits in
  the hundreds before its softmax (the softmax trap: hls4ml indexes its table by their top bits).
- `lsb_model`: ten logits that differ by a few weight LSBs: no data-path type is at fault, the
  weights' rounding is (also tests/search/test_cause_advice.py).
"""

from pathlib import Path

import numpy as np


def _margin_samples(model, x, y, n, path: Path):
    p = np.sort(model.predict(x, verbose=0), axis=1)
    keep = np.where(p[:, -1] - p[:, -2] > 0.1)[0][:n]
    np.savez(path, X=x[keep], y=y[keep])


def conv_model(root: Path) -> tuple:
    """(model path, samples path) of the Conv1D stand-in."""
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    n, length, channels, classes = 1200, 32, 3, 5
    y = rng.integers(0, classes, n)
    amplitude = rng.uniform(10, 60, (classes, channels))[y]  # each class its own amplitude per channel
    t = np.arange(length)
    x = (amplitude[:, None, :] * np.sin(0.4 * t[None, :, None] + rng.uniform(0, 6, (n, 1, channels)))
         + rng.normal(0, 8, (n, length, channels)) + 20).astype(np.float32)
    inp = tf.keras.Input((length, channels), name="signal")
    a = layers.Conv1D(8, 5, activation="relu", name="conv1")(inp)
    a = layers.MaxPooling1D(2, name="pool1")(a)
    a = layers.Conv1D(8, 3, activation="relu", name="conv2")(a)
    a = layers.Flatten(name="flat")(a)
    out = layers.Dense(classes, activation="softmax", name="head")(a)
    model = tf.keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    model.save(root / "conv.keras")
    _margin_samples(model, x, y, 200, root / "conv.npz")
    return root / "conv.keras", root / "conv.npz"


def mlp_model(root: Path) -> tuple:
    """(model path, samples path) of the MLP stand-in."""
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(8)
    rng = np.random.default_rng(8)
    x = rng.normal(0, 1000, (1500, 10)).astype(np.float32)
    y = (np.tanh(x / 1000) @ rng.normal(0, 1, (10, 4))).argmax(1)
    inp = tf.keras.Input((10,), name="features")
    a = layers.Dense(32, activation="relu", name="fc1")(inp)
    a = layers.Dense(16, activation="relu", name="fc2")(a)
    out = layers.Dense(4, activation="softmax", name="out")(a)
    model = tf.keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=40, batch_size=32, verbose=0)
    model.save(root / "mlp.keras")
    _margin_samples(model, x, y, 200, root / "mlp.npz")
    return root / "mlp.keras", root / "mlp.npz"


IO_TYPE = {"conv": "io_stream", "mlp": "io_parallel"}  # as a user would pick: streams for a CNN
MAKERS = {"conv": conv_model, "mlp": mlp_model}


def lsb_model(root: Path) -> tuple:
    """(model path, samples path): one Dense of ten logits whose weights differ by a few LSBs of
    ap_fixed<16,6>, no table; labels are Keras's own predictions."""
    import tensorflow as tf
    from tensorflow.keras import layers

    rng = np.random.default_rng(1)
    inp = tf.keras.Input((64,), name="features")
    model = tf.keras.Model(inp, layers.Dense(10, name="fc")(inp))
    model.get_layer("fc").set_weights([(0.1 + rng.normal(0, 0.002, (64, 10))).astype(np.float32),
                                       np.zeros(10, np.float32)])
    model.save(root / "lsb.keras")
    x = rng.uniform(0.5, 1.0, (200, 64)).astype(np.float32)
    np.savez(root / "lsb.npz", X=x, y=model.predict(x, verbose=0).argmax(1))
    return root / "lsb.keras", root / "lsb.npz"
