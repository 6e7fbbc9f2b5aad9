"""hlsflow on a user's own project, outside this checkout, as a user runs it: the installed `hlsflow`
command on the host (which hands each invocation to the image), and the image alone through the
docker command line with nothing but the user's folder mounted. Real engine, real hls4ml, g++."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hlsflow.emulator import kernelcache

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def hlsflow_command() -> str:
    """The `hlsflow` console script installed beside this Python (make installs it into .venv-host)."""
    script = Path(sys.executable).parent / "hlsflow"
    if not script.exists():
        pytest.fail(f"{script} is missing: install hlsflow into this environment (`pip install -e .`, as `make` "
                    "does).", pytrace=False)
    return str(script)


def user_env(**extra) -> dict:
    """A user's environment: nothing that would make hlsflow run natively or find Vivado."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HLSFLOW_NATIVE", "HLSFLOW_IN_IMAGE", "HLSFLOW_CONFIG", "HLSFLOW_WARM", "XILINX_ROOT",
                         "VIVADO_DIR")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_hlsflow(*args, cwd, **env):
    return subprocess.run([hlsflow_command(), *map(str, args)], cwd=cwd, env=user_env(**env),
                          capture_output=True, text=True, timeout=900)


def error_lines(proc) -> list:
    return [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]


def csim_figures(out: Path) -> dict:
    """csim.json without what depends on the machine or the path (speed, workers, file names)."""
    result = json.loads((out / "csim.json").read_text())
    return {k: result[k] for k in ("samples", "top1_agreement", "keras_accuracy", "hls_accuracy", "max_abs_diff",
                                   "mean_abs_diff")}


def test_init_then_flow_from_the_host(built_image, user_dir):
    init = run_hlsflow("init", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz",
                   cwd=user_dir)
    assert init.returncode == 0, init.stdout + init.stderr
    config = user_dir / "models" / "hls4ml_config.yml"
    text = config.read_text()
    assert "KerasModel: tiny_cnn.keras" in text and "samples: tiny_samples.npz" in text
    for layer in ("conv:", "relu:", "fc:", "softmax:"):
        assert f"    {layer}" in text, layer
    assert "Next: hlsflow flow --config models/hls4ml_config.yml" in init.stdout

    again = run_hlsflow("init", "--model", "models/tiny_cnn.keras", cwd=user_dir)
    assert again.returncode == 2
    assert error_lines(again) == [f"ERROR: {config} already exists: pass --force to overwrite it, or --config "
                                  "OTHER.yml to write another file."]

    flow = run_hlsflow("flow", "--config", "models/hls4ml_config.yml", cwd=user_dir)
    assert flow.returncode == 0, flow.stdout[-3000:] + flow.stderr[-3000:]
    out = user_dir / "models" / "build" / "tiny_cnn"
    assert f"HLS project written to {out}" in flow.stdout
    assert "Synthesis skipped: no Vivado HLS found" in flow.stdout
    figures = csim_figures(out)
    assert figures["samples"] == 64 and figures["top1_agreement"] == 1.0 and figures["keras_accuracy"] == 1.0
    assert (out / "firmware" / "myproject.cpp").is_file()
    for path in (out, out / "csim.json", config):
        assert path.stat().st_uid == os.getuid(), path
    # The inputs were mounted read-only and are untouched.
    assert (user_dir / "models" / "tiny_cnn.keras").read_bytes() == (DATA / "tiny_cnn.keras").read_bytes()


def test_relative_paths_from_a_subfolder_and_csim_converts_first(built_image, user_dir):
    (user_dir / "work").mkdir()
    trees = user_dir / "accepted"  # the C++ trees g++ accepted: this test's own, mounted into each container
    runs = [run_hlsflow("csim", "--model", "../models/tiny_cnn.keras", "--samples", "../models/tiny_samples.npz",
                        "--out", f"../out/{name}", "--max-samples", "16", cwd=user_dir / "work",
                        HLSFLOW_CPP_ACCEPTED=str(trees)) for name in ("tiny", "again")]
    for proc in runs:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = user_dir / "out" / "tiny"
    assert f"==> csim: there is no HLS project at {out}; converting first" in runs[0].stdout
    assert "using hlsflow's defaults" in runs[0].stdout
    assert csim_figures(out)["samples"] == 16
    # The same design in another folder, in another container: g++ accepted its tree in the first.
    assert "Checking that g++ accepts" in runs[0].stdout and "Checking that g++ accepts" not in runs[1].stdout
    assert "g++ accepted this same C++ before" in runs[1].stdout
    assert [entry.stat().st_uid for entry in trees.iterdir()] == [os.getuid()]


def test_missing_model_is_named_on_the_host(built_image, user_dir):
    proc = run_hlsflow("convert", "--model", "/data/models/my.keras", cwd=user_dir)
    assert proc.returncode == 2
    assert error_lines(proc) == ["ERROR: Model file /data/models/my.keras does not exist: give the path of a .keras, "
                                 ".h5 or .json model with --model."]
    # Caught before any container started: the entrypoint's line about Vivado never appeared.
    assert "hlsflow: " not in proc.stderr and "Traceback" not in proc.stderr
    missing = run_hlsflow("csim", "--model", "models/tiny_cnn.keras", "--samples", "models/nope.npz", cwd=user_dir)
    assert missing.returncode == 2
    assert error_lines(missing)[0].startswith(f"ERROR: Sample file {user_dir}/models/nope.npz not found")
    no_config = run_hlsflow("convert", cwd=user_dir)
    assert no_config.returncode == 2
    assert error_lines(no_config)[0].startswith(f"ERROR: No config given and no hls4ml_config.yml in {user_dir}")


def test_typo_in_the_config_is_one_sentence(built_image, user_dir):
    config = user_dir / "flow.yml"
    config.write_text("KerasModel: models/tiny_cnn.keras\nIOTyp: io_stream\n")
    proc = run_hlsflow("convert", "--config", config, cwd=user_dir)
    assert proc.returncode == 2
    assert error_lines(proc) == [f"ERROR: IOTyp: unknown key in {config}; did you mean IOType?"]
    assert not (user_dir / "build").exists() or not any((user_dir / "build").iterdir())


def docker_run(image, *args, cwd, env=()):
    options = [f"--env={name}={value}" for name, value in dict(env).items()]
    return subprocess.run(["docker", "run", "--rm", "-v", f"{cwd}:{cwd}", "-w", str(cwd), *options, image, *args],
                          capture_output=True, text=True, timeout=900)


def compiled_kernels(proc) -> list:
    """What numba compiled and saved, by its own account (NUMBA_DEBUG_CACHE=1)."""
    return [line for line in proc.stdout.splitlines() if line.startswith("[cache] data saved")]


def test_the_image_alone_with_docker_run(built_image, user_dir):
    """A collaborator with only the image: nothing of this checkout is mounted."""
    work = user_dir / "models"
    numba_says = {"NUMBA_DEBUG_CACHE": "1"}
    proc = docker_run(built_image, "hlsflow", "flow", "--model", "tiny_cnn.keras", "--samples", "tiny_samples.npz",
                      cwd=work, env=numba_says)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert str(REPO) not in proc.stdout
    assert csim_figures(work / "build" / "tiny_cnn")["top1_agreement"] == 1.0
    # The fast engine's kernels came compiled with the image (for this CPU's x86-64 level): a fresh
    # container compiles none (else: `invoke kernel-signatures`, and rebuild the image).
    shipped = kernelcache.cpu_level() is not None
    if shipped:
        assert "[cache] data loaded" in proc.stdout and compiled_kernels(proc) == [], compiled_kernels(proc)
    else:  # none shipped for this CPU (another architecture, older than x86-64-v3): compiled here, and said so
        assert compiled_kernels(proc), proc.stdout[-3000:]
    # The task name alone works too, and files belong to the owner of the folder.
    os.chown(work, 4321, 4321)
    csim = docker_run(built_image, "csim", "--model", "tiny_cnn.keras", "--samples", "tiny_samples.npz",
                      "--out", "again", cwd=work, env=numba_says)
    assert csim.returncode == 0, csim.stderr[-3000:]
    assert (work / "again" / "csim.json").stat().st_uid == 4321
    assert not shipped or compiled_kernels(csim) == []  # another user reads them as well
    # A mistake is one sentence there as well.
    bad = docker_run(built_image, "convert", "--model", "nope.keras", cwd=work)
    assert bad.returncode == 2
    assert error_lines(bad) == [f"ERROR: Model file {work}/nope.keras does not exist: give the path of a .keras, "
                                ".h5 or .json model with --model."]


def test_flow_with_a_mounted_xilinx_tree(built_image, user_dir):
    """Synthesis from a user's folder: the Xilinx tree (here the stand-in, a test double that lays
    down real 2018.2 reports) is mounted read-only, like an install under /opt/Xilinx."""
    standin = REPO / "tests" / "standin_xilinx"
    proc = run_hlsflow("flow", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz",
                       "--part", "xc7vx690tffg1927-2", cwd=user_dir, XILINX_ROOT=standin, STANDIN_DELAY="0")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = user_dir / "build" / "tiny_cnn"
    line = next(line for line in proc.stdout.splitlines() if "C synthesis of" in line)
    assert f"({standin}/Vivado/2018.2/bin/vivado_hls) (test double" in line, line
    assert (out / "vivado_hls_standin.args").read_text().splitlines() == [
        "-f build_prj.tcl reset=0 csim=0 synth=1 cosim=0 validation=0 export=0 vsynth=0 fifo_opt=0"]
    report = json.loads((out / "report.json").read_text())
    assert report["produced_by_test_double"] is True and report["target_part"] == "xc7vx690tffg1927-2"
    assert (out / "utilisation.png").read_bytes()[:4] == b"\x89PNG"


def test_host_and_image_alone_write_the_same_project(built_image, docker_client, user_dir, tmp_path_factory):
    """Byte-identical projects whoever converts, wherever: the installed command on the host (one
    container per invocation) and the image alone, into two unrelated folders; `verify` on the
    host, with no engine involved, accepts both."""
    # The image pinned: the GitLab job test (test_ci_files.py) tags its own build hlsflow:latest for
    # a while, and this test compares the manifest's image id with built_image's.
    host = run_hlsflow("convert", "--model", "models/tiny_cnn.keras", "--out", "out/host", cwd=user_dir,
                       HLSFLOW_IMAGE=built_image)
    assert host.returncode == 0, host.stdout[-3000:] + host.stderr[-3000:]
    other = tmp_path_factory.mktemp("elsewhere")
    shutil.copy(DATA / "tiny_cnn.keras", other / "model.keras")
    alone = docker_run(built_image, "convert", "--model", "model.keras", "--out", "deep/er/alone", cwd=other)
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]
    a, b = user_dir / "out" / "host", other / "deep" / "er" / "alone"
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (a, b)]
    assert manifests[0]["tree_hash"] == manifests[1]["tree_hash"]
    assert f"Project tree sha256: {manifests[0]['tree_hash']}" in host.stdout + alone.stdout
    files = [{p.relative_to(d): p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name != "manifest.json"}
             for d in (a, b)]
    assert files[0] == files[1]
    # The launcher tells the container which image it is; the image alone cannot know its own id.
    assert manifests[0]["image"]["id"] == docker_client.images.get(built_image).id
    assert manifests[0]["image"]["labels"]["org.opencontainers.image.version"]
    for out in (a, b):
        verify = run_hlsflow("verify", out, cwd=user_dir)
        assert verify.returncode == 0, verify.stderr
        assert "matches its manifest" in verify.stdout and "hlsflow: " not in verify.stderr
