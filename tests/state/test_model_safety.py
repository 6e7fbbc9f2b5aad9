"""A model someone hands a user is data: `hlsflow init` and `hlsflow convert` refuse one that carries
Python code (a Lambda layer's bytecode, a pickle in a .keras archive) in one sentence, before any of
it runs, and leave the user's folder as it was. Every model here writes a marker file if its code
ever runs; the fixture first proves that it does, run directly or through a plain Keras load."""

import io
import json
import zipfile

import numpy as np
import pytest

from test_safety import assert_one_sentence, folder_state, hlsflow


def _writes(marker):
    """A function that creates `marker` when it is called (its path travels as a default value, so
    it is saved with the function's bytecode)."""
    return lambda t, path=str(marker): (open(path, "w").close(), t)[1]


class _Unpickled:
    """Creates the marker when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's folder: models/ with the models below and samples; {model: the marker file its code
    would write}, each model its own, so that one that runs cannot fail the next test."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("user")
    models = root / "models"
    models.mkdir()
    markers = {name: models / f"PWNED-{name}" for name in
               ("lambda.h5", "arch.json", "lambda.keras", "nested.h5", "wrapped.h5", "pickle.keras")}
    layers = tf.keras.layers

    def lambda_model(marker, name=None):
        inp = tf.keras.Input((4,))
        return tf.keras.Model(inp, layers.Lambda(_writes(marker), name="sneaky")(layers.Dense(2)(inp)), name=name)

    # Building a Lambda model calls its function: those markers are removed below.
    lambda_model(markers["lambda.h5"]).save(models / "lambda.h5")
    lambda_model(markers["lambda.keras"]).save(models / "lambda.keras")
    model = lambda_model(markers["arch.json"])
    (models / "arch.json").write_text(model.to_json())
    model.save_weights(models / "arch.weights.h5")
    inp = tf.keras.Input((4,))
    tf.keras.Model(inp, layers.Dense(2)(lambda_model(markers["nested.h5"], "inner")(inp))).save(models / "nested.h5")
    inp = tf.keras.Input((3, 4))
    wrapped = layers.TimeDistributed(layers.Lambda(_writes(markers["wrapped.h5"]), name="sneaky"), name="wrapper")
    tf.keras.Model(inp, wrapped(inp)).save(models / "wrapped.h5")
    inp = tf.keras.Input((4,))
    unit = tf.keras.Model(inp, layers.UnitNormalization(name="unit")(layers.Dense(2)(inp)), name="inner")
    unit.save(models / "unit.keras")
    tf.keras.Model(inp, layers.Dense(2)(unit(inp))).save(models / "nested_unit.keras")  # hls4ml converts it in line
    plain = models / "plain.keras"
    tf.keras.Model(inp, layers.Dense(2)(inp)).save(plain)
    weights = io.BytesIO()  # Keras 2.15 reads a model.weights.npz in a .keras archive with allow_pickle=True
    np.savez(weights, __root__=np.array([_Unpickled(markers["pickle.keras"])], dtype=object))
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(models / "pickle.keras", "w") as archive:
        for name in source.namelist():
            if name != "model.weights.h5":
                archive.writestr(name, source.read(name))
        archive.writestr("model.weights.npz", weights.getvalue())
    plain.unlink()
    np.savez(models / "samples.npz", X=np.random.default_rng(0).uniform(0, 1, (8, 4)).astype(np.float32))
    for marker in markers.values():
        marker.unlink(missing_ok=True)

    # Sanity: the code in these files does write the marker when it runs, so the tests can fail.
    from keras.src.utils.generic_utils import func_load  # Keras's own unmarshalling of a Lambda's bytecode

    saved = json.loads((models / "arch.json").read_text())["config"]["layers"][-1]["config"]
    assert saved["name"] == "sneaky"
    func_load(saved["function"])(0)  # (code, defaults, closure) as Keras's Lambda hands them over
    assert markers["arch.json"].exists(), "the bytecode arch.json holds did not write its marker"
    markers["arch.json"].unlink()
    for name, options in (("lambda.h5", {}), ("nested.h5", {}), ("wrapped.h5", {}),
                          ("lambda.keras", {"safe_mode": False}),
                          ("pickle.keras", {"safe_mode": True})):  # Keras's safe mode does not stop it
        try:
            tf.keras.models.load_model(models / name, compile=False, **options)
        except Exception:  # noqa: BLE001 -- the pickle is no weights: Keras fails after it has run
            pass
        assert markers[name].exists(), f"a plain Keras load of {name} did not run its code"
        markers[name].unlink()
    return root, markers


LAMBDA = "has a Lambda layer 'sneaky' (Python code inside the model)"
CASES = [  # (model, words the one sentence holds)
    ("lambda.h5", LAMBDA),
    ("arch.json", LAMBDA),  # with arch.weights.h5 beside it
    ("lambda.keras", LAMBDA),
    ("nested.h5", "has a Lambda layer 'inner/sneaky'"),
    ("wrapped.h5", "has a Lambda layer 'wrapper/sneaky'"),
    ("pickle.keras", "holds model.weights.npz, which a model Keras saves as .keras does not"),
]


@pytest.mark.parametrize("command", ["init", "convert"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_model_with_code_is_refused_before_it_runs(user, case, command):
    root, markers = user
    model, words = case
    marker = markers[model]
    assert not marker.exists(), "an earlier test ran the model's code"
    before = folder_state(root)
    args = ["--samples", "models/samples.npz"] if command == "init" else []
    proc = hlsflow(command, "--model", f"models/{model}", *args, cwd=root)
    assert not marker.exists(), f"{command} ran the code in {model}"
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, words)
    assert folder_state(root) == before


@pytest.mark.parametrize("model", ["unit.keras", "nested_unit.keras"])
def test_init_refuses_a_layer_hls4ml_cannot_convert_as_convert_does(user, model):
    root, _ = user
    before = folder_state(root)
    init = hlsflow("init", "--model", f"models/{model}", "--samples", "models/samples.npz", cwd=root)
    convert = hlsflow("convert", "--model", f"models/{model}", cwd=root)
    for proc in (init, convert):
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert_one_sentence(proc, "Layer 'unit' (UnitNormalization) cannot be converted by hls4ml")
    assert init.stderr.strip().splitlines()[-1] == convert.stderr.strip().splitlines()[-1]
    assert folder_state(root) == before
