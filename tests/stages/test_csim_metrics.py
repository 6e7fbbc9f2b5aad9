"""csim's figure fits the model's output: top-1 agreement for a softmax classifier, agreement at
0.5 for one sigmoid output, the error against Keras for a regression; min_agreement and max_error
gate them. And recurrent models (LSTM, GRU: hls4ml's C++ emulation) through `init` then `flow`.
Run as a user would: the `hlsflow` program from a folder outside the checkout, then the same
output folder in-process (the recorded csim is reused, so a gate costs no emulation)."""

import json

import numpy as np
import pytest

from conftest import error_lines, run_hlsflow

# ap_fixed<8,3> holds +-4: the classifiers' weights fit it, their logits reach +-7 and more and wrap,
# so some labels flip and an agreement gate has something to trip on. The regression keeps 16 bits:
# small, non-zero errors.
MODELS = {"classifier": "ap_fixed<8,3>", "binary": "ap_fixed<8,3>", "regression": "ap_fixed<16,6>"}
METRIC = {"classifier": "top1", "binary": "threshold_0.5", "regression": "error"}


def hlsflow(*args, cwd):
    """The `hlsflow` program (this checkout's code) run natively from `cwd`."""
    return run_hlsflow(*args, cwd=cwd)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three tiny models and their samples in a folder outside the checkout."""
    import tensorflow as tf
    from tensorflow.keras import layers

    root = tmp_path_factory.mktemp("metrics")
    tf.keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (60, 4)).astype(np.float32)

    inp = tf.keras.Input((4,))
    classifier = tf.keras.Model(inp, layers.Dense(3, activation="softmax", name="fc")(inp))
    classifier.get_layer("fc").set_weights([rng.uniform(-3.5, 3.5, (4, 3)).astype(np.float32), np.zeros(3, np.float32)])
    # lower-case x and upper-case Y: both are names people save samples under
    np.savez(root / "classifier.npz", x=x, Y=classifier.predict(x, verbose=0).argmax(1))

    binary = tf.keras.Model(inp, layers.Dense(1, activation="sigmoid", name="out")(inp))
    binary.get_layer("out").set_weights([np.array([[3.5], [3.5], [0.0], [0.0]], np.float32), np.zeros(1, np.float32)])
    np.savez(root / "binary.npz", X=x, y=(binary.predict(x, verbose=0)[:, 0] > 0.5).astype(np.int64))

    hidden = layers.Dense(8, activation="relu", name="hidden")(inp)
    regression = tf.keras.Model(inp, layers.Dense(2, name="out")(hidden))
    np.savez(root / "regression.npz", X=x, y=rng.normal(size=(60, 2)).astype(np.float32))  # targets, not classes

    for name, model in (("classifier", classifier), ("binary", binary), ("regression", regression)):
        model.save(root / f"{name}.keras")
    return root


def _flags(kind):
    return ["--model", f"{kind}.keras", "--samples", f"{kind}.npz", "--out", f"prj_{kind}", "--precision",
            MODELS[kind]]


@pytest.mark.parametrize("kind", list(MODELS))
def test_csim_measures_what_fits_the_output_and_gates_it(models, kind, monkeypatch):
    root = models
    # An agreement gate above what the coarse classifiers reach; a regression has no labels to agree on.
    proc = hlsflow("csim", *_flags(kind), "--min-agreement", "0.999", cwd=root)
    result = json.loads((root / f"prj_{kind}" / "csim.json").read_text())  # written before the gate
    assert result["metric"] == METRIC[kind], result
    assert len(error_lines(proc)) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    error = error_lines(proc)[0]
    table = proc.stdout
    if kind == "regression":
        assert proc.returncode == 2 and "an agreement gate" in error and "max_error" in error, error
        assert result["gate"] == "max_error" and result["agreement"] is None and "top1_agreement" not in result
        assert result["keras_accuracy"] is None and result["hls_accuracy"] is None  # labels are targets here
        assert 0 < result["mean_rel_error"] <= result["max_rel_error"], result
        assert "| csim measures" in table and "error against Keras (linear output, 2 values); gate: max_error" in table
        assert "max |HLS - Keras| / |Keras|" in table and "Keras accuracy" not in table
    else:
        assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert result["gate"] == "min_agreement"
        # the wrapped logits flip some labels, and not all
        assert 0.3 < result["agreement"] < 0.999 and result["top1_agreement"] == result["agreement"], result
        # the labels are Keras's own predictions: Keras is always right, the emulation as often as it agrees
        assert result["keras_accuracy"] == 1.0 and result["hls_accuracy"] == result["agreement"], result
        if kind == "classifier":
            assert "labels, below the required 99.9%" in error and "of top-1 labels" in error, error
            assert "top-1 agreement HLS vs Keras (softmax output, 3 values); gate: min_agreement" in table
        else:
            assert "of labels read at threshold 0.5, below the required 99.9%" in error, error
            assert "agreement at threshold 0.5 (sigmoid output, 1 value); gate: min_agreement" in table
    assert result["max_abs_diff"] > 0, result

    # The same output folder in-process: csim is current, so only the gates run.
    from hlsflow import flow
    from hlsflow.config import load_config
    from hlsflow.errors import FlowError

    monkeypatch.chdir(root)  # no hls4ml_config.yml here: the flags alone, as above
    cfg = load_config(model=f"{kind}.keras", out=f"prj_{kind}", samples=f"{kind}.npz", precision=MODELS[kind],
                      announce=False)
    worst = result["max_abs_diff"]
    passing = {"max_error": 2 * worst} if kind == "regression" else {"max_error": 2 * worst,
                                                                      "min_agreement": result["agreement"]}
    assert flow.csim(cfg, samples=f"{kind}.npz", **passing) == result  # both gates met, nothing emulated again
    with pytest.raises(FlowError) as tripped:
        flow.csim(cfg, samples=f"{kind}.npz", max_error=worst / 2)
    assert tripped.value.exit_code == 3
    assert str(tripped.value).startswith(f"Emulation departs from Keras by up to {worst:.4g} (max |HLS - Keras|")
    assert f"above the allowed max_error {worst / 2:g}" in str(tripped.value)


def test_the_config_gates_and_a_bad_flag(models, monkeypatch):
    """max_error and metric in the config (the schema takes them): metric: top1 forces the figure,
    max_error trips; --max-error abc is one sentence."""
    from hlsflow import flow
    from hlsflow.cli.tasks import _max_error
    from hlsflow.config import load_config
    from hlsflow.errors import FlowError

    monkeypatch.chdir(models)
    (models / "regression.yml").write_text(
        "KerasModel: regression.keras\nOutputDir: prj_forced\nIOType: io_parallel\n"
        "Flow:\n  emulation:\n    samples: regression.npz\n    metric: top1\n    max_error: 1.0e-9\n")
    cfg = load_config("regression.yml", announce=False)
    with pytest.raises(FlowError, match=r"above the allowed max_error 1e-09: widen") as tripped:
        flow.csim(cfg)
    assert tripped.value.exit_code == 3
    result = json.loads((models / "prj_forced" / "csim.json").read_text())
    assert result["metric"] == "top1" and result["keras_accuracy"] is None, result  # the targets are no classes

    with pytest.raises(FlowError) as bad:
        _max_error("abc")
    assert str(bad.value) == "--max-error 'abc' is not a positive number: give e.g. --max-error 0.05."


def test_choose_metric_from_the_output_and_labels():
    """The rules without a model: a linear output is a classifier's logits only when the labels are classes."""
    from hlsflow.errors import FlowError
    from hlsflow.emulator.figures import choose_metric, labels_kind

    indices, onehot = np.array([0, 2, 1, 2]), np.eye(3)[[0, 2, 1, 2]]
    binary, targets = np.array([0, 1, 1, 0]), np.array([[0.2, 1.5], [3.0, -1.0], [0.1, 0.0], [2.0, 2.0]])
    cases = [("softmax", 3, None, "top1"), ("sigmoid", 1, None, "threshold_0.5"),
             ("sigmoid", 1, binary, "threshold_0.5"), ("sigmoid", 3, indices, "top1"),
             ("sigmoid", 3, None, "threshold_0.5"), ("linear", 3, indices, "top1"),
             ("linear", 3, onehot, "top1"), ("linear", 3, None, "error"), ("linear", 2, targets, "error"),
             ("linear", 1, binary, "threshold_0"), ("linear", 1, indices, "error"), ("linear", 1, None, "error"),
             ("tanh", 3, indices, "error"), ("relu", 1, None, "error")]
    for activation, n_out, y, expected in cases:
        assert choose_metric("auto", activation, n_out, labels_kind(y, n_out)) == expected, (activation, n_out, y)
    assert choose_metric("threshold", "linear", 1, None) == "threshold_0"
    assert choose_metric("error", "softmax", 3, "indices") == "error"
    with pytest.raises(FlowError, match="Flow.emulation.metric 'best' is not one of"):
        choose_metric("best", "softmax", 3, None)


def test_recurrent_model_through_init_and_flow(tmp_path):
    """An LSTM into a GRU (no fast implementation: hls4ml's C++ emulation), io_stream as `init` writes
    it (io_parallel works too). At ap_fixed<6,2> (all types) agreement is low, so csim looks for the types at
    fault, and names the recurrent layers' outputs among them; csim.json is written and the flow ends."""
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(5)
    inp = tf.keras.Input((5, 3))
    h = layers.GRU(4, name="gru")(layers.LSTM(4, return_sequences=True, name="lstm")(inp))
    model = tf.keras.Model(inp, layers.Dense(3, activation="softmax", name="fc")(h))
    kernel, bias = model.get_layer("fc").get_weights()
    model.get_layer("fc").set_weights([kernel * 6, bias])
    model.save(tmp_path / "rnn.keras")
    x = np.random.default_rng(5).uniform(-1, 1, (24, 5, 3)).astype(np.float32)
    np.savez(tmp_path / "rnn.npz", X=x, y=model.predict(x, verbose=0).argmax(1))

    init = hlsflow("init", "--model", "rnn.keras", "--samples", "rnn.npz", cwd=tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    config = (tmp_path / "hls4ml_config.yml").read_text()
    assert "    lstm:" in config and "    gru:" in config and "IOType: io_stream" in config
    # --precision: every type the same, whatever types init proposed from the samples
    proc = hlsflow("flow", "--config", "hls4ml_config.yml", "--precision", "ap_fixed<6,2>", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads((tmp_path / "build" / "rnn" / "csim.json").read_text())
    assert result["engine"] == "cpp" and result["metric"] == "top1" and result["samples"] == 24, result
    assert "Synthesis skipped: no Vivado HLS found" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert f"| top-1 agreement HLS vs Keras | {result['agreement']:.1%}" in proc.stdout
    assert 0 < result["agreement"] < 0.99 and result["keras_accuracy"] == 1.0, result  # so the analysis ran
    # The analysis ran, without an error, and found the recurrent layers' outputs too coarse: printed
    # under its heading, one line each, as csim.json keeps them.
    assert "WARNING: The analysis of which types are at fault" not in proc.stdout + proc.stderr
    assert "fault_analysis_error" not in result, result
    faults = result.get("layers_at_fault") or []
    assert {line.split()[0] for line in faults} >= {"lstm", "gru"}, result
    assert all("ap_fixed<6,2>" in line for line in faults), faults  # the softmax's sum overflows it too (issue 37)
    lines = proc.stdout.splitlines()
    heading = lines.index("Layers at fault (Keras values outside their fixed-point type, or below its resolution):")
    assert lines[heading + 1:heading + 1 + len(faults)] == [f"  {line}" for line in faults]
