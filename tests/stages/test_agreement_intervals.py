"""Every agreement and accuracy figure with its 95% interval for the sample count (issue 37): csim's
table, csim.json, its gate lines, tune-precision's steps and sweep's rows show scipy's Wilson
interval; a gate is judged on the exact count, a "not met" never shows the figure it falls short
of as equal, and a gate inside the interval says more samples are needed. tune-precision takes no
step whose gain is inside noise."""

import json
import re

import numpy as np
import pytest
from scipy.stats import binomtest

from conftest import error_lines, run_hlsflow


def wilson(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny softmax classifier at ap_fixed<8,3>: its logits wrap, so some labels flip, not all."""
    import tensorflow as tf
    from tensorflow.keras import layers

    root = tmp_path_factory.mktemp("intervals")
    tf.keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (60, 4)).astype(np.float32)
    inp = tf.keras.Input((4,))
    model = tf.keras.Model(inp, layers.Dense(3, activation="softmax", name="fc")(inp))
    model.get_layer("fc").set_weights([rng.uniform(-3.5, 3.5, (4, 3)).astype(np.float32), np.zeros(3, np.float32)])
    model.save(root / "classifier.keras")
    np.savez(root / "classifier.npz", X=x, y=model.predict(x, verbose=0).argmax(1))
    flags = ("--model", "classifier.keras", "--samples", "classifier.npz", "--out", "prj", "--precision",
             "ap_fixed<8,3>")
    proc = run_hlsflow("csim", *flags, cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, flags, proc


def test_csim_shows_scipys_interval_in_its_table_and_json(classifier):
    root, _, proc = classifier
    result = json.loads((root / "prj" / "csim.json").read_text())
    n, k = result["samples"], result["agreement_count"]
    assert k == round(result["agreement"] * n) and 0 < k < n, result
    low, high = wilson(k, n)
    assert result["agreement_ci95"] == pytest.approx([low, high], abs=1e-12), result
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| top-1 agreement HLS vs Keras"))
    assert f"{k / n:.1%} [{low:.1%}, {high:.1%}] ({k} of {n})" in row, row
    accuracy = next(line for line in proc.stdout.splitlines() if line.startswith("| HLS emulation accuracy"))
    hk = result["hls_accuracy_count"]
    assert f"[{wilson(hk, n)[0]:.1%}, {wilson(hk, n)[1]:.1%}] ({hk} of {n})" in accuracy, accuracy


def test_a_gate_inside_the_interval_says_more_samples_are_needed(classifier):
    root, flags, _ = classifier
    result = json.loads((root / "prj" / "csim.json").read_text())
    n, k = result["samples"], result["agreement_count"]
    low, high = wilson(k, n)
    # Met exactly at its own figure (the recorded csim is reused: only the gate runs).
    met = run_hlsflow("csim", *flags, "--min-agreement", str(k / n), cwd=root)
    assert met.returncode == 0, met.stderr[-2000:]
    line = next(line for line in met.stdout.splitlines() if line.startswith("Gate met"))
    assert f"({k} of {n})" in line and "lies inside the 95% interval" in line
    assert "more samples are needed to tell" in line, line
    # A gate above the figure but inside its interval: not met, and said to be undecided.
    gate = (k + 1) / n
    assert low < gate < high
    missed = run_hlsflow("csim", *flags, "--min-agreement", str(gate), cwd=root)
    assert missed.returncode == 3 and len(error_lines(missed)) == 1, missed.stderr[-2000:]
    error = error_lines(missed)[0]
    assert f"({k} of {n}) of top-1 labels, below the required" in error and f"({k + 1} of {n})" in error, error
    assert "lies inside the 95% interval" in error and error.endswith("."), error
    # A gate far above: the interval does not reach it, nothing about more samples.
    far = run_hlsflow("csim", *flags, "--min-agreement", "1", cwd=root)
    assert far.returncode == 3 and "inside the 95% interval" not in error_lines(far)[0], far.stderr[-2000:]


def test_not_met_never_shows_an_equal_figure(classifier):
    """The contradiction issue 37 saw: 'Gate NOT met ... agreement 99.0% ... 0.0 points short of the
    99.0% gate'. The comparison is on counts, and the display has the digits to show the difference."""
    root, flags, _ = classifier
    result = json.loads((root / "prj" / "csim.json").read_text())
    n, k = result["samples"], result["agreement_count"]
    gate = k / n + 1e-4  # a hair above the figure: equal at one decimal
    assert f"{gate:.1%}" == f"{k / n:.1%}"
    proc = run_hlsflow("csim", *flags, "--min-agreement", str(gate), cwd=root)
    error = error_lines(proc)[0]
    shown = re.search(r"agrees with Keras on (\S+) .* below the required (\S+) ", error)
    assert proc.returncode == 3 and shown and shown.group(1) != shown.group(2), error

    # tune-precision's words for a step: on counts, 9,899 of 10,000 is short of 99%, and says so.
    from hlsflow.search.tune import Trial, _short
    from hlsflow import stats

    trial = Trial("x", "a step", {}, 3, agreement=0.9899, samples=10000, agreeing=9899)
    assert trial.figure(0.99).startswith("98.99% ["), trial.figure(0.99)
    assert _short(trial, 0.99) == "1 sample short of the 99.00% gate: 9899 of 10000 agree, 9900 needed"
    assert not stats.meets(9899, 10000, 0.99) and stats.meets(297, 300, 0.99)  # 0.99 is 99/100, exactly


def test_tune_takes_no_step_whose_gain_is_inside_noise(tmp_path):
    """Tuner.noise: a step meeting the gate by fewer samples than the interval of the user's
    figure allows is no improvement; one beyond it is."""
    from dataclasses import replace

    from hlsflow.search.tune import ACCURACY_TOLERANCE, Trial, Tuner

    class Cfg:  # what Tuner reads of a config
        output_dir = tmp_path / "prj"

    tuner = Tuner(Cfg, None, None, None, 0.99, ACCURACY_TOLERANCE)
    n = 1000
    before = Trial("before", "your configuration", {}, 0, agreement=0.985, samples=n, agreeing=985)
    tuner.trials.append(before)
    high = wilson(985, n)[1]
    inside = Trial("frac+1", "a step", {}, 4, agreement=0.99, samples=n, agreeing=990)
    assert 990 / n <= high
    assert "within the 95% interval" in tuner.noise(inside)
    beyond = replace(inside, agreement=0.996, agreeing=996)
    assert 996 / n > high and tuner.noise(beyond) == ""


def test_sweep_rows_carry_the_intervals(classifier, monkeypatch):
    """A sweep's row of a point is read from the point's records: csim's counts give its intervals."""
    from hlsflow.config import load_config
    from hlsflow.search import sweep

    root, _, _ = classifier
    monkeypatch.chdir(root)
    cfg = load_config(model="classifier.keras", out="prj", samples="classifier.npz", precision="ap_fixed<8,3>",
                      announce=False)
    result = json.loads((root / "prj" / "csim.json").read_text())
    n, k = result["samples"], result["agreement_count"]
    row = sweep.collect_row({"name": "prj", "values": {}, "synth_all": False}, cfg)
    low, high = wilson(k, n)
    assert row["samples"] == n and row["agreement_ci95"] == f"[{low:.1%}, {high:.1%}]", row
    assert row["hls_accuracy_ci95"] and row["keras_accuracy_ci95"] == f"[{wilson(n, n)[0]:.1%}, 100.0%]", row
