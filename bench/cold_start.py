"""A new machine's first `make flow` (issue 41: under 4 minutes), made cold on this one: a Docker
daemon of its own with an empty image store (its own --data-root and socket), a fresh clone of this
checkout's HEAD, and empty pip, wheel and XDG caches under a new HOME. What stays warm is what a new
machine has too: the host's network to PyPI and the Debian mirror, the apt packages `.ci/run`
installs (debootstrap, docker.io).

The private daemon runs in a network namespace of its own (`unshare --net`): a second dockerd in the
machine's namespace removes the machine's daemon's docker0 bridge at its start (seen: every later
container with a network failed), whatever its --bridge. So it cannot pull: the Debian base is
debootstrapped from the host, as on a machine without registry access (this one has none anyway).

Each phase is read from the timestamped log: the host venv, the wheels, the Debian base, the image
build (and its slowest Dockerfile steps), the flow itself. Run as root on the host, from the checkout:

    .venv-host/bin/python bench/cold_start.py [--out bench/results/cold-start-DATE.md]
"""

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.run import machine  # noqa: E402

# Each phase starts at the first line that starts with one of its marks. The wheels and the Debian
# base are fetched side by side (image/build.py): one phase, the longer of the two.
MARKS = [("host venv", ()), ("wheels and Debian base, side by side", ("==> Downloading", "==> Pulling debian")),
         ("image build", ("==> Building hlsflow",)), ("flow", ("==> Loading",))]


def private_daemon(root: Path):
    sock = root / "docker.sock"
    log = open(root / "dockerd.log", "w")
    proc = subprocess.Popen(["unshare", "--net", "dockerd", "--data-root", str(root / "data"),
                             "--exec-root", str(root / "exec"), "-H", f"unix://{sock}",
                             "--pidfile", str(root / "docker.pid"), "--iptables=false", "--ip-masq=false"],
                            stdout=log, stderr=subprocess.STDOUT)
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    for _ in range(100):
        if subprocess.run(["docker", "info"], env=env, capture_output=True).returncode == 0:
            return proc, env["DOCKER_HOST"]
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"the private dockerd did not start: {(root / 'dockerd.log').read_text()[-1000:]}")


def timed_make_flow(clone: Path, env: dict) -> list:
    """(seconds since start, line) of `make flow`'s output."""
    start = time.monotonic()
    lines = []
    proc = subprocess.Popen(["make", "flow"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        lines.append((time.monotonic() - start, line.rstrip()))
        print(f"{lines[-1][0]:6.0f} {line.rstrip()[:110]}", file=sys.stderr)
    if proc.wait():
        raise SystemExit(f"make flow failed (exit {proc.returncode}): {lines[-1][1] if lines else ''}")
    lines.append((time.monotonic() - start, "(end)"))
    return lines


def phases(lines: list) -> list:
    """(phase, seconds) from the first line of each phase to the next's."""
    starts = [0.0]
    for _, marks in MARKS[1:]:
        starts.append(next((t for t, line in lines if line.startswith(marks)), float("nan")))
    starts.append(lines[-1][0])
    return [(name, starts[i + 1] - starts[i]) for i, (name, _) in enumerate(MARKS)]


def slow_steps(lines: list, n=4) -> list:
    """The Dockerfile steps that took longest: (seconds, step)."""
    steps = [(t, line) for t, line in lines if re.match(r"Step \d+/\d+ :", line)]
    spans = [(steps[i + 1][0] - t, line[:90]) for i, (t, line) in enumerate(steps[:-1])]
    return sorted(spans, reverse=True)[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"cold-start-{datetime.date.today()}.md")
    args = ap.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    root = Path(tempfile.mkdtemp(prefix="hlsflow-cold-"))
    daemon, host = private_daemon(root)
    try:
        subprocess.run(["git", "clone", "-q", str(REPO), str(root / "clone")], check=True)
        for name in ("home", "cache", "pip"):
            (root / name).mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HLSFLOW_", "PIP_", "XDG_", "VIRTUAL_ENV"))}
        env.update(DOCKER_HOST=host, HOME=str(root / "home"), XDG_CACHE_HOME=str(root / "cache"),
                   PIP_CACHE_DIR=str(root / "pip"))
        lines = timed_make_flow(root / "clone", env)
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(root, ignore_errors=True)
    total = lines[-1][0]
    out = [f"# A cold `make flow`, {datetime.date.today()} ({head})", "",
           f"Machine: {machine()}. `bench/cold_start.py`: a private dockerd (its own network namespace) with an "
           "empty image store, a fresh "
           "clone, empty pip, wheel and XDG caches under a new HOME; one run. The network to PyPI and the "
           "Debian mirror, and the apt packages, are this machine's.", "",
           "| phase | seconds |", "|---|---:|"]
    out += [f"| {name} | {seconds:.0f} |" for name, seconds in phases(lines)]
    out += [f"| **total** | **{total:.0f}** ({total // 60:.0f}:{total % 60:02.0f}; goal under 4:00: "
            f"{'met' if total < 240 else 'NOT met'}) |", "", "Slowest steps of the image build:", ""]
    out += [f"- {seconds:.0f} s: `{step}`" for seconds, step in slow_steps(lines)]
    text = "\n".join(out) + "\n"
    print(text)
    args.out.write_text(text)
    print(f"Wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
