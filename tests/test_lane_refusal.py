"""Inside an image, natively (a user who runs `docker run IMAGE convert ...` or HLSFLOW_NATIVE=1, where
the host's lane choice never ran): a model saved by the other lane's Keras ends in one sentence
naming the lane to use, and nothing is written. Runs in either image: the reference image gets the
bundled Keras 3 MLP, the keras3 image the bundled Keras 2.15 model."""

import shutil
from pathlib import Path

from hlsflow.loading import keras3_lane
from state.test_safety import assert_one_sentence, folder_state, hlsflow

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_other_lanes_model_is_one_sentence_naming_the_lane(tmp_path):
    if keras3_lane():
        model, saved_by, lane = "qkeras_mlp.keras", "Keras 2.15.0", "reference"
    else:
        model, saved_by, lane = "keras3_mlp.keras", "Keras 3.15.1", "keras3"
    shutil.copy(MODELS / model, tmp_path / model)
    before = folder_state(tmp_path)
    proc = hlsflow("convert", "--model", model, "--out", "build/m", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, f"was saved by {saved_by}", f"run it in the {lane} lane", f"--lane {lane}")
    assert folder_state(tmp_path) == before


def test_known_layer_name_from_another_module_is_one_sentence(tmp_path):
    """A layer whose class name is QKeras's (QDense) but whose module is neither Keras's nor a
    quantization library this lane has: named with its module (it once ended in an empty 'ERROR: ')."""
    import json
    import zipfile

    model = "keras3_mlp.keras" if keras3_lane() else "qkeras_mlp.keras"
    with zipfile.ZipFile(MODELS / model) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    layer = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "fc1")
    layer.update(module="mylib.layers", class_name="QDense", registered_name="mylib>QDense")
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    before = folder_state(tmp_path)
    proc = hlsflow("convert", "--model", "m.keras", "--out", "build/m", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, "has the layer QDense of the Python module mylib.layers in 'fc1'")
    assert folder_state(tmp_path) == before


def test_versions_name_the_lanes_keras(tmp_path):
    """`hlsflow versions`: the reference's rows as they were; the keras3 lane adds its Keras and JAX."""
    proc = hlsflow("versions", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {cells[0]: cells[1] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                             for line in proc.stdout.splitlines() if line.startswith("|"))}
    if keras3_lane():
        assert (rows["TensorFlow"], rows["Keras"], rows["JAX"]) == ("not installed", "3.15.1", "0.10.2"), rows
    else:
        assert rows["TensorFlow"] == "2.15.0" and "Keras" not in rows and "JAX" not in rows, rows
