"""Shared fixtures: the real Vivado outputs (tests/standin_xilinx/fixtures) and the Vivado stand-in."""

import shutil
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
# Import hlsflow from this checkout, installed or not.
if str(TESTS_DIR.parent) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR.parent))


# The longest test files first, so the short ones fill the workers' ends instead of one long file
# ending a run alone: pytest-xdist hands each file whole to a worker (--dist loadfile) in this
# order when it keeps it (--no-loadscope-reorder, dev/testing.py; by default it sorts files by
# their number of tests, which put the long ones last). Times from whole runs, 2026-12-02. The
# flow tests and the image tests run as two sessions; each sees only its own files here.
# Image tests: test_docker_image.py starts at once, as its first test makes the session's tarball
# the CI and Podman files wait for; test_slurm_lost.py has two tests, so xdist gives its worker
# the fifth file at once, to run after them: a short one.
LONGEST_FIRST = ("test_fastemu.py", "test_cause_advice.py", "test_quantized_models.py", "test_sweep.py", "test_any_part.py", "test_notebook_own_config.py", "test_library.py",
                 "test_tune_widening.py", "test_published_like.py", "test_distributed_arithmetic.py", "test_wide_products.py", "test_spatial.py", "test_precision.py", "test_activations.py",
                 "test_safety.py", "test_handed_files.py", "test_model_safety.py", "test_kernels.py", "test_ap_fixed_table.py", "test_manifest.py", "test_init_types.py",
                 "test_csim_metrics.py", "test_unchanged_outputs.py", "test_steps.py", "test_quiet.py", "test_flow.py", "test_csim_cache.py", "test_flag_grammar.py",
                 # tests/image
                 "test_keras3_da_qkeras.py", "test_slurm_lost.py", "test_keras3_lane.py", "test_notebook_browser.py", "test_docker_image.py", "test_registry.py", "test_user_project.py", "test_slurm.py",
                 "test_sbom.py", "test_front_door.py", "test_input_grammar.py", "test_warm.py", "test_ci_files.py", "test_lab.py", "test_flow_in_image.py", "test_podman.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: the rest keep their order


@pytest.fixture
def vivado_fixtures_dir() -> Path:
    """Real Vivado HLS output (read-only data, see its README), kept inside the stand-in's tree so
    that the tree alone, mounted like a Xilinx install, carries what the stand-in copies."""
    return TESTS_DIR / "standin_xilinx" / "fixtures"


@pytest.fixture
def standin_xilinx_dir() -> Path:
    """tests/standin_xilinx: the fake Xilinx install tree (a test double)."""
    return TESTS_DIR / "standin_xilinx"


@pytest.fixture
def standin_vivado_hls(standin_xilinx_dir) -> Path:
    """The stand-in vivado_hls executable."""
    return standin_xilinx_dir / "Vivado" / "2018.2" / "bin" / "vivado_hls"


@pytest.fixture
def hls_output_from_fixtures(tmp_path, vivado_fixtures_dir):
    """Factory: make_output(version="2018.2", project="myproject", vsynth=False) -> an
    hls4ml output dir under tmp_path holding that fixture set's real reports where
    Vivado HLS writes them (vsynth=True adds vivado_synth.rpt, which only 2020.1 has)."""

    def make_output(version="2018.2", project="myproject", vsynth=False) -> Path:
        src = vivado_fixtures_dir / f"vivado_hls_{version}"
        out = tmp_path / f"out_{version}_{project}"
        solution = out / f"{project}_prj" / "solution1"
        (solution / "syn" / "report").mkdir(parents=True)
        shutil.copy(src / "vivado_hls.app", out / f"{project}_prj" / "vivado_hls.app")
        for ext in ("xml", "rpt"):
            shutil.copy(src / f"myproject_csynth.{ext}",
                        solution / "syn" / "report" / f"{project}_csynth.{ext}")
        if (src / "solution1.log").exists():
            shutil.copy(src / "solution1.log", solution / "solution1.log")
        if vsynth:
            shutil.copy(src / "vivado_synth.rpt", out / "vivado_synth.rpt")
        return out

    return make_output


# ---- The flow, run the way a user runs it: `invoke ...` in a child process. ----

import os  # noqa: E402
import subprocess  # noqa: E402

REPO_ROOT = TESTS_DIR.parent


def flow_env(**extra) -> dict:
    """The environment of a user with no Vivado in sight, running the flow natively."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XILINX", "VIVADO", "STANDIN_")) and k not in ("LM_LICENSE_FILE", "HLSFLOW_COMMAND")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "standin_xilinx" not in p)
    env.update(HLSFLOW_NATIVE="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _forget_what_a_new_process_would_not_know() -> None:
    """Empty the functools caches of hlsflow's modules (a tool's version, the environment a
    manifest records): a command run earlier in this process, under another environment, must
    not answer for this one."""
    for name, module in list(sys.modules.items()):
        if name == "hlsflow" or name.startswith("hlsflow."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                    value.cache_clear()


def _run_in_this_process(program: str, args, cwd, env) -> subprocess.CompletedProcess:
    """`program ARGS` (hlsflow or invoke) run by this test process, from `cwd` with exactly `env`,
    as a CompletedProcess: the exit code and what it wrote to stdout and stderr (file descriptors
    included, so g++'s or TensorFlow's own lines land there too). The command's parsing, executor,
    one-sentence errors and exit codes are all the real ones; only the process is shared, which
    spares each call the ~2-3 CPU-s of importing TensorFlow and hls4ml again. An exception that
    escapes the command is a traceback a user would see: it fails the test with the output so far."""
    import contextlib
    import signal
    import tempfile

    import invoke

    argv = [program, *map(str, args)]
    saved = os.getcwd(), dict(os.environ), sys.argv, os.umask(0o022)
    os.umask(saved[3])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    code, escaped = 0, None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        fds = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            with open(1, "w", closefd=False) as stdout, open(2, "w", closefd=False) as stderr, \
                    contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                _forget_what_a_new_process_would_not_know()
                os.chdir(cwd)
                os.environ.clear()
                os.environ.update(env)
                sys.argv = argv
                try:
                    if program == "invoke":  # `python -m invoke`: tasks.py and invoke.yaml of cwd
                        invoke.Program(name="Invoke", binary="inv[oke]", version=invoke.__version__).run(argv)
                    else:
                        from hlsflow.cli.program import main

                        main()
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                except BaseException as exc:  # noqa: BLE001 - handed on below, with the output
                    escaped = exc
        finally:
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            os.close(fds[0])
            os.close(fds[1])
            os.chdir(saved[0])
            os.environ.clear()
            os.environ.update(saved[1])
            sys.argv = saved[2]
            os.umask(saved[3])
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(argv, code, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))
    if escaped is not None:
        raise AssertionError(f"`{' '.join(argv)}` ended in an exception\n--- stdout\n{proc.stdout[-3000:]}\n"
                             f"--- stderr\n{proc.stderr[-3000:]}") from escaped
    return proc


def run_invoke(*args, env=None):
    """`invoke ARGS` from the repository root; returns the CompletedProcess (text)."""
    return _run_in_this_process("invoke", args, REPO_ROOT, env or flow_env())


def run_hlsflow(*args, cwd, env=None):
    """`hlsflow ARGS` (this checkout's code) run natively from `cwd`; the CompletedProcess (text).
    Tests about the installed command itself (its entry point, signals) start it in a process."""
    return _run_in_this_process("hlsflow", args, cwd, env or flow_env())


def error_lines(proc) -> list:
    return [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]


@pytest.fixture(scope="session")
def small_project(tmp_path_factory):
    """A small CNN with an Add skip connection and a Dropout, its samples and a flow config, under TF 2.15.
    The part is the 2018.2 fixture's, so a stand-in synthesis report matches the configured part."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.keras import layers

    from hlsflow.stages.starter import render_config, starter_hls_config

    root = tmp_path_factory.mktemp("small")
    tf.keras.utils.set_random_seed(1)
    inp = tf.keras.Input((8, 8, 3), name="x")
    a = layers.Conv2D(4, 3, padding="same", name="c1")(inp)
    a = layers.Activation("relu", name="r1")(a)
    b = layers.Conv2D(4, 3, padding="same", name="c2")(a)
    s = layers.Add(name="skip")([a, b])
    s = layers.Activation("relu", name="r2")(s)
    s = layers.MaxPooling2D(2, name="pool")(s)
    s = layers.GlobalAveragePooling2D(name="gap")(s)
    s = layers.Dropout(0.25, name="drop")(s)  # in most trained models; hls4ml removes it
    out = layers.Activation("softmax", name="sm")(layers.Dense(5, name="fc")(s))
    model = tf.keras.Model(inp, out)
    # Sharpen the classifier so top-1 labels have a margin a 16-bit design can keep
    # (near-ties of an untrained net would flip on any rounding and test nothing).
    kernel, bias = model.get_layer("fc").get_weights()
    model.get_layer("fc").set_weights([kernel * 6, bias])
    model_path = root / "small.keras"
    model.save(model_path)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 8, 8, 3)).astype(np.float32)
    np.savez(root / "samples.npz", X=x, y=model.predict(x, verbose=0).argmax(1))
    hls = starter_hls_config(model, precision="ap_fixed<16,6>", reuse_factor=4, strategy="Resource")
    config = root / "flow.yml"
    config.write_text(render_config(hls, str(model_path), str(root / "prj"), str(root / "samples.npz"),
                                         part="xc7vx690tffg1927-2"))
    return {"root": root, "model": model_path, "config": config, "out": root / "prj",
            "samples": root / "samples.npz"}


@pytest.fixture(scope="session")
def converted(small_project):
    """small_project after `invoke convert csim`: (project dict, the CompletedProcess)."""
    proc = run_invoke("convert", "csim", "--config", small_project["config"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return small_project, proc
