"""`hlsflow init`: a starter config for .keras, .h5 and JSON + weights models that passes the
schema, names every layer as hls4ml does, converts, and is never overwritten by accident."""

import pytest
import yaml

from conftest import error_lines, run_invoke
from hlsflow.config import load_config


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import tensorflow as tf

    root = tmp_path_factory.mktemp("starter")
    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((6,), name="features")
    h = tf.keras.layers.Dense(8, activation="relu", name="hidden")(inp)
    out = tf.keras.layers.Dense(3, activation="softmax", name="scores")(h)
    model = tf.keras.Model(inp, out)
    model.save(root / "mlp.keras")
    model.save(root / "mlp_h5.h5")
    (root / "mlp_json.json").write_text(model.to_json())
    model.save_weights(root / "mlp_json.h5")
    return root


@pytest.mark.parametrize("name", ["mlp.keras", "mlp_h5.h5", "mlp_json.json"])
def test_init_writes_a_valid_starter(models, name, tmp_path):
    target = tmp_path / f"{name}.yml"
    proc = run_invoke("init", "--model", models / name, "--config", target, "--part", "xc7z020clg400-1",
                      "--reuse-factor", "2", "--strategy", "resource")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    raw = yaml.safe_load(target.read_text())
    assert raw["Part"] == "xc7z020clg400-1" and raw["IOType"] == "io_parallel"  # a small MLP
    assert raw["HLSConfig"]["Model"]["ReuseFactor"] == 2 and raw["HLSConfig"]["Model"]["Strategy"] == "Resource"
    assert {"features", "hidden", "hidden_relu", "scores", "scores_softmax"} <= set(raw["HLSConfig"]["LayerName"])
    assert "# HLSConfig: Model sets the defaults" in target.read_text()  # the knobs are explained
    cfg = load_config(target)  # passes the schema; the model path resolves from the file
    assert cfg.keras_model == models / name


def test_json_model_converts_from_its_starter(models, tmp_path):
    target = models / "hls4ml_config.yml"
    proc = run_invoke("init", "--model", models / "mlp_json.json")
    assert proc.returncode == 0, proc.stderr
    assert target.is_file() and "KerasModel: mlp_json.json" in target.read_text()
    convert = run_invoke("convert", "--config", target)
    assert convert.returncode == 0, convert.stdout[-2000:] + convert.stderr[-2000:]
    assert (models / "build" / "mlp_json" / "firmware" / "myproject.cpp").is_file()


def test_init_never_overwrites_without_force(models, tmp_path):
    target = tmp_path / "c.yml"
    target.write_text("# mine\n")
    proc = run_invoke("init", "--model", models / "mlp.keras", "--config", target)
    assert proc.returncode == 2
    assert error_lines(proc) == [f"ERROR: {target} already exists: pass --force to overwrite it, or --config "
                                 "OTHER.yml to write another file."]
    assert target.read_text() == "# mine\n"
    forced = run_invoke("init", "--model", models / "mlp.keras", "--config", target, "--force")
    assert forced.returncode == 0 and "KerasModel:" in target.read_text()


def test_init_without_a_model_is_one_sentence():
    proc = run_invoke("init")
    assert proc.returncode == 2
    assert error_lines(proc)[0].startswith("ERROR: init needs the model: pass --model PATH")
