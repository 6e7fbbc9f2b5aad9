"""`invoke kernel-signatures`: hlsflow/emulator/kernel_signatures.txt, the kernels the image
compiles ahead of time, written from what the fast engine compiles for the bundled models and the
tests' small CNN. Run it (in the image) after a change to kernels/ or to how the engine calls
it; tests/image/test_user_project.py fails while the image would still compile on first use."""

from ..files import REPO_ROOT

# (config or None, model, overrides): the bundled example and models, and the small CNN of the
# tests; HGQ's heterogeneous activations need io_parallel, as `hlsflow init` writes for them.
MODELS = (("project/hls4ml_config.yml", "models/model_2_15.keras", {}), (None, "models/digits_cnn.keras", {}),
          (None, "models/qkeras_cnn.keras", {}), (None, "models/qkeras_mlp.keras", {"io_type": "io_parallel"}),
          (None, "models/hgq_mlp.keras", {"io_type": "io_parallel"}), (None, "tests/data/tiny_cnn.keras", {}))


def _layer_kinds(scratch) -> list:
    """(None, model, overrides) for small models, made here with random weights, whose layers the
    files above lack: BatchNormalization (the jet-tagging MLP of hls4ml's tutorial has three),
    Conv1D with BatchNormalization, a depthwise-separable convolution, and a type wide enough
    for the 64-bit kernels. Without them each new machine compiles those kernels on first use."""
    import tensorflow as tf
    from tensorflow.keras import layers as L

    tf.keras.utils.set_random_seed(0)
    made = {
        "bn_mlp": tf.keras.Sequential([tf.keras.Input((16,)), L.Dense(32), L.BatchNormalization(), L.Activation("relu"),
                                       L.Dense(5, activation="softmax")]),
        "bn_conv1d": tf.keras.Sequential([tf.keras.Input((16, 3)), L.Conv1D(4, 3), L.BatchNormalization(),
                                          L.Activation("relu"), L.Flatten(), L.Dense(3)]),
        "separable": tf.keras.Sequential([tf.keras.Input((8, 8, 2)), L.DepthwiseConv2D(3), L.Conv2D(4, 1),
                                          L.Flatten(), L.Dense(3)]),
    }
    rows = []
    for name, model in made.items():
        for layer in model.layers:  # BatchNormalization's statistics away from 0 and 1, as after training
            if isinstance(layer, L.BatchNormalization):
                layer.set_weights([w + 0.5 for w in layer.get_weights()])
        path = f"{scratch}/{name}.keras"
        model.save(path)
        rows.append((None, path, {"io_type": "io_stream"}))
        if name != "separable":  # hls4ml 1.3.0 has no io_parallel depthwise under Resource, init's default here
            rows.append((None, path, {"io_type": "io_parallel"}))
    rows.append((None, f"{scratch}/bn_mlp.keras", {"io_type": "io_parallel", "precision": "ap_fixed<40,16>"}))
    return rows


def record(scratch) -> int:
    """Emulates each of MODELS on a few random samples (its project written under `scratch`) and
    writes the signatures compiled meanwhile; returns how many."""
    import numpy as np

    from .. import library
    from ..emulator import precompile

    for i, (config, model, overrides) in enumerate(MODELS + tuple(_layer_kinds(scratch))):
        cfg = library.load_config(REPO_ROOT / config if config else None, model=REPO_ROOT / model,
                                  out=f"{scratch}/{i}", **overrides)
        hls_model = library.convert(cfg).hls_model
        shape = tuple(hls_model.get_input_variables()[0].shape)
        library.emulate(hls_model, np.random.default_rng(0).uniform(-1, 1, (4, *shape)).astype(np.float32))
    lines = precompile.in_use()
    precompile.SIGNATURES.write_text(
        "# Written by `invoke kernel-signatures` (hlsflow/dev/kernel_signatures.py): the kernels the image\n"
        "# compiles ahead of time, one signature a line, as numba names the argument types.\n"
        + "".join(f"{line}\n" for line in lines))
    return len(lines)
