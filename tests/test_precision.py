"""The reference model's data and training, the precision profile, and the advice."""

import json
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, run_hlsflow, run_invoke

sys.path.insert(0, str(REPO_ROOT / "models"))
import mini_resnet  # noqa: E402


def test_synthetic_set_is_deterministic():
    x1, y1 = mini_resnet.synthetic_dataset(50, seed=3)
    x2, y2 = mini_resnet.synthetic_dataset(50, seed=3)
    x3, _ = mini_resnet.synthetic_dataset(50, seed=4)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.shape == (50, 32, 32, 3) and x1.dtype == np.float32 and 0 <= x1.min() and x1.max() <= 1
    assert set(mini_resnet.synthetic_dataset(300)[1]) == set(range(10))


def test_trained_model_round_trips_through_keras_format(tmp_path):
    import tensorflow as tf

    from hlsflow.dev.train import train_model

    meta = train_model(tmp_path / "m.keras", tmp_path / "s.npz", epochs=1, n_train=256, n_samples=32)
    assert meta["dataset"] == "synthetic" and meta["trained_on_synthetic_data"] is True
    assert json.loads((tmp_path / "m.json").read_text())["dataset"] == "synthetic"
    model = tf.keras.models.load_model(tmp_path / "m.keras")
    assert model.name == "mini_resnet_synthetic"
    samples = np.load(tmp_path / "s.npz")
    assert samples["X"].shape == (32, 32, 32, 3) and str(samples["dataset"]) == "synthetic"
    again = tf.keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(model.predict(samples["X"], verbose=0), again.predict(samples["X"], verbose=0))


def test_shipped_model_is_labelled_synthetic():
    meta = json.loads((REPO_ROOT / "models" / "model_2_15.json").read_text())
    assert meta["dataset"] == "synthetic" and meta["tensorflow"] == "2.15.0"


@pytest.fixture(scope="module")
def overflowing_project(tmp_path_factory):
    """A small CNN whose GlobalAveragePooling sum overflows ap_fixed<16,6>: a planted fault."""
    import tensorflow as tf
    from tensorflow.keras import layers

    from hlsflow.stages.starter import render_config, starter_hls_config

    root = tmp_path_factory.mktemp("overflow")
    tf.keras.utils.set_random_seed(2)
    inp = tf.keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    a = layers.Activation("relu", name="relu")(a)
    a = layers.GlobalAveragePooling2D(name="gap")(a)
    out = layers.Dense(5, name="fc")(a)
    model = tf.keras.Model(inp, out)
    kernel, _ = model.get_layer("conv").get_weights()
    model.get_layer("conv").set_weights([np.abs(kernel) * np.linspace(-0.3, 0.6, 6), np.linspace(0.2, 1.0, 6)])
    fc_kernel, fc_bias = model.get_layer("fc").get_weights()
    model.get_layer("fc").set_weights([fc_kernel * 8, fc_bias])
    model.save(root / "m.keras")
    # Brightness spread over samples makes the GAP sums (and so the labels) vary from image to image.
    rng = np.random.default_rng(0)
    x = (rng.uniform(0, 1, (48, 8, 8, 3)) * rng.uniform(0.2, 3.0, (48, 1, 1, 1))).astype(np.float32)
    np.savez(root / "s.npz", X=x)
    hls = starter_hls_config(model, precision="ap_fixed<16,6>", reuse_factor=1, strategy="Latency")
    (root / "flow.yml").write_text(render_config(hls, "m.keras", "prj", "s.npz"))
    return root


def test_profile_flags_the_planted_overflow(overflowing_project):
    proc = run_invoke("profile", "--config", overflowing_project / "flow.yml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    profile = json.loads((overflowing_project / "prj" / "profile.json").read_text())
    verdicts = {(f["layer"], f["kind"]): f for f in profile["findings"]}
    assert verdicts[("gap", "accum")]["verdict"] == "OVERFLOW"
    assert verdicts[("gap", "accum")]["keras_max"] > 32
    assert verdicts[("conv", "result")]["verdict"] == "ok"
    assert verdicts[("relu", "result")]["trace_mean_err"] is not None
    assert "Tracing every layer on the fast engine" in proc.stdout  # no g++ build for the trace
    assert "Layers at fault: gap accumulator" in proc.stdout
    assert (overflowing_project / "prj" / "precision_profile.png").read_bytes()[:4] == b"\x89PNG"


def test_advice_raises_agreement_where_uniform_precision_fails(overflowing_project):
    tuned = overflowing_project / "tuned.yml"
    proc = run_invoke("tune-precision", "--config", overflowing_project / "flow.yml", "--write", tuned,
                      "--no-compare-auto")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = _tune_result(overflowing_project / "prj")
    before, after = result["before"]["agreement"], result["after"]["agreement"]
    assert before < 0.6 and after >= 0.99 and after - before >= 0.4, (before, after)
    assert result["outcome"] == "met" and result["after"]["label"] == "overflow"
    final = proc.stdout.strip().splitlines()[-1]
    assert final.startswith(f"Gate met: agreement {before:.1%} -> {after:.1%}") and "added bits" in final
    # The reference-style advice is unchanged: the GAP accumulator widened with 25% headroom, fractional
    # bits kept (fc, scaled up by the fixture, overflows too, and so does the linear layer hls4ml keeps
    # after it once fc is wider).
    changed = [line for line in tuned.read_text().splitlines() if line.startswith("#   ")]
    assert "#   gap accum: ap_fixed<20,10>" in changed, changed
    # The seed-style config names the layer at fault when csim reports low agreement.
    csim = run_invoke("csim", "--config", overflowing_project / "flow.yml",
                      "--out", overflowing_project / "prj-csim")
    assert "Layers at fault" in csim.stdout and "gap accumulator" in csim.stdout


def _tune_result(out_dir) -> dict:
    return json.loads((out_dir / "tune.json").read_text())


def _gate_met(trial: dict, target=0.99, tolerance=0.005) -> bool:
    return trial["agreement"] >= target and trial["hls_accuracy"] >= trial["keras_accuracy"] - tolerance


@pytest.fixture(scope="module")
def input_overflow_mlp(tmp_path_factory):
    """An MLP trained on inputs never normalised (about +-160): a planted input and ReLU overflow."""
    import tensorflow as tf
    from tensorflow.keras import layers

    root = tmp_path_factory.mktemp("mlp")
    tf.keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.normal(0, 60, (400, 12)).clip(-160, 160).astype(np.float32)
    y = (x @ rng.normal(0, 1, (12, 4))).argmax(1)
    inp = tf.keras.Input((12,), name="features")
    a = layers.Dense(16, activation="relu", name="fc1")(inp)
    out = layers.Dense(4, activation="softmax", name="out")(a)
    model = tf.keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    model.save(root / "mlp.keras")
    # Keep samples whose top-1 has a margin: a near-tie flips on any rounding and tests nothing.
    p = np.sort(model.predict(x, verbose=0), axis=1)
    keep = np.where(p[:, -1] - p[:, -2] > 0.2)[0][:100]
    np.savez(root / "s.npz", X=x[keep], y=y[keep])
    return root


def test_tune_fixes_input_overflow_of_a_model_given_alone(input_overflow_mlp):
    """--model with no config of its own: the tuned config goes to the output directory, not project/."""
    root = input_overflow_mlp
    project_before = sorted(p.name for p in (REPO_ROOT / "project").iterdir())
    # From the model's own folder, where no config is found: hlsflow's defaults for the model.
    proc = run_hlsflow("tune-precision", "--model", "mlp.keras", "--samples", "s.npz", "--out", "prj", cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert sorted(p.name for p in (REPO_ROOT / "project").iterdir()) == project_before
    result = _tune_result(root / "prj")
    before, after = result["before"], result["after"]
    assert before["agreement"] < 0.6, before
    assert result["outcome"] == "met" and _gate_met(after), after
    tuned = (root / "prj" / "hls4ml_config.tuned.yml").read_text()
    assert "features result: ap_fixed<" in tuned and "fc1_relu result: ap_fixed<" in tuned
    assert f"for {after['added_bits']} added bits" in proc.stdout.splitlines()[-1]
    assert result["auto"] is not None and "'auto' types" in proc.stdout
    verify = run_hlsflow("verify", "prj", cwd=root)
    assert verify.returncode == 0, verify.stdout + verify.stderr  # tune.json and the config are recorded
    print("\n".join(line for line in proc.stdout.splitlines() if "step " in line or "'auto'" in line)
          + "\n" + proc.stdout.splitlines()[-1])


def test_tune_takes_the_digits_cnn_to_the_gate(tmp_path):
    """The bundled digits CNN (unnormalised pixels): the fault is one hls4ml shows only once fc is
    widened (its inserted linear activation), and the tuner finds it by converting again."""
    import tensorflow as tf

    from hlsflow.stages.starter import render_config, starter_hls_config

    model = tf.keras.models.load_model(REPO_ROOT / "models" / "digits_cnn.keras")
    hls = starter_hls_config(model, precision="ap_fixed<16,6>", reuse_factor=1, strategy="Latency")
    config = tmp_path / "digits.yml"
    config.write_text(render_config(hls, str(REPO_ROOT / "models" / "digits_cnn.keras"), "prj",
                                    str(REPO_ROOT / "models" / "digits_samples.npz"), io_type="io_parallel"))
    proc = run_invoke("tune-precision", "--config", config, "--max-samples", 200, "--no-compare-auto")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = _tune_result(tmp_path / "prj")
    before, after = result["before"], result["after"]
    assert not _gate_met(before), before
    assert result["outcome"] == "met" and _gate_met(after) and after["added_bits"] > 0, after
    assert (tmp_path / "digits.tuned.yml").exists()
    final = proc.stdout.strip().splitlines()[-1]
    assert final.startswith("Gate met") and f"{after['added_bits']} added bits" in final and "DSP" in final
    assert any(line.strip().startswith("step 1 [") for line in proc.stdout.splitlines())
    print("\n".join(line for line in proc.stdout.splitlines() if "step " in line) + "\n" + final)
    # csim on the untuned design (its library is reused) shows the accuracy lost and the layer at fault.
    csim = run_invoke("csim", "--config", config, "--max-samples", 150)
    assert csim.returncode == 0, csim.stdout[-3000:] + csim.stderr[-2000:]
    lost = next(line for line in csim.stdout.splitlines() if "accuracy lost (Keras - HLS)" in line)
    assert " points" in lost and "Layers at fault" in csim.stdout and "fc output" in csim.stdout


@pytest.fixture(scope="module")
def resolution_loss_mlp(tmp_path_factory):
    """A planted pure loss of resolution: inputs and results a few thousandths wide, far inside
    ap_fixed<16,6>'s range (nothing overflows) but only a few steps of its 2^-10 resolution."""
    import tensorflow as tf
    from tensorflow.keras import layers

    from hlsflow.stages.starter import render_config, starter_hls_config

    root = tmp_path_factory.mktemp("resolution")
    tf.keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    inp = tf.keras.Input((10,), name="features")
    out = layers.Dense(4, name="fc")(inp)
    model = tf.keras.Model(inp, out)
    model.get_layer("fc").set_weights([rng.normal(0, 1, (10, 4)).astype(np.float32), np.zeros(4, np.float32)])
    model.save(root / "m.keras")
    x = rng.uniform(-0.004, 0.004, (400, 10)).astype(np.float32)
    z = model.predict(x, verbose=0)
    top = np.sort(z, axis=1)
    keep = np.where(top[:, -1] - top[:, -2] > 0.0005)[0][:150]  # no exact ties: they test nothing
    np.savez(root / "s.npz", X=x[keep], y=z[keep].argmax(1))
    hls = starter_hls_config(model, precision="ap_fixed<16,6>", reuse_factor=1, strategy="Latency")
    (root / "flow.yml").write_text(render_config(hls, "m.keras", "prj", "s.npz", io_type="io_parallel"))
    return root


def test_tune_adds_fractional_bits_where_resolution_is_lost(resolution_loss_mlp):
    """Nothing overflows, so the overflow step has nothing to do: the tuner's fractional-bit search
    on the types flagged as losing resolution meets the gate, integer bits untouched."""
    from hlsflow.config import parse_precision

    root = resolution_loss_mlp
    proc = run_invoke("tune-precision", "--config", root / "flow.yml", "--no-compare-auto")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "loses resolution" in proc.stdout or "below the resolution" in proc.stdout
    result = _tune_result(root / "prj")
    before, after = result["before"], result["after"]
    assert not _gate_met(before), before
    labels = [t["label"] for t in result["trials"]]
    assert "overflow" not in labels, labels  # no overflow step: there was nothing to widen
    assert result["outcome"] == "met" and _gate_met(after), after
    assert after["label"].startswith("frac+") and after["label"].endswith("-flagged"), after["label"]
    k = int(after["label"].split("+")[1].split("-")[0])
    assert after["changes"], after
    for layer, kinds in after["changes"].items():
        for kind, text in kinds.items():
            t = parse_precision(text)
            assert t.integer == 6 and t.width == 16 + k, (layer, kind, text)  # fractional bits only
    assert after["added_bits"] == k * sum(len(kinds) for kinds in after["changes"].values())
    # The search bisected to the fewest bits: one bit fewer on the same types fails the gate.
    if k > 1:
        fewer = next(t for t in result["trials"] if t["label"] == f"frac+{k - 1}-flagged")
        assert not _gate_met(fewer), fewer
    final = proc.stdout.strip().splitlines()[-1]
    assert final.startswith("Gate met") and f"for {after['added_bits']} added bits" in final
    assert (root / "flow.tuned.yml").exists()
    print("\n".join(line for line in proc.stdout.splitlines() if "step " in line) + "\n" + final)


def test_csim_says_when_no_single_type_is_at_fault(tmp_path):
    """Ten logits that differ by a few weight LSBs: rounding the weights flips labels while every
    output and accumulator holds its Keras values, so csim must say that no type is at fault
    rather than stay silent."""
    import tensorflow as tf
    from tensorflow.keras import layers

    from hlsflow.stages.starter import render_config, starter_hls_config

    rng = np.random.default_rng(1)
    inp = tf.keras.Input((64,))
    model = tf.keras.Model(inp, layers.Dense(10, name="fc")(inp))
    model.get_layer("fc").set_weights([(0.1 + rng.normal(0, 0.002, (64, 10))).astype(np.float32), np.zeros(10, np.float32)])
    model.save(tmp_path / "m.keras")
    x = rng.uniform(0.5, 1.0, (200, 64)).astype(np.float32)
    # Class labels make these ten linear outputs a classifier's logits: csim measures top-1 agreement.
    np.savez(tmp_path / "s.npz", X=x, y=model.predict(x, verbose=0).argmax(1))
    hls = starter_hls_config(model, precision="ap_fixed<16,6>", reuse_factor=1, strategy="Latency")
    (tmp_path / "flow.yml").write_text(render_config(hls, "m.keras", "prj", "s.npz"))
    proc = run_invoke("csim", "--config", tmp_path / "flow.yml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "prj" / "csim.json").read_text())
    assert result["metric"] == "top1"
    assert result["top1_agreement"] < 0.99 and result["layers_at_fault"] == []
    assert "No single data-path type is at fault" in proc.stdout
