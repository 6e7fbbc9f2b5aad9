"""`hlsflow plan`: ReuseFactors planned for the part, checked against hls4ml's own rules, converted
by the flow, and a model no part holds refused in one sentence. Real hls4ml, real Keras models."""

import json
import re

import pytest
import yaml
from conftest import REPO_ROOT, error_lines, run_hlsflow, run_invoke

REFERENCE = REPO_ROOT / "project" / "hls4ml_config.yml"


@pytest.fixture(scope="module")
def reference_plan(tmp_path_factory):
    target = tmp_path_factory.mktemp("plan") / "ref.plan.yml"
    proc = run_invoke("plan", "--config", REFERENCE, "--write", target)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return target, proc


def _keras_mult_sizes(model_path):
    """(n_in, n_out) of every layer with a kernel, from Keras itself: n_in = kernel inputs x channels."""
    import numpy as np
    import tensorflow as tf

    model = tf.keras.models.load_model(model_path)
    sizes = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            shape = tuple(kernel.shape)
            sizes[layer.name] = (int(np.prod(shape[:-1])), int(shape[-1]))
    return sizes


def test_reference_plan_fits_80_dsps_with_accepted_reuse_factors(reference_plan):
    from hls4ml.backends import get_backend

    target, proc = reference_plan
    raw = yaml.safe_load(target.read_text())
    assert raw["Part"] == "xc7z010clg400-1"
    planned = {name: entry["ReuseFactor"] for name, entry in raw["HLSConfig"]["LayerName"].items()
               if "ReuseFactor" in entry}
    sizes = _keras_mult_sizes(REPO_ROOT / "models" / "model_2_15.keras")
    assert set(planned) == set(sizes), (planned, sizes)
    backend = get_backend("Vivado")
    for name, rf in planned.items():
        assert rf in backend.get_valid_reuse_factors(*sizes[name]), (name, rf)
    # Multipliers estimated independently: n_in x n_out / ReuseFactor, within 80% of the 80 DSPs.
    multipliers = sum(n_in * n_out // planned[name] for name, (n_in, n_out) in sizes.items())
    assert multipliers <= 64
    assert f"Estimated multipliers: ~{multipliers} of 64 allowed (80% of 80 DSPs)" in proc.stdout
    assert "estimates, not Vivado results" in proc.stdout
    line = next(line for line in proc.stdout.splitlines() if line.startswith("Estimated interval"))
    assert re.search(r"DSP-bound limit MACs / \(DSPs x f\) = [\d,]+ / \(80 x 200 MHz\) = [\d,.]+ us: "
                     r"the interval is [\d.]+x that limit", line), line
    assert "| s3b_conv" in proc.stdout and "RF planned" in proc.stdout


def test_planned_config_converts_and_preflight_says_it_fits(reference_plan, tmp_path):
    target, _ = reference_plan
    planned = {name: entry["ReuseFactor"] for name, entry in
               yaml.safe_load(target.read_text())["HLSConfig"]["LayerName"].items() if "ReuseFactor" in entry}
    out = tmp_path / "prj"
    proc = run_invoke("convert", "--config", target, "--out", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "VERDICT: likely fits xc7z010clg400-1" in proc.stdout
    assert "silently uses" not in proc.stdout
    layers = json.loads((out / "manifest.json").read_text())["stages"]["convert"]["result"]["layers"]
    used = {row["name"]: row["reuse_used"] for row in layers if row["name"] in planned}
    assert used == planned


def test_a_model_without_its_own_config_gets_its_plan_beside_the_output(tmp_path):
    import tensorflow as tf

    inp = tf.keras.Input((16,), name="x")
    model = tf.keras.Model(inp, tf.keras.layers.Dense(8, name="fc")(inp))
    model.save(tmp_path / "tiny.keras")
    before = sorted(p.name for p in (REPO_ROOT / "project").iterdir())
    # In the checkout the reference config is found, but it is another model's: not beside it.
    proc = run_invoke("plan", "--model", tmp_path / "tiny.keras", "--out", tmp_path / "build" / "tiny",
                      "--part", "xc7z010clg400-1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in (REPO_ROOT / "project").iterdir()) == before
    raw = yaml.safe_load((tmp_path / "build" / "tiny.plan.yml").read_text())
    # 128 MACs on 64 DSPs (80% of 80): ReuseFactor 2 is the fastest that fits.
    assert raw["HLSConfig"]["LayerName"]["fc"]["ReuseFactor"] == 2
    assert raw["KerasModel"] == "../tiny.keras" and raw["OutputDir"] == "tiny-plan"
    # Half the DSPs (40): 128 / 40 multipliers needs ReuseFactor 4, the next one hls4ml accepts.
    half = run_invoke("plan", "--model", tmp_path / "tiny.keras", "--out", tmp_path / "build" / "tiny",
                      "--part", "xc7z010clg400-1", "--dsp-margin", "0.5", "--write", tmp_path / "half.yml")
    assert half.returncode == 0, half.stderr[-2000:]
    assert yaml.safe_load((tmp_path / "half.yml").read_text())["HLSConfig"]["LayerName"]["fc"]["ReuseFactor"] == 4
    # In a folder with no config at all: hlsflow's defaults, the plan again beside the output.
    work = tmp_path / "work"
    work.mkdir()
    bare = run_hlsflow("plan", "--model", "../tiny.keras", "--out", "out/tiny", "--part", "xc7z010clg400-1", cwd=work)
    assert bare.returncode == 0, bare.stdout[-3000:] + bare.stderr[-3000:]
    raw = yaml.safe_load((work / "out" / "tiny.plan.yml").read_text())
    assert raw["HLSConfig"]["LayerName"]["fc"]["ReuseFactor"] == 2 and raw["IOType"] == "io_stream"
    assert raw["KerasModel"] == "../../tiny.keras" and raw["OutputDir"] == "tiny-plan"


def test_a_model_no_part_holds_is_one_sentence(tmp_path):
    import tensorflow as tf

    # 1700 x 1700 weights at 32 bits: ~5,018 BRAM_18K, beyond 80% of the largest part's 5,376.
    inp = tf.keras.Input((1700,), name="x")
    model = tf.keras.Model(inp, tf.keras.layers.Dense(1700, use_bias=False, name="huge")(inp))
    model.save(tmp_path / "huge.keras")
    proc = run_invoke("plan", "--model", tmp_path / "huge.keras", "--out", tmp_path / "huge",
                      "--precision", "ap_fixed<32,16>", "--part", "xc7z010clg400-1")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert error_lines(proc) == [
        "ERROR: huge.keras cannot fit xc7z010clg400-1 at any ReuseFactor (estimates): its weights need ~5,018 "
        "BRAM_18K against 96 (80% of 120); no part in hlsflow/parts.py is large enough, so shrink the model or "
        "give its weights fewer bits."]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "huge.plan.yml").exists()


def test_a_smaller_model_is_pointed_to_the_smallest_part_that_holds_it(tmp_path):
    import tensorflow as tf

    # 400 x 400 weights at 16 bits: ~139 BRAM_18K, beyond 80% of the 7z010's 120 (96), within the 7z020's (224).
    inp = tf.keras.Input((400,), name="x")
    model = tf.keras.Model(inp, tf.keras.layers.Dense(400, use_bias=False, name="wide")(inp))
    model.save(tmp_path / "wide.keras")
    proc = run_invoke("plan", "--model", tmp_path / "wide.keras", "--out", tmp_path / "wide",
                      "--part", "xc7z010clg400-1")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = error_lines(proc)
    assert len(errors) == 1 and "its weights need ~139 BRAM_18K against 96 (80% of 120)" in errors[0]
    assert "use a part like xc7z020clg400-1" in errors[0]


def test_a_bad_margin_is_one_sentence(tmp_path):
    proc = run_invoke("plan", "--config", REFERENCE, "--dsp-margin", "1.5", "--write", tmp_path / "x.yml")
    assert proc.returncode != 0
    assert error_lines(proc) == ["ERROR: --dsp-margin '1.5' is not a fraction in (0, 1]: give e.g. --dsp-margin 0.8 "
                                 "for 80% of the part."]
    assert "Traceback" not in proc.stderr
    word = run_invoke("plan", "--config", REFERENCE, "--bram-margin", "most", "--write", tmp_path / "x.yml")
    assert error_lines(word) == ["ERROR: --bram-margin 'most' is not a fraction in (0, 1]: give e.g. --bram-margin "
                                 "0.8 for 80% of the part."] and word.returncode != 0
