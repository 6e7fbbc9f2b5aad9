"""`hlsflow lab`: JupyterLab in the toolchain image, so that a notebook runs on the same pinned
TensorFlow, numpy and hls4ml as the flow.

On the host (`start`): one container of the image with the working directory mounted at the same
path, the Xilinx tree read-only and the user's uid, as for the flow (launcher.py). JupyterLab
listens on 8888 in the container; the engine publishes it on 127.0.0.1 only, and a random token
guards it. In the image (`serve`, also what `docker run -p 127.0.0.1:8888:8888 IMAGE lab` runs):
JupyterLab on the working directory, and one line with the URL once it answers.
"""

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path

from ..console import say
from ..toolchain.xilinx import LICENCE_VARS
from ..errors import FlowError, check_flag

DEFAULT_PORT = 8888
CONTAINER_PORT = 8888
READY_TIMEOUT = 120  # seconds for JupyterLab to answer; it starts in a few
# What `hlsflow lab --example` names the example notebook it puts in the user's folder.
EXAMPLE_NOTEBOOK = "hlsflow_example.ipynb"
# What the host side hands to the one in the container (HLSFLOW_* reach it anyway).
TOKEN_VAR, URL_VAR, IP_VAR = "HLSFLOW_LAB_TOKEN", "HLSFLOW_LAB_URL", "HLSFLOW_LAB_IP"


def check_port(value) -> int:
    """--port as an int in 1..65535, else the one sentence."""
    return DEFAULT_PORT if value is None else check_flag(value, "port", "port")


def port_free(port: int) -> bool:
    """True when nothing on this machine holds 127.0.0.1:port (nor the wildcard address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_free(port: int) -> None:
    if port_free(port):
        return
    other = next((p for p in range(port + 1, min(port + 100, 65536)) if port_free(p)), None)
    try_other = f"try `hlsflow lab --port {other}`" if other else "choose another with --port"
    raise FlowError(f"Port {port} is already in use on this machine: {try_other}.")


def ready(port: int, token: str) -> bool:
    """True once the server on 127.0.0.1:port answers an authenticated request."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status",
                                     headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def start(port=None, no_browser=False, image=None, example=False) -> int:
    """Host side: JupyterLab in a container of the image on the working directory until Ctrl-C;
    the container's exit code (launcher.run_in_image raises FlowError for a cancelled one)."""
    from . import launcher

    port = check_port(port)
    cwd = Path.cwd()
    if cwd == Path(cwd.anchor):
        raise FlowError(f"hlsflow lab mounts the folder it starts in, and {cwd} is the whole disk: start it in a "
                        "project folder.")
    require_free(port)
    token = secrets.token_hex(24)
    url = f"http://127.0.0.1:{port}/lab?token={token}"
    mounts = launcher.Mounts()
    mounts.read_write(cwd)
    mounts.env.update({TOKEN_VAR: token, URL_VAR: f"http://127.0.0.1:{port}"})
    if any(os.environ.get(var) for var in LICENCE_VARS):
        # A licence needs the host's network (launcher.container_settings): there nothing is
        # published, so JupyterLab itself listens on the host's loopback address only.
        mounts.network = "host"
        mounts.env[IP_VAR] = "127.0.0.1"
        inner, ports = port, None
    else:
        mounts.network = "bridge"
        inner, ports = CONTAINER_PORT, {f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port)}
    if not no_browser:
        threading.Thread(target=_open_when_ready, args=(port, token, url), daemon=True).start()
    cmd = ["hlsflow", "lab", "--port", str(inner), *(["--example"] if example else [])]
    return launcher.run_in_image(cmd, mounts, workdir=str(cwd), image=image, ports=ports)


def _open_when_ready(port: int, token: str, url: str) -> None:
    """The host's browser on the URL once the server answers, as `jupyter lab` does; nothing when
    there is no browser to open (a text-mode one would take the terminal over)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready(port, token):
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)
    graphical = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or not sys.platform.startswith("linux")
    if not (graphical or os.environ.get("BROWSER")):
        return
    try:
        webbrowser.get().open(url, new=2)
    except webbrowser.Error:
        pass


def _writable_home(env: dict) -> None:
    """A HOME JupyterLab and the kernels can write (settings, runtime files, IPython's history):
    `docker run --user N` leaves HOME=/, which is not."""
    home = env.get("HOME")
    if not (home and os.path.isdir(home) and os.access(home, os.W_OK)):
        env["HOME"] = tempfile.mkdtemp(prefix="hlsflow-home-")
    # With news fetching off, JupyterLab still asks at every start whether to fetch it: answered
    # "no" once, unless the user's own settings say otherwise.
    news = (Path(env["HOME"]) / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
            / "notification.jupyterlab-settings")
    inside_folder = Path(os.getcwd()) in news.parents  # never a file of ours in the user's folder
    if not news.exists() and not inside_folder:
        try:
            news.parent.mkdir(parents=True, exist_ok=True)
            news.write_text('{"fetchNews": "false"}\n')
        except OSError:
            pass  # a read-only HOME: the question stays, nothing else changes


def put_example(folder: Path) -> Path:
    """The example notebook copied into `folder` (the user asked for it with --example); one the
    folder already has is kept as it is: it may hold the user's edits."""
    from ..library import example_path

    target = folder / EXAMPLE_NOTEBOOK
    if target.exists():
        say(f"{target.name} is already here: kept as it is (remove it to get the example afresh).")
        return target
    try:
        shutil.copyfile(example_path("examples/notebooks/reference.ipynb"), target)
    except OSError as exc:
        raise FlowError(f"Could not put the example notebook into {folder} ({exc.strerror}): start hlsflow lab in a "
                        "folder you can write to.") from exc
    say(f"Example notebook: {target.name} (on the bundled model, or on your hls4ml_config.yml when this folder "
        "has one).")
    return target


def serve(port=None, example=False) -> None:
    """In the image: JupyterLab on the working directory, the URL printed once it answers; Ctrl-C or
    `docker stop` stop it. `example`: the example notebook is put in the folder first."""
    import invoke

    port = check_port(port)
    if example:
        put_example(Path.cwd())
    base = os.environ.get(URL_VAR) or f"http://127.0.0.1:{port}"
    token = os.environ.get(TOKEN_VAR) or secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_VAR, URL_VAR, IP_VAR)}
    env["JUPYTER_TOKEN"] = token  # the environment, not argv: `ps` shows argv to everyone
    _writable_home(env)
    # In a container all interfaces, for the engine to publish the port; natively (HLSFLOW_NATIVE) loopback.
    in_container = os.environ.get("HLSFLOW_IN_IMAGE") == "1"
    ip = os.environ.get(IP_VAR) or ("0.0.0.0" if in_container else "127.0.0.1")
    if importlib.util.find_spec("jupyterlab") is None:
        raise FlowError("JupyterLab is not installed in this Python: run `hlsflow lab` without HLSFLOW_NATIVE=1 (the "
                        "image has it), or `pip install jupyterlab ipykernel`.")
    # -P: a module in the user's folder never stands in for one of JupyterLab's.
    python = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else [])]
    cmd = [*python, "-m", "jupyterlab", f"--ip={ip}", f"--port={port}", "--no-browser",
           # The engine publishes this one port: never another one silently.
           "--ServerApp.port_retries=0", f"--ServerApp.root_dir={os.getcwd()}",
           f"--ServerApp.custom_display_url={base}",
           # A pinned environment fetches no news nor update checks: it is not to be updated.
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.getuid() == 0:  # `docker run IMAGE lab` without a user: root in the container only
        cmd.append("--allow-root")
    # stdin not a terminal: Ctrl-C stops JupyterLab at once instead of asking to confirm.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready(port, token):
            if proc.poll() is not None:
                raise FlowError(f"JupyterLab ended (status {proc.returncode}) before it answered: see its messages "
                                "above.")
            if time.monotonic() > deadline:
                proc.terminate()
                raise FlowError(f"JupyterLab did not answer on port {port} within {READY_TIMEOUT} s: see its "
                                "messages above.")
            time.sleep(0.3)
        hint = "" if os.environ.get(URL_VAR) or not in_container else \
            f" (with `-p 127.0.0.1:{port}:{port}`; for another host port, change it in the URL)"
        say(f"\nJupyterLab is ready; open {base}/lab?token={token}{hint}\nStop it with Ctrl-C.\n")
        code = proc.wait()
    except KeyboardInterrupt as exc:
        # tini hands the signal to JupyterLab too; wait for it to shut its kernels down.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
        signum = getattr(exc, "signum", signal.SIGINT)
        if not os.environ.get("HLSFLOW_IMAGE_ID"):  # the host's launcher says it otherwise
            say(f"JupyterLab stopped ({signal.Signals(signum).name}).")
        raise invoke.Exit(code=128 + signum) from None
    if code:
        raise invoke.Exit(code=code)
