"""Cancelling a run, and a container that dies under it, as a user and a CI runner meet them: the
installed `hlsflow` command in a user's folder, a real engine and the real image. Also what a flow
container may do: no capabilities but the entrypoint's user switch, no new privileges, a pids limit."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from hlsflow.cli import launcher
import waiting
from test_user_project import REPO, hlsflow_command, run_hlsflow, user_env

# Bits of CHOWN, DAC_OVERRIDE, FOWNER, SETGID and SETUID: all a root host user's container holds.
ROOT_CAPS = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 6) | (1 << 7)


def start_hlsflow(*args, cwd, **env):
    """`hlsflow ARGS` in the background, its output in files (a pipe nobody reads could block it)."""
    out, err = open(cwd / "hlsflow.out", "w+"), open(cwd / "hlsflow.err", "w+")
    proc = subprocess.Popen([hlsflow_command(), *args], cwd=cwd, env=user_env(**env), stdout=out, stderr=err)
    proc.logs = (cwd / "hlsflow.out", cwd / "hlsflow.err")
    return proc


def finish(proc, timeout=120):
    proc.wait(timeout=timeout)
    return proc.returncode, proc.logs[0].read_text(), proc.logs[1].read_text()


def containers_of(client, folder, running=False):
    """The containers with something under `folder` mounted: this test's alone. Whatever their
    image: the GitLab job test (test_ci_files.py) tags its own build hlsflow:latest for a while, so
    a container started meanwhile runs that image, not built_image."""
    # ignore_removed: a container another test's hlsflow run removes between the list and its inspect
    found = client.containers.list(all=not running, ignore_removed=True)
    return [c for c in found if any(m["Source"].startswith(str(folder)) for m in c.attrs.get("Mounts", []))]


def wait_for(what, check, proc, timeout=120, every=0.2):
    """check()'s first true value; a failure at once if hlsflow ends before it (and hlsflow stopped
    if it never comes)."""
    def ready():
        value = check()
        if not value and proc.poll() is not None:
            pytest.fail(f"hlsflow ended (status {proc.returncode}) before {what}: {proc.logs[1].read_text()[-2000:]}")
        return value

    try:
        return waiting.wait_for(ready, timeout, what, every=every)
    except AssertionError:
        stop(proc)
        raise


def stop(proc) -> None:
    """SIGTERM first, which stops and removes hlsflow's container (SIGKILL would leave it running);
    SIGKILL if hlsflow has not ended within a minute."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def flow_process_status(container) -> dict:
    """Capabilities and no_new_privs of the flow's python process in the container, or {}."""
    status = container.exec_run(["sh", "-c", "for f in /proc/[0-9]*/status; do grep -E "
                                 "'^(Name|CapEff|CapBnd|NoNewPrivs)' $f; echo; done"]).output.decode()
    for block in status.split("\n\n"):
        if block.startswith("Name:\tpython"):
            return dict(line.split(":\t") for line in block.splitlines())
    return {}


def reference_model(folder: Path) -> tuple:
    """The reference model in the user's folder, as --model's flag: its convert runs about 6 s and
    hls4ml writes for a second or more of it, a window a signal can land in (the tiny CNN's is a
    fraction of that, which a busy machine's scheduling can miss)."""
    shutil.copy(REPO / "models" / "model_2_15.keras", folder / "models" / "resnet.keras")
    return ("--model", "models/resnet.keras")


def file_hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sigterm_stops_and_removes_the_container(docker_client, built_image, user_dir):
    model = reference_model(user_dir)
    first = run_hlsflow("convert", *model, "--out", "build/out", cwd=user_dir, HLSFLOW_IMAGE=built_image)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    out = user_dir / "build" / "out"
    before = file_hashes(out)

    proc = start_hlsflow("convert", *model, "--out", "build/out", "--force", cwd=user_dir, HLSFLOW_IMAGE=built_image)
    # Cancel mid-conversion, once the staged copy exists: it is what must not be left behind. The
    # folder is watched, not the engine's container list, whose answer can take seconds under load.
    wait_for("the staging folder", lambda: list(out.parent.glob(".out.partial-*")), proc, every=0.05)
    proc.send_signal(signal.SIGTERM)
    code, stdout, stderr = finish(proc)

    assert code == 143, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (f"ERROR: Cancelled (SIGTERM): the container was stopped and removed; what had "
                                       f"finished in {out} is kept, and the stopped stage runs again next time.")
    assert [line for line in stderr.splitlines() if line.startswith("ERROR:")] == [stderr.splitlines()[-1]]
    assert containers_of(docker_client, user_dir) == []
    assert list(out.parent.glob(".out.partial-*")) == []
    # The earlier project is as it was; its manifest also records the run that was interrupted.
    after = file_hashes(out)
    assert {k: v for k, v in after.items() if k != "manifest.json"} == \
        {k: v for k, v in before.items() if k != "manifest.json"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"][-1]["status"] == "interrupted" and manifest["stages"]["convert"]["status"] == "ok"

    again = run_hlsflow("convert", *model, "--out", "build/out", cwd=user_dir,  # the lock is free
                        HLSFLOW_IMAGE=built_image)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "Up to date" in again.stdout


def test_a_killed_container_is_named_and_the_container_confined(docker_client, built_image, user_dir):
    # Synthesis with the Vivado stand-in (a test double) told to hang: the container stays until it
    # is killed, however long the engine takes to list it on a busy machine.
    standin = REPO / "tests" / "standin_xilinx"
    proc = start_hlsflow("synth", "--model", "models/tiny_cnn.keras", "--part", "xc7vx690tffg1927-2", cwd=user_dir,
                         XILINX_ROOT=standin, STANDIN_MODE="hang", HLSFLOW_IMAGE=built_image)
    try:  # the stand-in hangs for ever: a failure below must not leave hlsflow or its container
        wait_for("the stand-in's synthesis", lambda: list(user_dir.glob("build/*/vivado_hls_standin.args")), proc)
        [container] = wait_for("the flow container",
                               lambda: containers_of(docker_client, user_dir, running=True), proc)
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] or host["CapDrop"] == ["CAP_ALL"], host["CapDrop"]
        assert "no-new-privileges" in host["SecurityOpt"] and host["PidsLimit"] == launcher.PIDS_LIMIT
        # What the flow's processes hold, as the kernel sees it (the tests run as root, who stays root).
        fields = wait_for("the flow's python process", lambda: flow_process_status(container), proc)
        assert int(fields["CapBnd"], 16) == ROOT_CAPS and int(fields["CapEff"], 16) == ROOT_CAPS
        assert fields["NoNewPrivs"] == "1"
    except BaseException:
        if proc.poll() is None:
            stop(proc)
        raise

    container.kill()  # SIGKILL from outside, as the kernel's OOM killer would
    code, stdout, stderr = finish(proc)
    assert code == 137, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("ERROR: The flow container was killed (exit status 137, SIGKILL)")
    assert containers_of(docker_client, user_dir) == []


def test_host_user_switch_under_confinement(docker_client, built_image, tmp_path):
    """A non-root host user: the entrypoint's switch works with only its capabilities, leaves the flow
    none, and files written belong to the user."""
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    os.chown(work, 1000, 1000)
    output = docker_client.containers.run(
        built_image, ["sh", "-c", "touch written && grep -E '^(CapEff|NoNewPrivs)' /proc/self/status && ls -nd $HOME"],
        environment={"HOST_UID": "1000", "HOST_GID": "1000"}, volumes={str(work): {"bind": str(work), "mode": "rw"}},
        working_dir=str(work), network_mode="none", remove=True, **launcher.confinement(uid=1000)).decode()
    assert "CapEff:\t0000000000000000" in output and "NoNewPrivs:\t1" in output, output
    assert " 1000 1000 " in output.splitlines()[-1], output
    assert (work / "written").stat().st_uid == 1000
