"""Writes tests/data/tiny_cnn.keras and tiny_samples.npz: a small CNN a user might bring, for the
tests that run hlsflow on a model outside the checkout. Run inside the image (TF 2.15):
    docker run --rm -v "$PWD:$PWD" -w "$PWD" hlsflow:latest python tests/data/make_tiny_model.py
The task: which quadrant of an 8x8 image is brightest (4 classes), learnt to near 100%."""

from pathlib import Path

import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent


def dataset(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.3, (n, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 4, n)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 4 * r:4 * r + 4, 4 * c:4 * c + 4, 0] += rng.uniform(0.5, 1.0)
    return x, y


def main():
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((8, 8, 1), name="pixels")
    h = tf.keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    h = tf.keras.layers.Activation("relu", name="relu")(h)
    h = tf.keras.layers.MaxPooling2D(2, name="pool")(h)
    h = tf.keras.layers.Flatten(name="flat")(h)
    h = tf.keras.layers.Dense(4, name="fc")(h)
    out = tf.keras.layers.Activation("softmax", name="softmax")(h)
    model = tf.keras.Model(inp, out, name="tiny_cnn")
    model.compile(optimizer=tf.keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = dataset(2000, 0)
    model.fit(x, y, epochs=8, batch_size=64, verbose=0)
    xs, ys = dataset(64, 1)
    _, accuracy = model.evaluate(xs, ys, verbose=0)
    model.save(HERE / "tiny_cnn.keras")
    np.savez_compressed(HERE / "tiny_samples.npz", X=xs, y=ys.astype(np.int64))
    print(f"tiny_cnn: accuracy {accuracy:.1%} on {len(xs)} samples")


if __name__ == "__main__":
    main()
