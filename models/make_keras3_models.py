"""Builds the bundled Keras 3 models of the keras3 lane (docker/keras3/), saved by Keras 3.15 on JAX,
trained briefly on scikit-learn's 8x8 digits with the same split as make_quantized_models.py
(pixels scaled to 0..1, the same 300 held-out labelled samples):

- models/keras3_mlp.keras: Flatten, Dense(32, relu), Dense(16, relu), Dense(10), softmax;
- models/hgq2_mlp.keras: the same shape in HGQ2's QDense layers (a bit width per weight and per
  input, learned; weights kbi with SAT_SYM, inputs kif with WRAP), logits out: its quantizers set
  every type, which hls4ml reads from the model;
- models/qkeras3_cnn.keras: a small QKeras v3 CNN, QConv2D(4, 3x3), QActivation(quantized_relu(6,2)),
  Flatten, QDense(10), 6-bit quantized_bits weights and biases (alpha=1), logits out;
- models/<name>_samples.npz beside each: X (300, 8, 8, 1) and y, the held-out digits;
- models/keras3_models.json: what each was trained on and its held-out accuracy.

Run in the keras3 image, with scikit-learn from wheels the host downloads (containers have no network):
  pip download --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
      -d build/sklearn-wheels scikit-learn==1.9.1 joblib==1.6.0 threadpoolctl==3.8.0 narwhals==2.29.0
  docker run --rm -v "$PWD:$PWD" -w "$PWD" hlsflow-keras3:latest sh -c 'pip install -q --no-index --no-deps \
      --target /tmp/sk build/sklearn-wheels/*.whl && PYTHONPATH=/tmp/sk python models/make_keras3_models.py'
(model names as arguments make only those, e.g. qkeras3_cnn; the others' files are then left as they are).
"""

import json
from pathlib import Path

import numpy as np

from make_quantized_models import EPOCHS, HELD_OUT, SEED, digits

HERE = Path(__file__).resolve().parent


def keras3_mlp():
    import keras
    from keras import layers

    inp = keras.Input((8, 8, 1), name="pixels")
    a = layers.Flatten(name="flatten")(inp)
    a = layers.Dense(32, activation="relu", name="fc1")(a)
    a = layers.Dense(16, activation="relu", name="fc2")(a)
    a = layers.Dense(10, name="fc3")(a)
    out = layers.Activation("softmax", name="softmax")(a)
    return keras.Model(inp, out, name="keras3_mlp")


def hgq2_mlp():
    import keras
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import QDense

    with QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"), \
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"), \
            LayerConfigScope(enable_ebops=True, beta0=1e-5):
        inp = keras.Input((8, 8, 1), name="pixels")
        a = keras.layers.Flatten(name="flatten")(inp)
        a = QDense(32, activation="relu", name="fc1")(a)
        a = QDense(16, activation="relu", name="fc2")(a)
        out = QDense(10, name="fc3")(a)
        return keras.Model(inp, out, name="hgq2_mlp")


def qkeras3_cnn():
    import keras
    from qkeras import QActivation, QConv2D, QDense
    from qkeras.quantizers import quantized_bits, quantized_relu

    def bits():
        return quantized_bits(6, 0, alpha=1)

    inp = keras.Input((8, 8, 1), name="pixels")
    a = QConv2D(4, (3, 3), kernel_quantizer=bits(), bias_quantizer=bits(), name="conv1")(inp)
    a = QActivation(quantized_relu(6, 2), name="relu1")(a)
    a = keras.layers.Flatten(name="flatten")(a)
    out = QDense(10, kernel_quantizer=bits(), bias_quantizer=bits(), name="fc2")(a)
    return keras.Model(inp, out, name="qkeras3_cnn")


def main(only=()) -> None:
    import importlib.metadata

    import hgq
    import keras
    import sklearn

    keras.utils.set_random_seed(SEED)
    (x, y), (x_test, y_test) = digits()
    record = {"dataset": "scikit-learn load_digits (8x8), pixels scaled to 0..1", "held_out": HELD_OUT,
              "seed": SEED, "epochs": EPOCHS, "keras": keras.__version__, "backend": keras.backend.backend(),
              "scikit-learn": sklearn.__version__, "hgq2": hgq.__version__,
              "qkeras-v3": importlib.metadata.version("qkeras-v3"), "models": {}}
    if only and (HERE / "keras3_models.json").is_file():  # the other models' records stay
        record["models"] = json.loads((HERE / "keras3_models.json").read_text())["models"]
    for name, make, logits in (("keras3_mlp", keras3_mlp, False), ("hgq2_mlp", hgq2_mlp, True),
                               ("qkeras3_cnn", qkeras3_cnn, True)):
        if only and name not in only:
            continue
        model = make()
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits), metrics=["accuracy"])
        model.fit(x, y, epochs=EPOCHS, batch_size=32, verbose=0)
        accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test))
        model.save(HERE / f"{name}.keras")
        np.savez_compressed(HERE / f"{name}_samples.npz", X=x_test, y=y_test)
        record["models"][name] = {"keras_accuracy_held_out": round(accuracy, 4),
                                  "parameters": int(model.count_params())}
        print(f"{name}: held-out accuracy {accuracy:.4f}")
    (HERE / "keras3_models.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
