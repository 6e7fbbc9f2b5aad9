"""hlsflow as a Python library (hlsflow/library.py), in the image: `emulate` against hls4ml's own
C++ `predict` bit for bit, the per-model predict hook, and csim's figures against the CLI's. The
example notebook that uses it: tests/test_notebook_own_config.py and tests/image/test_notebook_browser.py."""

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT


def test_import_stays_light():
    """`import hlsflow` and a look at the library's names import neither TensorFlow nor hls4ml."""
    code = ("import sys, hlsflow; assert callable(hlsflow.emulate) and 'hlsflow.library' in sys.modules; "
            "print(sorted(m for m in ('tensorflow', 'hls4ml', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


CASES = {
    # the reference Mini-ResNet (io_stream, Resource) with its own config, and the small digits CNN
    # with hlsflow's defaults
    "reference": ({"path": REPO_ROOT / "project" / "hls4ml_config.yml"}, REPO_ROOT / "models" / "samples_2_15.npz", 16),
    "digits": ({"model": REPO_ROOT / "models" / "digits_cnn.keras"}, REPO_ROOT / "models" / "digits_samples.npz", 64),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_emulate_equals_cpp_predict(case, tmp_path, monkeypatch):
    import hlsflow
    from hlsflow.design import convert_model

    where, samples, n = CASES[case]
    monkeypatch.chdir(tmp_path)  # no config found by chance: the digits CNN gets the defaults
    cfg = hlsflow.load_config(out=tmp_path / "prj", **where)
    hls_model, project, keras_model, _ = hlsflow.convert(cfg)
    assert (project / "manifest.json").is_file()
    x = np.load(samples)["X"][:n].astype(np.float32)

    with contextlib.redirect_stdout(io.StringIO()):
        hls_model.compile()  # in the ModelGraph's own scratch folder, not the project
    y_cpp = hls_model.predict(np.ascontiguousarray(x))
    y_fast = hlsflow.emulate(hls_model, x)
    assert y_fast.dtype == np.float32 and y_fast.shape == y_cpp.shape == (n, keras_model.outputs[0].shape[-1])
    assert np.array_equal(y_fast.view(np.uint32), y_cpp.view(np.uint32))
    assert not np.array_equal(y_fast, keras_model.predict(x, verbose=0))  # fixed point, not Keras's floats

    # The layer trace: every layer, in order, the last one's values hls4ml's C++ output bit for bit
    # (compared with C++, not with emulate, which is the same engine); Keras computes some layers too.
    trace = hlsflow.layer_trace(hls_model, x, keras_model)
    assert list(trace.index) == [layer.name for layer in hls_model.get_layers()]
    last = trace.attrs["values"][trace.index[-1]].astype(np.float32).reshape(y_cpp.shape)
    assert np.array_equal(last.view(np.uint32), y_cpp.view(np.uint32))
    assert trace["max_abs_diff"].notna().sum() >= 2, trace

    # The hook: this model's predict runs the fast engine; the shared backend and other models do not.
    other, _ = convert_model(keras_model, cfg, tmp_path / "other")
    hlsflow.use_fast_emulation(hls_model)
    assert not hasattr(hls_model.config.backend, "predict") and other.config.backend is hls_model.config.backend
    assert "predict" in vars(hls_model) and "predict" not in vars(other)
    assert np.array_equal(hls_model.predict(x).view(np.uint32), y_fast.view(np.uint32))
    one = hls_model.predict(x[:1])  # one sample: its outputs without the batch axis, as hls4ml's
    assert one.shape == type(hls_model).predict(hls_model, np.ascontiguousarray(x[:1])).shape
    assert np.array_equal(one, y_fast[0])
    hlsflow.use_fast_emulation(hls_model, on=False)
    assert "predict" not in vars(hls_model)
    assert np.array_equal(hls_model.predict(np.ascontiguousarray(x)).view(np.uint32), y_cpp.view(np.uint32))


def test_emulate_falls_back_to_cpp_naming_the_layer(tmp_path, monkeypatch):
    """A layer the fast engine lacks (a SimpleRNN): one warning names it, and the outputs are hls4ml's
    C++ emulation's."""
    import tensorflow as tf

    import hlsflow

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.Input((4, 3), name="seq"), tf.keras.layers.SimpleRNN(4, name="rnn"),
                                 tf.keras.layers.Dense(2, name="fc")])
    model.save(tmp_path / "rnn.keras")
    monkeypatch.chdir(tmp_path)
    cfg = hlsflow.load_config(model=tmp_path / "rnn.keras", out=tmp_path / "prj", io_type="io_parallel")
    hls_model, _, _, _ = hlsflow.convert(cfg)
    x = np.random.default_rng(0).uniform(-1, 1, (6, 4, 3)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"fast engine lacks layer rnn \(SimpleRNN\).*C\+\+ emulation") as caught:
        y = hlsflow.emulate(hls_model, x)
    assert len(caught) == 1
    y_cpp = type(hls_model).predict(hls_model, np.ascontiguousarray(x))
    assert y.shape == (6, 2) and np.array_equal(y.view(np.uint32), y_cpp.view(np.uint32))


def test_csim_figures_equal_the_cli(converted, tmp_path):
    """hlsflow.csim gives the figures `invoke csim` wrote to csim.json for the same config (the
    timing aside), and writes its own csim.json with exactly what it returns."""
    import hlsflow

    project, _ = converted
    cli = json.loads((project["out"] / "csim.json").read_text())
    figures = hlsflow.csim(hlsflow.load_config(project["config"], out=tmp_path / "lib"))
    assert figures == json.loads((tmp_path / "lib" / "csim.json").read_text())
    timing = ("images_per_second", "emulation_build", "workers")
    assert {k: v for k, v in figures.items() if k not in timing} == {k: v for k, v in cli.items() if k not in timing}
