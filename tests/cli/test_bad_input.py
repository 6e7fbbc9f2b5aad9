"""Every failure a user can cause ends in one sentence, a non-zero exit, and the earlier good
output left as it was."""

import hashlib
import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, error_lines, flow_env, run_invoke


def tree_digest(root):
    """The results, without manifest.json (which records the failed run too)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json"):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    import tensorflow as tf

    root = tmp_path_factory.mktemp("bad")
    (root / "garbage.keras").write_bytes(b"this is not a zip archive")
    inp = tf.keras.Input((4, 4, 2))
    out = tf.keras.layers.Conv2DTranspose(2, 2, name="upconv")(inp)
    tf.keras.Model(inp, out).save(root / "unsupported.keras")
    (root / "a_file").write_text("")

    class BespokeDense(tf.keras.layers.Dense):  # a layer of the user's own, whose code the loader does not have
        pass

    inp = tf.keras.Input((4,))
    tf.keras.Model(inp, BespokeDense(2, name="own")(inp)).save(root / "custom_layer.keras")
    inp = tf.keras.Input((4, 6))  # named like the attribute hls4ml keeps beside a Permute's output
    out = tf.keras.layers.Dense(3)(tf.keras.layers.Flatten()(tf.keras.layers.Permute((2, 1), name="perm")(inp)))
    tf.keras.Model(inp, out).save(root / "attribute_named.keras")
    return root


def cases(bad):
    return [
        (["--model", bad / "missing.keras"], "does not exist: give the path of a .keras"),
        (["--model", bad / "garbage.keras"], "is not a Keras model TensorFlow 2.15.0 can load"),
        (["--model", bad / "unsupported.keras"], "Layer 'upconv' (Conv2DTranspose) cannot be converted by hls4ml"),
        (["--precision", "ap_fixd<16,6>"], "is not a fixed-point type"),
        (["--reuse-factor", "0"], "ReuseFactor '0' (--reuse-factor) is not a positive integer"),
        (["--part", "xc7z020clg400-1;"], "Part 'xc7z020clg400-1;' is not a part name"),
        (["--out", bad / "a_file" / "prj"], "Cannot write the output directory"),
        (["--model", bad / "custom_layer.keras"], "uses the custom layer BespokeDense, which Keras cannot load"),
        (["--model", bad / "attribute_named.keras"], "layer 'perm' has the name of one of hls4ml's layer attributes"),
    ]


@pytest.mark.parametrize("index", range(9))
def test_bad_convert_input(converted, bad_models, index):
    project, _ = converted
    flags, message = cases(bad_models)[index]
    before = tree_digest(project["out"])
    proc = run_invoke("convert", "--config", project["config"], "--force", *flags)
    assert proc.returncode != 0
    errors = error_lines(proc)
    assert len(errors) == 1, proc.stderr
    assert message in errors[0]
    assert errors[0].rstrip().endswith("."), "one sentence, ending in what to do"
    assert "Traceback" not in proc.stderr
    assert tree_digest(project["out"]) == before
    assert not list(project["out"].parent.glob(".prj.partial-*"))
    manifest = json.loads((project["out"] / "manifest.json").read_text())
    assert manifest["stages"]["convert"]["status"] == "ok"  # the previous project is still whole and current
    if manifest["runs"][-1]["stage"] == "convert":  # errors found before any work record no run
        assert manifest["runs"][-1]["status"] == "failed" and manifest["runs"][-1]["exit_status"] == 2


def test_failed_conversion_keeps_the_previous_project(converted, tmp_path):
    """A conversion that dies after writing started leaves no half project in place. The write
    really fails: the process may write no file larger than half of hls4ml's largest template
    (RLIMIT_FSIZE, set by util-linux's prlimit; Python ignores SIGXFSZ, so the write fails with
    EFBIG), which hls4ml copies into the project after its own files, as a full disk would stop it."""
    project, _ = converted
    out = tmp_path / "prj"
    ok = run_invoke("convert", "--config", project["config"], "--out", out)
    assert ok.returncode == 0
    before = tree_digest(out)
    largest = max((p for p in out.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    limit = largest.stat().st_size // 2
    assert (out / "manifest.json").stat().st_size < limit and "firmware" in largest.parts, (largest, limit)
    proc = subprocess.run(["prlimit", f"--fsize={limit}", sys.executable, "-m", "invoke", "convert", "--config",
                           str(project["config"]), "--out", str(out), "--force", "--precision", "ap_fixed<12,5>"],
                          cwd=REPO_ROOT, env=flow_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "==> Writing the HLS project to" in proc.stdout  # the design was converted; writing it failed
    errors = error_lines(proc)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"{largest.relative_to(out)} (File too large): " in errors[0], errors
    assert errors[0].endswith("."), errors
    assert tree_digest(out) == before
    assert not list(out.parent.glob(".prj.partial-*")) and not list(out.parent.glob(".prj.old-*"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["convert"]["status"] == "ok"
    assert manifest["runs"][-1]["stage"] == "convert" and manifest["runs"][-1]["status"] == "failed"


def _reference_figures():
    """The reference design's figures from their sources, not from hlsflow: each Keras layer with a
    kernel (n_in = kernel inputs x channels, n_out = filters or units, applied at every output
    pixel), the ReuseFactor the config asks for, and the one hls4ml's Vivado backend uses when that
    is not among its get_valid_reuse_factors (its get_closest_reuse_factor)."""
    import math

    import tensorflow as tf
    import yaml
    from hls4ml.backends import get_backend

    config = yaml.safe_load((REPO_ROOT / "project" / "hls4ml_config.yml").read_text())
    assert config["Part"] == "xc7z010clg400-1"
    asked = config["HLSConfig"]["Model"]["ReuseFactor"]
    per_layer = config["HLSConfig"].get("LayerName", {})
    model = tf.keras.models.load_model(REPO_ROOT / "models" / "model_2_15.keras")
    backend = get_backend("Vivado")
    macs, multipliers, silently = 0, 0, {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        n_in, n_out = math.prod(kernel.shape[:-1]), int(kernel.shape[-1])
        positions = math.prod(layer.output_shape[1:-1])  # output pixels; 1 for a Dense layer
        rf = per_layer.get(layer.name, {}).get("ReuseFactor", asked)
        valid = backend.get_valid_reuse_factors(n_in, n_out)
        used = rf if rf in valid else backend.get_closest_reuse_factor(valid, rf)
        if used != rf:
            silently[layer.name] = used
        macs += positions * n_in * n_out
        multipliers += math.ceil(n_in * n_out / used)
    return asked, macs, multipliers, silently


def test_reference_model_preflight_says_it_does_not_fit():
    asked, macs, multipliers, silently = _reference_figures()
    assert multipliers > 80 and silently, (multipliers, silently)  # what the test is about: it does not fit
    proc = run_invoke("check")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    total = next(line for line in out.splitlines() if line.startswith("| TOTAL"))
    assert f"| {macs:,} " in total and f"| {multipliers:,} " in total, (total, macs, multipliers)
    for layer, used in silently.items():
        assert f"{layer}: ReuseFactor {asked} is invalid" in out and f"hls4ml silently uses {used}" in out
    assert out.count(f"ReuseFactor {asked} is invalid") == len(silently)
    assert f"VERDICT: does NOT fit xc7z010clg400-1 (~{multipliers:,} multipliers for 80 DSPs" in out
    strict = run_invoke("check", "--strict")
    assert strict.returncode == 1 and "does not fit" in error_lines(strict)[0]


def test_preflight_catches_the_io_parallel_assertion():
    proc = run_invoke("check", "--io-type", "io_parallel")
    assert proc.returncode == 1
    assert "ERROR: s2_shortcut: io_parallel Resource convolution with ReuseFactor 32 > filt_h*filt_w*n_chan = 16" \
        in proc.stdout
    assert "io_parallel unrolls whole convolutions on large inputs" in proc.stdout


@pytest.mark.parametrize("task", ["csim", "profile", "tune-precision"])
def test_no_samples_is_one_sentence(converted, tmp_path, task):
    project, _ = converted
    config = tmp_path / "no_samples.yml"
    text = project["config"].read_text().replace(f"samples: {project['samples']}", "samples: null")
    assert "samples: null" in text
    config.write_text(text)
    proc = run_invoke(task, "--config", config, "--out", project["out"])
    assert proc.returncode != 0
    assert error_lines(proc) == ["ERROR: No samples given: pass --samples FILE (.npy/.npz with X and optional y) "
                                 "or set Flow.emulation.samples in the config."]
    assert "Traceback" not in proc.stderr
