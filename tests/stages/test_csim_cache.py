"""csim's set-up is kept in the output folder (csim_cache/, recorded in the manifest): the fast
engine by the project's tree and the engine's code, Keras's outputs by the model, the samples and
their count. A second csim on a current project reuses both (and imports neither TensorFlow nor
hls4ml); a change to what either is made from, or a damaged file, makes it again, with the same
figures."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, flow_env

# What differs between two runs of the same emulation: the clock and the machine's load.
TIMING = ("images_per_second", "workers")


def _figures(out):
    result = json.loads((out / "csim.json").read_text())
    return {k: v for k, v in result.items() if k not in TIMING}


def _csim(cfg, capsys, **flags) -> str:
    from hlsflow import flow

    flow.csim(cfg, force=True, **flags)
    return capsys.readouterr().out


@pytest.fixture
def project(small_project, tmp_path):
    """small_project converted into a folder of this test's own, its samples copied beside it."""
    from hlsflow import flow
    from hlsflow.config import load_config

    samples = tmp_path / "samples.npz"
    shutil.copy(small_project["samples"], samples)
    cfg = load_config(path=small_project["config"], out=str(tmp_path / "prj"), samples=str(samples), announce=False)
    flow.convert(cfg)
    return cfg, samples


def test_second_csim_reuses_the_set_up_with_the_same_figures(project, capsys):
    from hlsflow.emulator import engines
    from hlsflow.stages import emulate
    from hlsflow.state import outdir, verify

    cfg, samples = project
    out = cfg.output_dir
    first = _csim(cfg, capsys)
    assert "reused from" not in first, first
    built = _figures(out)
    manifest = outdir.Manifest(out).stages
    assert manifest["fast-engine"]["status"] == manifest["keras-reference"]["status"] == "ok"
    assert (out / engines.ENGINE_FILE).is_file() and (out / emulate.REFERENCE).is_file()

    second = _csim(cfg, capsys)
    assert f"Fast engine: reused from {out / engines.ENGINE_FILE}" in second, second
    assert f"reused from {out / emulate.REFERENCE}" in second, second
    assert _figures(out) == built
    assert verify.verify(out)["stages"]  # the cache files are the records' outputs: the folder matches its manifest
    assert outdir.foreign_files(out) == []

    # A csim in a fresh process imports neither TensorFlow nor hls4ml: the set-up is all reused.
    code = ("import sys; from hlsflow import flow; from hlsflow.config import load_config; "
            f"cfg = load_config(path={str(cfg.source)!r}, out={str(out)!r}, samples={str(samples)!r}, announce=False); "
            "flow.csim(cfg, force=True); "
            "print('IMPORTED', sorted(m for m in ('tensorflow', 'keras', 'hls4ml') if m in sys.modules))")
    env = flow_env(PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "IMPORTED []" in proc.stdout, proc.stdout[-2000:]
    assert _figures(out) == built


def test_what_the_set_up_is_made_from_changing_makes_it_again(project, capsys):
    from hlsflow import flow
    from hlsflow.config import load_config

    cfg, samples = project
    out = cfg.output_dir
    _csim(cfg, capsys)

    # Other samples in the same file: Keras runs on them; the figures are those of a cache-less run.
    x, y = np.load(samples)["X"], np.load(samples)["y"]
    np.savez(samples, X=x[::-1].copy(), y=y[::-1].copy())
    text = _csim(cfg, capsys)
    assert "Keras reference on 40 samples" in text and "model and samples unchanged" not in text, text
    changed = _figures(out)
    shutil.rmtree(out / "csim_cache")
    _csim(cfg, capsys)
    assert _figures(out) == changed

    # Fewer samples: Keras runs again on them, the engine is the project's still.
    text = _csim(cfg, capsys, max_samples=25)
    assert "Fast engine: reused" in text and "Keras reference on 25 samples" in text, text
    assert "reused from" not in text.split("Keras reference on 25")[1].splitlines()[0]
    assert _figures(out)["samples"] == 25

    # Another project (other types): converted again, and the engine is built for it.
    other = load_config(path=cfg.source, out=str(out), samples=str(samples), precision="ap_fixed<14,5>",
                        announce=False)
    flow.convert(other)
    text = _csim(other, capsys)
    assert "Fast engine: reused" not in text and "model and samples unchanged" not in text, text
    assert _figures(out)["max_abs_diff"] != changed["max_abs_diff"]  # the narrower types were emulated
    assert "Fast engine: reused" in _csim(other, capsys)


def test_a_damaged_cache_is_made_again_without_a_traceback(project, capsys):
    from hlsflow.emulator import engines
    from hlsflow.files import sha256
    from hlsflow.stages import emulate
    from hlsflow.state import outdir, verify

    cfg, _ = project
    out = cfg.output_dir
    _csim(cfg, capsys)
    built = _figures(out)

    # Damaged files (their hashes no longer those recorded).
    (out / engines.ENGINE_FILE).write_bytes(b"not a pickle")
    (out / emulate.REFERENCE).write_bytes(b"\x93NUMPY garbage")
    text = _csim(cfg, capsys)
    assert "reused" not in text and "Traceback" not in text, text
    assert _figures(out) == built
    verify.verify(out)

    # Files that match their records but do not load (a manifest edited to fit): never trusted.
    (out / engines.ENGINE_FILE).write_bytes(b"\x80\x05not a pickle")
    np.save(out / emulate.REFERENCE, np.zeros((3, 2), np.float32))  # the wrong shape for 40 samples
    manifest = outdir.Manifest(out)
    for name, rel in (("fast-engine", engines.ENGINE_FILE), ("keras-reference", emulate.REFERENCE)):
        manifest.stages[name]["outputs"][rel] = sha256(out / rel)
    manifest.save()
    text = _csim(cfg, capsys)
    assert "reused" not in text and "Traceback" not in text, text
    assert _figures(out) == built
    assert "Fast engine: reused" in _csim(cfg, capsys)  # and kept again


def test_an_engine_that_cannot_be_stored_is_built_again_next_time(tmp_path, capsys):
    """A layer whose state does not pickle (here a lock) leaves the engine unkept, in one line:
    csim goes on, and the next one builds it again."""
    import threading

    from hlsflow.emulator import engines, fastemu
    from hlsflow.fixedtype import FixedType
    from hlsflow.state import outdir

    lock = threading.Lock()
    engine = fastemu.Engine([fastemu.Step("x", "Input", [], ["x"], FixedType(16, 6), None),
                             fastemu.Step("y", "Activation", ["x"], ["y"], FixedType(16, 6),
                                          lambda ins: ins[0][0] if lock else None)], (2,), "y")
    caches, inputs = outdir.Caches(tmp_path), {"project": "p"}
    engines._keep(caches, inputs, engine)
    assert "Fast engine: not kept for the next csim (TypeError)" in capsys.readouterr().out
    assert outdir.stage_record(tmp_path, engines.ENGINE_RECORD) is None
    assert engines._cached_engine(caches, inputs) is None

    engine.steps[1].run = lambda ins: ins[0][0]  # storable: kept, and read back as the same engine
    engines._keep(caches, inputs, engine)
    again = engines._cached_engine(caches, inputs)
    x = np.array([[0.5, -1.25]], np.float32)
    assert isinstance(again, fastemu.Engine) and np.array_equal(again.run(x), engine.run(x))
