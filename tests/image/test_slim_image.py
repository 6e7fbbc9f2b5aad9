"""The image's slimming (docker/slim-venv.py, docker/install-system-packages.sh) keeps what runs:
the bytecode of every module hlsflow imports, and a g++ that links a shared library."""

from hlsflow.files import REPO_ROOT

DOCKER_DIR = REPO_ROOT / "docker"


def test_every_module_hlsflow_imports_kept_its_bytecode(run_in_container):
    # The import census of the build must cover hlsflow's imports: a module without its .pyc is
    # compiled again on every import (the image sets PYTHONDONTWRITEBYTECODE).
    result = run_in_container(["python", "/census/slim-venv.py", "check"], workdir="/opt/hlsflow",
                              volumes={str(DOCKER_DIR): {"bind": "/census", "mode": "ro"}})
    assert result.exit_code == 0, "no .pyc for:\n" + result.stdout + result.stderr


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
