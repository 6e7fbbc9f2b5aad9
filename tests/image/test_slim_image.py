"""The image's slimming (docker/slim-venv.py, docker/install-system-packages.sh) keeps what runs:
the bytecode of every module hlsflow imports, and a g++ that links a shared library."""

import ast
import json
import sys

from hlsflow.files import REPO_ROOT

DOCKER_DIR = REPO_ROOT / "docker"


# slim-venv.py's `check`, and then what it checked: its exit status alone cannot tell a pass from a
# filter that matched no module at all (its SITE elsewhere, a venv laid out otherwise).
CHECK_AND_COUNT = """
import importlib.util, json, sys
from pathlib import Path
sys.dont_write_bytecode = True
spec = importlib.util.spec_from_file_location("slim", "/census/slim-venv.py")
slim = importlib.util.module_from_spec(spec)
spec.loader.exec_module(slim)
try:
    slim.check()
    code = 0
except SystemExit as exc:
    code = exc.code
checked = sorted(str(p.relative_to(slim.SITE)) for p in slim.loaded_pycs() if slim.SITE in p.parents)
# And that it catches a missing .pyc: one of yaml's, removed in this throwaway container.
import subprocess, yaml
pyc = Path(yaml.__cached__)
pyc.unlink()
again = subprocess.run([sys.executable, "/census/slim-venv.py", "check"], capture_output=True, text=True)
print(json.dumps({"code": code, "checked": checked, "removed": str(pyc), "then": [again.returncode, again.stdout]}))
"""


def imported_at_module_level() -> set:
    """The third-party packages hlsflow's modules import when they are imported (statements at
    module level, in a top-level try or if too): what `check` must have found loaded."""
    names = set()
    for path in (REPO_ROOT / "hlsflow").rglob("*.py"):
        for statement in ast.parse(path.read_text()).body:
            for node in ast.walk(statement) if isinstance(statement, (ast.Try, ast.If)) else [statement]:
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"hlsflow", "__future__"}


def test_every_module_hlsflow_imports_kept_its_bytecode(run_in_container):
    # The import census of the build must cover hlsflow's imports: a module without its .pyc is
    # compiled again on every import (the image sets PYTHONDONTWRITEBYTECODE).
    result = run_in_container(["python", "-c", CHECK_AND_COUNT], workdir="/opt/hlsflow", user="root",
                              volumes={str(DOCKER_DIR): {"bind": "/census", "mode": "ro"}})
    assert result.exit_code == 0, result.stdout + result.stderr
    *missing, counted = result.stdout.splitlines()
    counted = json.loads(counted)
    assert counted["code"] == 0 and not any(missing), "no .pyc for:\n" + "\n".join(missing)
    # It checked something: the site-packages modules that importing all of hlsflow loads, among
    # them every package hlsflow's modules import (numpy, yaml, invoke, numba, ...).
    packages = {name.split("/")[0] for name in counted["checked"]}
    expected = imported_at_module_level()
    assert len(expected) >= 4 and expected <= packages, (sorted(expected - packages), len(counted["checked"]))
    assert counted["then"] == [1, counted["removed"] + "\n"], counted["then"]


def test_gxx_builds_a_shared_library_without_the_removed_parts(run_in_container):
    # hls4ml's build_lib.sh flags; the static libc/libstdc++, lto1 and the sanitizers are gone.
    script = (
        "cd /tmp && printf '#include <cmath>\\n#include <vector>\\n#include <iostream>\\n"
        "extern \"C\" double f(double x) { std::vector<double> v{x}; std::cout << \"\"; "
        "return std::sqrt(v[0]); }\\n' > f.cpp"
        " && g++ -O3 -fPIC -std=c++11 -c f.cpp -o f.o && g++ -O3 -fPIC -shared f.o -o libf.so"
        " && python -c \"import ctypes; f = ctypes.CDLL('/tmp/libf.so').f;"
        " f.restype = ctypes.c_double;"
        " f.argtypes = [ctypes.c_double]; print(f(16.0))\""
        " && ! test -e /usr/lib/x86_64-linux-gnu/libc.a")
    result = run_in_container(["sh", "-c", script])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "4.0"
