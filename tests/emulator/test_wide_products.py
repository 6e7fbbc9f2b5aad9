"""Products wider than int64 holds (issue 37): `--precision 'ap_fixed<40,16>'` everywhere multiplies
40-bit values by 40-bit weights. The fast engine computes them exactly (int64's wrap-around keeps
the accumulator's bits while the shift and the accumulator fit 64 bits; Python's integers beyond),
csim through the installed command ends well, and the C++ emulation agrees bit for bit."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import flow_env


def _wrap(v: int, width: int) -> int:
    v %= 1 << width
    return v - (1 << width) if v >= 1 << (width - 1) else v


@pytest.mark.parametrize("a_t, w_frac, acc", [((40, 16), 24, (40, 16)), ((40, 16), 30, (44, 10)),
                                              ((48, 10), 30, (60, 6))],
                         ids=["shift+width 64: int64 wrap", "shift+width 70: Python ints", "shift 62"])
def test_mac_of_products_wider_than_int64(a_t, w_frac, acc):
    """Each product cast to the accumulator (TRN) and summed with wrap-around, as hls4ml's dense
    kernel does, against Python's integers."""
    from hlsflow.emulator import fixedpoint as fp
    from hlsflow.fixedtype import FixedType

    a_t, acc = FixedType(*a_t), FixedType(*acc)
    rng = np.random.default_rng(11)
    a = rng.integers(a_t.min_raw, a_t.max_raw + 1, (5, 16), dtype=np.int64)
    w = rng.integers(-2 ** 38, 2 ** 38, (16, 3), dtype=np.int64)
    bias = rng.integers(-2 ** 30, 2 ** 30, 3, dtype=np.int64)
    shift = a_t.frac + w_frac - acc.frac
    assert max(-a_t.min_raw, a_t.max_raw) * int(np.abs(w).max()) >= 2 ** 62  # the case that raised before
    expected = [[_wrap(sum((int(a[p, i]) * int(w[i, j])) >> shift for i in range(16)) + int(bias[j]), acc.width)
                 for j in range(3)] for p in range(5)]
    assert np.array_equal(fp.mac(a, a_t, w, w_frac, bias, acc), np.array(expected, dtype=np.int64))


def _installed(*args, cwd):
    """The installed `hlsflow` command, natively, from a user's folder."""
    command = shutil.which("hlsflow")
    assert command, "the hlsflow command is not installed"
    return subprocess.run([command, *map(str, args)], cwd=cwd, env=flow_env(), capture_output=True, text=True,
                          timeout=900)


def test_ap_fixed_40_16_everywhere_runs_fast_and_matches_cpp(tmp_path):
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(4)
    inp = tf.keras.Input((8, 2), name="signal")
    a = layers.Conv1D(4, 3, activation="relu", name="conv")(inp)
    a = layers.Flatten(name="flat")(a)
    a = layers.Dense(6, activation="relu", name="fc1")(a)
    model = tf.keras.Model(inp, layers.Dense(3, activation="softmax", name="fc2")(a))
    model.save(tmp_path / "tiny.keras")
    x = np.random.default_rng(4).uniform(-2, 2, (40, 8, 2)).astype(np.float32)
    np.savez(tmp_path / "tiny.npz", X=x)

    proc = _installed("csim", "--model", "tiny.keras", "--samples", "tiny.npz", "--out", "prj", "--precision",
                      "ap_fixed<40,16>", "--cross-check", "20", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "agree bit for bit on all 20 samples" in proc.stdout, proc.stdout[-3000:]
    result = json.loads((tmp_path / "prj" / "csim.json").read_text())
    assert result["engine"] == "fast" and result["cross_check"] == {"samples": 20, "identical": True}, result


def test_what_only_the_values_show_falls_back_to_cpp_in_one_line(tmp_path):
    """The fast engine meets some of what it does not reproduce only while running (a sample too
    large for its int64 wrap-around): auto says so in one line and runs the C++ emulation; --engine
    fast is one sentence. Neither is a traceback."""
    import tensorflow as tf
    from tensorflow.keras import layers

    inp = tf.keras.Input((4,), name="x")
    tf.keras.Model(inp, layers.Dense(2, name="fc")(inp)).save(tmp_path / "small.keras")
    x = np.random.default_rng(6).uniform(-1, 1, (8, 4)).astype(np.float32)
    x[3, 1] = 1e20  # in ap_fixed<16,6>'s WRAP: 1e20 * 2**10 does not fit int64
    np.savez(tmp_path / "huge.npz", X=x)
    flags = ("--model", "small.keras", "--samples", "huge.npz", "--out", "prj", "--io-type", "io_parallel")
    auto = _installed("csim", *flags, cwd=tmp_path)
    assert auto.returncode == 0, auto.stdout[-3000:] + auto.stderr[-3000:]
    lines = [line for line in auto.stdout.splitlines() if line.startswith("Fast engine:")]
    assert len(lines) == 1 and "while emulating, so csim uses the C++ emulation" in lines[0], auto.stdout[-3000:]
    assert json.loads((tmp_path / "prj" / "csim.json").read_text())["engine"] == "cpp"
    fast = _installed("csim", *flags, "--engine", "fast", "--force", cwd=tmp_path)
    errors = [line for line in fast.stderr.splitlines() if line.startswith("ERROR:")]
    assert fast.returncode == 2 and len(errors) == 1 and "--engine fast was asked for" in errors[0], fast.stderr
    assert "Traceback" not in auto.stderr + fast.stderr
