"""Builds models/digits_cnn.keras and models/digits_samples.npz: a small CNN trained on
scikit-learn's 8x8 digits (the set ships inside scikit-learn; nothing is downloaded), pixels left
unnormalised (0..16) on purpose, so that fixed-point types sized for [-1, 1] data lose resolution.

scikit-learn is needed only here, not in the image:
  docker run --rm -v "$PWD:$PWD" -w "$PWD" hlsflow:latest \
      sh -c 'pip install -q --target /tmp/sk scikit-learn==1.5.2 && PYTHONPATH=/tmp/sk python models/make_digits_cnn.py'
"""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HELD_OUT = 300
SEED = 10


def main() -> None:
    import sklearn
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from tensorflow.keras import layers

    digits = load_digits()
    x = digits.images.astype(np.float32)[..., None]  # 0..16, not normalised
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    test, train = order[:HELD_OUT], order[HELD_OUT:]

    tf.keras.utils.set_random_seed(SEED)
    inp = tf.keras.Input((8, 8, 1), name="pixels")
    a = layers.Conv2D(8, 3, padding="same", name="conv1")(inp)
    a = layers.Activation("relu", name="relu1")(a)
    a = layers.MaxPooling2D(2, name="pool1")(a)
    a = layers.Conv2D(16, 3, padding="same", name="conv2")(a)
    a = layers.Activation("relu", name="relu2")(a)
    a = layers.Flatten(name="flatten")(a)
    a = layers.Dense(10, name="fc")(a)
    out = layers.Activation("softmax", name="softmax")(a)
    model = tf.keras.Model(inp, out, name="digits_cnn")
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[train], y[train], epochs=30, batch_size=64, verbose=0)
    _, acc = model.evaluate(x[test], y[test], verbose=0)
    model.save(HERE / "digits_cnn.keras")
    np.savez_compressed(HERE / "digits_samples.npz", X=x[test], y=y[test], dataset="sklearn-digits-held-out")
    meta = {"dataset": "scikit-learn load_digits (8x8, pixels 0..16, unnormalised)", "held_out": HELD_OUT,
            "seed": SEED, "keras_accuracy_held_out": round(float(acc), 4), "tensorflow": tf.__version__,
            "scikit-learn": sklearn.__version__}
    (HERE / "digits_cnn.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
