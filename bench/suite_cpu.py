"""Where the flow tests' CPU goes, by command: pytest runs in a container of the image, and every
0.3 s this script reads, from /proc, the CPU time of each process in that container's cgroup
(v1 or v2), summed by what the process is (g++'s cc1plus for a syntax check or an -O3 build, an
`hlsflow <task>` process, a pytest worker, a Dask worker...). The test suite is CPU-bound on two
cores, so this is where its minutes go. A process that ends between two reads loses at most its
last 0.3 s, so short-lived ones are under-counted a little. Run on the host, from the checkout:

    .venv-host/bin/python bench/suite_cpu.py [--image hlsflow:latest] [pytest arguments...]

e.g. `bench/suite_cpu.py tests/emulator -n 2`. Prints the table; writes nothing.
"""

import argparse
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HZ = os.sysconf("SC_CLK_TCK")


def cgroup_procs(container_id: str):
    for path in (f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cgroup.procs",
                 f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cgroup.procs",
                 f"/sys/fs/cgroup/docker/{container_id}/cgroup.procs"):
        if os.path.exists(path):
            return path
    return None


def what(pid: str) -> str:
    """A short name for what the process is, from its command line."""
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return "?"
    if not argv:
        return "?"
    exe = os.path.basename(argv[0])
    if exe == "cc1plus":
        if "-fsyntax-only" in argv:
            return "g++ syntax check (cc1plus)"
        return "g++ build (cc1plus" + (", -O3)" if "-O3" in argv else ")")
    if exe.startswith("python"):
        line = " ".join(argv[1:])
        if "-m hlsflow" in line or argv[1:2] and argv[1].endswith("/hlsflow"):
            rest = line.split("hlsflow", 1)[1].split()
            return f"hlsflow {rest[0] if rest else ''}".strip()
        for key, name in (("pytest", "pytest"), ("exec(eval(sys.stdin", "pytest worker (in-process commands)"),
                          ("multiprocessing", "multiprocessing child"), ("dask", "Dask"),
                          ("ipykernel", "Jupyter kernel")):
            if key in line:
                return name
        return "python (other)"
    return exe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="hlsflow:latest")
    args, pytest_args = parser.parse_known_args()
    pytest_args = pytest_args or ["tests", "--ignore=tests/image", "-n", "2", "--dist", "loadfile"]
    cwd = str(REPO)
    cid = subprocess.run(["docker", "run", "-d", "-v", f"{cwd}:{cwd}", "-w", cwd, "-e", f"PYTHONPATH={cwd}",
                          "-e", "HOST_UID=0", "-e", "HOST_GID=0", args.image, "python", "-m", "pytest", "-q",
                          "-p", "no:cacheprovider", *pytest_args], capture_output=True, text=True, check=True).stdout.strip()
    start = time.monotonic()
    seen, total = {}, collections.Counter()
    try:
        while True:
            procs = cgroup_procs(cid)
            if procs is None:
                break
            try:
                pids = Path(procs).read_text().split()
            except OSError:
                break
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                key = (pid, fields[19])  # a pid with its start time: one process
                cpu = (int(fields[11]) + int(fields[12])) / HZ  # its own user and system time
                name, before = seen.get(key) or (what(pid), 0.0)
                total[name] += cpu - before
                seen[key] = (name, cpu)
            time.sleep(0.3)
    except KeyboardInterrupt:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    wall = time.monotonic() - start
    code = subprocess.run(["docker", "wait", cid], capture_output=True, text=True).stdout.strip()
    tail = subprocess.run(["docker", "logs", "--tail", "3", cid], capture_output=True, text=True).stdout
    subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    cpu = sum(total.values())
    print(f"pytest {' '.join(pytest_args)} on {args.image}: exit {code}, {wall:.0f} s wall, {cpu:.0f} CPU s")
    print(tail.strip())
    print("| what | CPU s | share |\n|---|---:|---:|")
    for name, seconds in total.most_common():
        if seconds >= 0.05 * 0.01 * cpu:
            print(f"| {name} | {seconds:.1f} | {100 * seconds / cpu:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
