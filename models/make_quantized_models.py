"""Builds the bundled quantization-aware models, trained briefly on scikit-learn's 8x8 digits
(the set ships inside scikit-learn, which the image has for QKeras; nothing is downloaded), with
pixels scaled to 0..1 and 300 held-out labelled samples:

- models/qkeras_mlp.keras: QDense layers with 6-bit weights, one of them with a power-of-two
  scale per output (alpha='auto_po2', which hls4ml turns into an ApplyAlpha layer), a
  quantized_relu and a quantized_bits activation, and a softmax;
- models/qkeras_cnn.keras: QConv2D, QActivation('quantized_relu'), MaxPooling2D, QDense, softmax;
- models/hgq_mlp.keras: an HGQ model (a bit width per weight and per activation, learned) saved
  as HGQ's proxy model, whose FixedPointQuantizer layers carry the types hls4ml uses;
- models/<name>_samples.npz beside each: X (N, 8, 8, 1) and y, the same held-out digits;
- models/quantized_models.json: what each was trained on and its held-out accuracy.

Run in the image (TensorFlow, QKeras and HGQ), with scikit-learn, which the image leaves out, from
wheels the host downloads (containers have no network):
  pip download --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
      -d build/sklearn-wheels scikit-learn==1.9.1 joblib==1.6.0 threadpoolctl==3.8.0 narwhals==2.29.0
  docker run --rm -v "$PWD:$PWD" -w "$PWD" hlsflow:latest sh -c 'pip install -q --no-index --no-deps \
      --target /tmp/sk build/sklearn-wheels/*.whl && PYTHONPATH=/tmp/sk python models/make_quantized_models.py'
"""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HELD_OUT = 300
SEED = 7
EPOCHS = 20


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1) in 0..1
    y = data.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    test, train = order[:HELD_OUT], order[HELD_OUT:]
    return (x[train], y[train]), (x[test], y[test])


def qkeras_mlp():
    import tensorflow as tf
    from qkeras import QActivation, QDense
    from tensorflow.keras import layers

    q6 = "quantized_bits(6,0,alpha=1)"
    inp = tf.keras.Input((8, 8, 1), name="pixels")
    a = layers.Flatten(name="flatten")(inp)
    a = QDense(32, kernel_quantizer=q6, bias_quantizer=q6, name="fc1")(a)
    a = QActivation("quantized_relu(6,2)", name="relu1")(a)
    # alpha='auto_po2': a power-of-two scale per output, which hls4ml applies after the Dense (ApplyAlpha)
    a = QDense(16, kernel_quantizer="quantized_bits(4,0,alpha='auto_po2')", bias_quantizer=q6, name="fc2")(a)
    a = QActivation("quantized_bits(8,3)", name="q2")(a)
    a = QDense(10, kernel_quantizer=q6, bias_quantizer=q6, name="fc3")(a)
    out = layers.Activation("softmax", name="softmax")(a)
    return tf.keras.Model(inp, out, name="qkeras_mlp")


def qkeras_cnn():
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense
    from tensorflow.keras import layers

    q6 = "quantized_bits(6,0,alpha=1)"
    inp = tf.keras.Input((8, 8, 1), name="pixels")
    a = QConv2D(8, 3, padding="same", kernel_quantizer=q6, bias_quantizer=q6, name="conv1")(inp)
    a = QActivation("quantized_relu(6,2)", name="relu1")(a)
    a = layers.MaxPooling2D(2, name="pool1")(a)
    a = QConv2D(8, 3, kernel_quantizer=q6, bias_quantizer=q6, name="conv2")(a)
    a = QActivation("quantized_relu(6,2)", name="relu2")(a)
    a = layers.Flatten(name="flatten")(a)
    a = QDense(10, kernel_quantizer=q6, bias_quantizer=q6, name="fc")(a)
    out = layers.Activation("softmax", name="softmax")(a)
    return tf.keras.Model(inp, out, name="qkeras_cnn")


def hgq_mlp():
    import tensorflow as tf
    from HGQ.layers import HDense, HQuantize, PFlatten

    beta = 3e-6  # the weight of the bit count in the loss: small, for accuracy first
    inp = tf.keras.Input((8, 8, 1), name="pixels")
    a = HQuantize(beta=beta, name="quantize")(inp)
    a = PFlatten(name="flatten")(a)
    a = HDense(24, activation="relu", beta=beta, name="fc1")(a)
    out = HDense(10, beta=beta, name="fc2")(a)
    return tf.keras.Model(inp, out, name="hgq_mlp")


def train(model, x, y, logits=False):
    import tensorflow as tf

    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss=loss, metrics=["accuracy"])
    callbacks = []
    if logits:  # HGQ records each activation's range while training (for the proxy model's types)
        from HGQ import ResetMinMax

        callbacks.append(ResetMinMax())
    model.fit(x, y, epochs=EPOCHS, batch_size=64, verbose=0, callbacks=callbacks)


def main() -> None:
    import sklearn
    import tensorflow as tf

    (x_train, y_train), (x_test, y_test) = digits()
    meta = {"dataset": "scikit-learn load_digits (8x8), pixels scaled to 0..1", "held_out": HELD_OUT, "seed": SEED,
            "epochs": EPOCHS, "tensorflow": tf.__version__, "scikit-learn": sklearn.__version__, "models": {}}
    for name, build, logits in (("qkeras_mlp", qkeras_mlp, False), ("qkeras_cnn", qkeras_cnn, False),
                                ("hgq_mlp", hgq_mlp, True)):
        tf.keras.utils.set_random_seed(SEED)
        model = build()
        train(model, x_train, y_train, logits)
        if logits:
            from HGQ import to_proxy_model, trace_minmax

            trace_minmax(model, x_train, cover_factor=1.0)  # the ranges the types must hold
            model = to_proxy_model(model)
        acc = float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean())
        model.save(HERE / f"{name}.keras")
        np.savez_compressed(HERE / f"{name}_samples.npz", X=x_test, y=y_test)
        meta["models"][name] = {"keras_accuracy_held_out": round(acc, 4), "parameters": int(model.count_params())}
    (HERE / "quantized_models.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
