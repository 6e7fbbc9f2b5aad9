"""manifest.json, verify and incremental stages, as a user meets them: real hls4ml, real g++ and
the Vivado stand-in (tests/standin_xilinx, a test double)."""

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import standin_hang
from conftest import REPO_ROOT, error_lines, flow_env, run_invoke

STANDIN = REPO_ROOT / "tests" / "standin_xilinx" / "Vivado" / "2018.2"


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


def runs_of(proc_out_before, out):
    """The run entries an invocation added to the manifest."""
    return manifest(out)["runs"][proc_out_before:]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_line(proc):
    return [line for line in proc.stdout.splitlines() if line.startswith("Project tree sha256: ")]


def files_of(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def test_the_same_design_gives_the_same_bytes_in_any_folder(small_project, tmp_path):
    a, b = tmp_path / "a", tmp_path / "deeper" / "elsewhere" / "b"
    renamed = tmp_path / "another name.keras"  # the same model under another name is the same design
    renamed.write_bytes(small_project["model"].read_bytes())
    first = run_invoke("convert", "--config", small_project["config"], "--out", a)
    second = run_invoke("convert", "--config", small_project["config"], "--out", b, "--model", renamed)
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:] + second.stderr[-2000:]
    assert files_of(a) == files_of(b)
    assert manifest(b)["inputs"]["model"]["sha256"] == {"another name.keras": digest(small_project["model"])}
    assert tree_line(first) == tree_line(second) == [f"Project tree sha256: {manifest(a)['tree_hash']}"]
    config = (a / "hls4ml_config.yml").read_text()
    stamp = manifest(a)["stages"]["convert"]["stamp"]
    assert str(tmp_path) not in config and f"Stamp: '{stamp}'" in config
    assert f"LIB_STAMP={stamp}" in (a / "build_lib.sh").read_text()
    # The model in the project is the user's file, byte for byte (hls4ml's re-saved copy is a fresh zip).
    assert (a / "keras_model.keras").read_bytes() == small_project["model"].read_bytes()


def test_precision_reuse_factor_and_weights_change_the_tree_hash(small_project, tmp_path):
    import numpy as np
    import tensorflow as tf

    base = run_invoke("convert", "--config", small_project["config"], "--out", tmp_path / "base")
    model = tf.keras.models.load_model(small_project["model"])
    kernel, bias = model.get_layer("fc").get_weights()
    kernel[0, 0] += np.float32(0.5)
    model.get_layer("fc").set_weights([kernel, bias])
    edited = tmp_path / "edited.keras"
    model.save(edited)
    variants = {
        "precision": run_invoke("convert", "--config", small_project["config"], "--out", tmp_path / "p",
                                "--precision", "ap_fixed<18,8>"),
        "reuse": run_invoke("convert", "--config", small_project["config"], "--out", tmp_path / "r",
                            "--reuse-factor", "2"),
        "weight": run_invoke("convert", "--config", small_project["config"], "--out", tmp_path / "w",
                             "--model", edited),
    }
    hashes = {name: tree_line(proc) for name, proc in variants.items()}
    assert all(len(h) == 1 for h in hashes.values()), {n: p.stderr[-1500:] for n, p in variants.items()}
    assert len({tuple(h) for h in hashes.values()} | {tuple(tree_line(base))}) == 4, hashes
    # Each design names its own emulation library.
    stamps = {manifest(tmp_path / d)["stages"]["convert"]["stamp"] for d in ("base", "p", "r", "w")}
    assert len(stamps) == 4


def test_verify_passes_on_a_fresh_output_and_names_what_was_edited(small_project, tmp_path):
    out = tmp_path / "v"
    made = run_invoke("csim", "--max-samples", "8", "report", "--config", small_project["config"], "--out", out,
                      env=flow_env(XILINX_VIVADO=STANDIN, STANDIN_DELAY="0"))
    assert made.returncode == 0, made.stderr[-2000:]
    ok = run_invoke("verify", out)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().startswith(f"{out} matches its manifest:")
    assert "convert" in ok.stdout and "csim" in ok.stdout and "synth" in ok.stdout and "report" in ok.stdout

    weights = sorted((out / "firmware" / "weights").glob("*.txt"))[0]
    original = weights.read_bytes()
    weights.write_bytes(original.replace(b",", b", ", 1))
    bad = run_invoke("verify", out)
    assert bad.returncode == 1
    rel = weights.relative_to(out).as_posix()
    assert f"  changed: {rel} (made by convert)" in bad.stderr.splitlines()
    assert error_lines(bad) == [f"ERROR: {out} does not match its manifest: 1 difference(s), listed above; run "
                                "the flow again to remake the outputs, or find out what changed them."]
    weights.write_bytes(original)

    report = out / "report.md"
    report.write_text(report.read_text().replace("does NOT fit", "fits"))
    (out / "firmware" / "extra.h").write_text("// slipped in\n")
    bad = run_invoke("verify", out)
    assert bad.returncode == 1
    assert "  changed: report.md (made by report)" in bad.stderr.splitlines()
    assert "  added: firmware/extra.h (made by no recorded stage)" in bad.stderr.splitlines()


def test_verify_without_a_manifest_is_one_sentence(tmp_path):
    proc = run_invoke("verify", tmp_path)
    assert proc.returncode == 2  # nothing to compare with (1 is for a directory that does not match)
    from hlsflow import __version__

    assert error_lines(proc) == [f"ERROR: {tmp_path} has no manifest.json, so it is not an output folder of hlsflow "
                                 f"(hlsflow {__version__} writes one with every stage): give the folder a flow run "
                                 "wrote (its --out)."]


def test_a_second_flow_with_nothing_changed_runs_no_stage(small_project, tmp_path):
    out = tmp_path / "again"
    args = ("flow", "--config", small_project["config"], "--out", out)
    first = run_invoke(*args, env=flow_env(XILINX_VIVADO=STANDIN, STANDIN_DELAY="0"))
    assert first.returncode == 0, first.stderr[-2000:]
    count = len(manifest(out)["runs"])
    second = run_invoke(*args, env=flow_env(XILINX_VIVADO=STANDIN, STANDIN_DELAY="0"))
    assert second.returncode == 0, second.stderr[-2000:]
    runs = runs_of(count, out)
    assert [r["stage"] for r in runs] == ["convert", "csim", "synth", "report"]
    assert all(r["reused"] and r["status"] == "ok" and r["exit_status"] == 0 for r in runs), runs
    assert all(r["command"].endswith(" ".join(map(str, args))) for r in runs), runs
    assert len((out / "vivado_hls_standin.args").read_text().splitlines()) == 1
    assert "Converting with hls4ml" not in second.stdout and "Keras reference" not in second.stdout


def test_a_changed_sample_count_reruns_csim_only(small_project, tmp_path):
    out = tmp_path / "samples"
    # The C++ engine, whose g++ library is a stage of its own that a rerun must reuse.
    first = run_invoke("csim", "--config", small_project["config"], "--out", out, "--max-samples", "8", "--engine", "cpp")
    assert first.returncode == 0, first.stderr[-2000:]
    count = len(manifest(out)["runs"])
    second = run_invoke("csim", "--config", small_project["config"], "--out", out, "--max-samples", "16",
                        "--engine", "cpp")
    assert second.returncode == 0, second.stderr[-2000:]
    tree = manifest(out)["tree_hash"]
    runs = {r["stage"]: r["reused"] for r in runs_of(count, out)}
    runs.pop("fault-analysis", None)  # made from the samples too, when the figure is low
    # The project is current: no convert at all; Keras runs on the new count.
    assert runs == {"build-emulation": True, "csim": False, "keras-reference": False}, runs
    assert manifest(out)["tree_hash"] == tree
    assert "==> csim runs again: its max_samples changed" in second.stdout
    assert json.loads((out / "csim.json").read_text())["samples"] == 16


def test_a_changed_reuse_factor_reconverts_and_marks_synthesis_stale(small_project, tmp_path):
    out = tmp_path / "rf"
    env = flow_env(XILINX_VIVADO=STANDIN, STANDIN_DELAY="0")
    assert run_invoke("synth", "--config", small_project["config"], "--out", out, env=env).returncode == 0
    before = manifest(out)["tree_hash"]
    proc = run_invoke("convert", "--config", small_project["config"], "--out", out, "--reuse-factor", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = manifest(out)
    assert state["tree_hash"] != before
    assert state["stages"]["synth"]["status"] == "stale"
    assert state["stages"]["synth"]["stale_because"] == "the project was written again"
    assert not (out / "myproject_prj").exists()
    again = run_invoke("report", "--config", small_project["config"], "--out", out, "--reuse-factor", "2", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"==> report: the synthesis results are not current in {out}; synthesising first" in again.stdout
    assert manifest(out)["stages"]["synth"]["status"] == "ok"
    assert manifest(out)["stand_in"] is True


def test_a_synthesis_killed_midway_is_redone(small_project, tmp_path):
    out = tmp_path / "killed"
    assert run_invoke("convert", "--config", small_project["config"], "--out", out).returncode == 0
    env = flow_env(XILINX_VIVADO=STANDIN, STANDIN_MODE="hang")
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "synth", "--config", str(small_project["config"]),
                             "--out", str(out)], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        standin_hang.wait_hanging(out)  # vivado_hls is stuck in synthesis, with a child of its own
    finally:
        # As a machine going down would: every process of the run dies at once, and nothing gets
        # to clean up. vivado_hls runs in a process group of its own: the tree is read from /proc.
        for pid in [proc.pid, *standin_hang.descendants(proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    standin_hang.wait_none_left(out)
    assert manifest(out)["stages"]["synth"]["status"] == "running"

    redo = run_invoke("synth", "--config", small_project["config"], "--out", out,
                      env=flow_env(XILINX_VIVADO=STANDIN, STANDIN_DELAY="0"))
    assert redo.returncode == 0, redo.stderr[-2000:]
    assert "==> Synthesis runs again: its last run did not finish" in redo.stdout
    assert manifest(out)["stages"]["synth"]["status"] == "ok"
    assert run_invoke("verify", out).returncode == 0


def test_the_manifest_records_inputs_environment_and_runs(small_project, tmp_path):
    out = tmp_path / "m"  # the C++ engine: its g++ build is recorded as a run too
    proc = run_invoke("csim", "--config", small_project["config"], "--out", out, "--max-samples", "8", "--engine", "cpp")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = manifest(out)
    assert m["format"] == "hlsflow-manifest/1"
    import hashlib

    def sha(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert m["inputs"]["model"] == {"path": str(small_project["model"]),
                                    "sha256": {"small.keras": sha(small_project["model"])}}
    assert m["inputs"]["config"]["sha256"] == sha(small_project["config"])
    assert m["inputs"]["config"]["effective"]["HLSConfig"]["Model"]["ReuseFactor"] == 4
    assert m["inputs"]["samples"] == {"path": str(small_project["samples"]), "sha256": sha(small_project["samples"])}
    assert m["versions"]["TensorFlow"] == "2.15.0" and m["versions"]["numpy"] == "1.25.0"
    assert m["versions"]["hls4ml"] == "1.3.0" and m["versions"]["g++"].startswith("g++")
    assert m["stand_in"] is False
    # The image's package list (from its SBOM), so that `compare-image` can read a manifest.
    assert m["image"]["packages"]["pypi/numpy"] == "1.25.0" and m["image"]["packages"]["pypi/hls4ml"] == "1.3.0"
    assert m["image"]["sbom_sha256"] == sha(__import__("pathlib").Path(os.environ["HLSFLOW_SBOM"]))
    csim = m["stages"]["csim"]
    assert csim["outputs"]["csim.json"] == sha(out / "csim.json")
    assert csim["environment"] in m["environments"]
    # in the order they started; csim's cached steps are runs of their own
    assert [r["stage"] for r in m["runs"] if r["stage"] != "fault-analysis"] == \
        ["convert", "csim", "keras-reference", "build-emulation"]
    # Each run's start and length as recorded: convert ends before csim starts, csim's cached steps
    # (runs of their own) happen inside it, and the g++ build took time (a start is kept to the second).
    assert all(r["started"].endswith("+00:00") for r in m["runs"])
    span = {r["stage"]: (datetime.datetime.fromisoformat(r["started"]).timestamp(), r["seconds"]) for r in m["runs"]}
    second = 1.0
    assert span["convert"][0] + span["convert"][1] <= span["csim"][0] + second, m["runs"]
    for step in ("keras-reference", "build-emulation"):
        assert span["csim"][0] <= span[step][0] + second, (step, m["runs"])
        assert span[step][0] + span[step][1] <= span["csim"][0] + span["csim"][1] + second, (step, m["runs"])
    assert span["build-emulation"][1] > 0, m["runs"]
    shutil.rmtree(out)
