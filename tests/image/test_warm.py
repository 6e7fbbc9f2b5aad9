"""HLSFLOW_WARM (cli/warm.py, cli/warmserver.py) as a user meets it: the installed `hlsflow` in a folder
outside the checkout, the real engine and image. A warm command prints and writes what a cold one
does; a second command is served by the same container; Ctrl-C and kill -9 of the host command stop
its command in the container and leave the container serving; an idle container ends by itself; a
config saved as a new file is not served by a container that mounted the old one."""

import json
import os
import pty
import re
import signal
import subprocess

import pytest

import waiting
from hlsflow.cli import warm
from hlsflow.cli.mounts import Mounts
from test_cancel import finish, start_hlsflow, wait_for
from test_user_project import csim_figures, hlsflow_command, run_hlsflow, user_env

LABEL = {"label": f"{warm.LABEL}=1"}
CONFIG = ("--config", "models/hls4ml_config.yml")  # where init writes it: beside the model


def warm_containers(client, folder):
    """The warm containers that mount something under `folder`: this test's alone."""
    found = client.containers.list(filters=LABEL, ignore_removed=True)
    return [c for c in found if any(m["Source"].startswith(str(folder)) for m in c.attrs.get("Mounts", []))]


def commands_running(container) -> list:
    """The commands the warm container runs and what they started: every process but tini and the
    server (whose parent is PID 1) and this `ps` (started by the engine, parent 0). By parent, not by
    name: a command forked from the server shows the server's command line."""
    table = container.exec_run(["ps", "-eo", "pid,ppid,args"]).output.decode().splitlines()
    assert table and table[0].split()[:2] == ["PID", "PPID"], table
    return [line for line in table[1:] if line.split()[1] not in ("0", "1")]


def manifest_status(out) -> dict:
    return {name: stage["status"] for name, stage in json.loads((out / "manifest.json").read_text())["stages"].items()}


@pytest.fixture
def project(built_image, user_dir):
    proc = run_hlsflow("init", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz",
                       cwd=user_dir, HLSFLOW_IMAGE=built_image)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return user_dir


def test_warm_commands_match_cold_and_cancel_as_cold(docker_client, built_image, project):
    env = {"HLSFLOW_IMAGE": built_image}
    cold = run_hlsflow("flow", *CONFIG, "--out", "build/cold", cwd=project, **env)
    assert cold.returncode == 0, cold.stdout[-2000:] + cold.stderr[-2000:]
    assert warm_containers(docker_client, project) == []

    env["HLSFLOW_WARM"] = 120
    runs = [run_hlsflow("flow", *CONFIG, "--out", f"build/warm{i}", cwd=project, **env) for i in (1, 2)]
    for proc in runs:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [container] = warm_containers(docker_client, project)  # the second command went to the first's container
    # What a user reads is what a cold container prints, but for the output's name and the speed.
    def same(text, out):  # timings ("64/64 (0.1s)") and speeds are the machine's, not the command's
        text = re.sub(r"\| images/s .*", "", text.replace(f"build/{out}", "build/OUT"))
        return re.sub(r"\d+\.\d+ ?s\b", "N s", text)
    for proc, out in zip(runs, ("warm1", "warm2")):
        assert same(proc.stdout, out) == same(cold.stdout, "cold"), proc.stdout[-3000:]
        assert same(proc.stderr, out) == same(cold.stderr, "cold"), proc.stderr[-3000:]
        assert csim_figures(project / "build" / out) == csim_figures(project / "build" / "cold")
        for name in ("firmware/myproject.cpp", "firmware/parameters.h", "firmware/defines.h"):
            assert (project / "build" / out / name).read_text() == (project / "build" / "cold" / name).read_text()
    checks = [run_hlsflow("check", *CONFIG, cwd=project, HLSFLOW_IMAGE=built_image),
              run_hlsflow("check", *CONFIG, cwd=project, **env)]
    assert checks[0].returncode == checks[1].returncode == 0, checks[1].stdout[-2000:] + checks[1].stderr[-2000:]
    # A cold run first removes the containers other runs' killed processes left (another test's), saying so.
    def own(text):
        return [line for line in text.splitlines() if not line.startswith("WARNING: Removed the flow container")]
    assert (checks[1].stdout, own(checks[1].stderr)) == (checks[0].stdout, own(checks[0].stderr))

    # Ctrl-C: the command in the container takes its clean-up path; the host says so in one line.
    out = project / "build" / "warm1"
    proc = start_hlsflow("csim", *CONFIG, "--out", "build/warm1", "--engine", "cpp", "--force", cwd=project, **env)
    wait_for("g++ building the emulation", lambda: "with g++" in proc.logs[0].read_text(), proc)
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(proc)
    assert code == 130, stdout[-2000:] + stderr[-2000:]
    assert [line for line in stderr.splitlines() if line.startswith("ERROR:")] == [
        f"ERROR: Cancelled (SIGINT): the command was stopped; what had finished in {out} is kept, and the stopped "
        "stage runs again next time."], stderr[-2000:]
    assert "Traceback" not in stderr
    assert manifest_status(out)["csim"] == "interrupted"
    waiting.wait_for(lambda: commands_running(container) == [], 30, "the cancelled command to end")

    # kill -9 of the host command: its connection closes, and its command is stopped as cancelled.
    proc = start_hlsflow("csim", *CONFIG, "--out", "build/warm2", "--engine", "cpp", "--force", cwd=project, **env)
    wait_for("g++ building the emulation", lambda: "with g++" in proc.logs[0].read_text(), proc)
    proc.kill()
    proc.wait()
    waiting.wait_for(lambda: commands_running(container) == [], 30, "the orphaned command to end")
    assert manifest_status(project / "build" / "warm2")["csim"] == "interrupted"

    # The container served through all of it, and serves the next command.
    again = run_hlsflow("csim", *CONFIG, "--out", "build/warm2", cwd=project, **env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert container.id in [c.id for c in warm_containers(docker_client, project)]
    for left in warm_containers(docker_client, project):  # this one, and check's (other mounts, so another)
        left.stop(timeout=10)


def test_a_config_saved_anew_gets_a_new_container_and_an_idle_one_ends(docker_client, built_image, project):
    env = {"HLSFLOW_IMAGE": built_image, "HLSFLOW_WARM": 60}
    first = run_hlsflow("check", *CONFIG, cwd=project, **env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    [old] = warm_containers(docker_client, project)
    config = project / "models" / "hls4ml_config.yml"
    text = config.read_text().replace("Part: ", "Part: xc7z010clg400-1  # was ")
    config.rename(config.with_suffix(".old"))  # as editors that save to a new file do
    config.write_text(text)
    second = run_hlsflow("check", *CONFIG, cwd=project, **env)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "Preflight against xc7z010clg400-1" in second.stdout, second.stdout[-2000:]
    both = warm_containers(docker_client, project)
    assert old.id in [c.id for c in both] and len(both) == 2  # the old one, still up, was not asked
    for container in both:
        container.stop(timeout=10)  # its server ends, the engine removes it

    # Another working directory is another container; idle for 2 s, it ends by itself.
    idle = run_hlsflow("check", "--config", "hls4ml_config.yml", cwd=project / "models", **env | {"HLSFLOW_WARM": 2})
    assert idle.returncode == 0, idle.stdout[-2000:] + idle.stderr[-2000:]
    waiting.wait_for(lambda: warm_containers(docker_client, project) == [], 60, "the idle warm container to end")


def at_a_terminal(*args, cwd, env) -> tuple:
    """`hlsflow ARGS` with a terminal (a pty) as its stdin, stdout and stderr: (exit code, what it showed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([hlsflow_command(), *args], cwd=cwd, env=env, stdin=follower, stdout=follower,
                            stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        try:
            data = os.read(leader, 1 << 16)
        except OSError:  # EIO: every holder of the terminal's other end has closed it
            break
        if not data:
            break
        shown += data
    os.close(leader)
    return proc.wait(timeout=60), shown.decode(errors="replace")


def test_at_a_terminal_a_warm_container_is_kept_unless_ci(docker_client, built_image, project):
    """Without HLSFLOW_WARM: a person at a terminal gets a warm container, said in one line; CI=true
    (or a pipe, as every other test here) gets none."""
    env = user_env(HLSFLOW_IMAGE=built_image)
    env.pop("CI", None)
    code, shown = at_a_terminal("check", *CONFIG, cwd=project, env={**env, "CI": "true"})
    assert code == 0, shown[-2000:]
    assert "warm container" not in shown and warm_containers(docker_client, project) == []
    code, shown = at_a_terminal("check", *CONFIG, cwd=project, env=env)
    assert code == 0, shown[-2000:]
    assert "hlsflow: starting a warm container for commands like this one here (it ends after 600 s without one; " \
           "HLSFLOW_WARM=0 runs each command in a container of its own)" in " ".join(shown.split()), shown[-2000:]
    assert "VERDICT: likely fits" in shown, shown[-2000:]
    [container] = warm_containers(docker_client, project)
    container.stop(timeout=10)


def test_another_container_beyond_the_most_retires_an_idle_one_never_a_busy_one(docker_client, built_image,
                                                                              project):
    """HLSFLOW_WARM_MAX=1: starting a second warm container first asks the first to end, which it
    does when idle; a busy one answers no and finishes its command."""
    env = {"HLSFLOW_IMAGE": built_image, "HLSFLOW_WARM": 60, "HLSFLOW_WARM_MAX": 1}
    models = project / "models"
    first = run_hlsflow("check", *CONFIG, cwd=project, **env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    [idle] = warm_containers(docker_client, project)
    busy = start_hlsflow("csim", "--config", "hls4ml_config.yml", "--engine", "cpp", "--force", cwd=models, **env)
    wait_for("g++ building the emulation", lambda: "with g++" in busy.logs[0].read_text(), busy)
    def the_busy_one_alone():
        found = warm_containers(docker_client, project)
        return None if idle.id in [c.id for c in found] else found

    [working] = waiting.wait_for(the_busy_one_alone, 30, "the idle container to end, the busy one to run")
    third = run_hlsflow("check", "--config", "hls4ml_config.yml", cwd=models, **env)
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-2000:]
    assert working.id in [c.id for c in warm_containers(docker_client, project)]  # busy: it stayed
    code, stdout, stderr = finish(busy)
    assert code == 0 and "Cancelled" not in stderr, stdout[-2000:] + stderr[-2000:]
    assert manifest_status(models / "build" / "tiny_cnn")["csim"] == "ok"
    for left in warm_containers(docker_client, project):
        left.stop(timeout=10)


def test_a_wrong_warm_setting_is_one_sentence(built_image, project):
    proc = run_hlsflow("check", *CONFIG, cwd=project, HLSFLOW_IMAGE=built_image, HLSFLOW_WARM="soon")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "ERROR: HLSFLOW_WARM='soon' is not a number of seconds: set it to how long a warm container may wait for "
        "the next command (e.g. 600), or to 0 for none."]


def test_the_key_changes_with_what_the_container_would_see(tmp_path):
    """A warm container is found by its key: the image, each mount with its file's identity, the
    environment, the working directory. Same inputs, same key; each change, another."""
    config = tmp_path / "hls4ml_config.yml"
    config.write_text("Part: a\n")
    (tmp_path / "build").mkdir()

    def key(image="sha256:1", env=None):
        mounts = Mounts()
        mounts.read_only(config)
        mounts.read_write(tmp_path / "build")
        return warm.key(image, mounts, {"env": env or {"HOST_UID": "0"}, "network": "none"}, str(tmp_path))

    first = key()
    assert key() == first
    assert key(env={"HOST_UID": "0", "HLSFLOW_COMMAND": "hlsflow check"}) == first  # sent with each command
    config.write_text("Part: b\n")  # an edit in place: the mounted file shows it
    assert key() == first
    changed = {"image": key(image="sha256:2"), "env": key(env={"HOST_UID": "0", "HLSFLOW_LD_PRELOAD": "x"})}
    config.rename(tmp_path / "old.yml")  # kept: a file that is gone may give its inode to the next
    config.write_text("Part: b\n")
    changed["config saved anew"] = key()
    (tmp_path / "build").rename(tmp_path / "old-build")
    (tmp_path / "build").mkdir()
    changed["output folder made anew"] = key()
    assert len({first, *changed.values()}) == 5, changed
