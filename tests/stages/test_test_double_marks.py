"""The test double (tests/standin_xilinx) is named wherever its figures go (issue 38): a stamp on
each picture (a red band a person sees, and a PNG text chunk a program reads), the word in sweep
rows, doctor's verdict and `versions`; real-tool output carries none of it. Pictures drawn from the
stand-in's own run: tests/test_any_part.py (utilisation.png) and here (pareto.png, layers.png)."""

import os
import shutil
import subprocess
import sys

from PIL import Image

from conftest import REPO_ROOT, TESTS_DIR
from hlsflow import standin
from hlsflow.search.sweep_results import render_pareto_png
from hlsflow.stages import report

STANDIN = TESTS_DIR / "standin_xilinx"


def stamp_of(png) -> tuple:
    """(the PNG's text chunk for the stamp, or None; the share of the top band's pixels in the stamp's red)."""
    image = Image.open(png)
    text = image.text.get(standin.PNG_KEY)
    rgb = image.convert("RGB")
    band = int(rgb.height * standin.STAMP_HEIGHT) - 2
    pixels = [rgb.getpixel((x, y)) for x in range(0, rgb.width, 3) for y in range(1, band)]
    return text, sum(p == standin.STAMP_RGB for p in pixels) / len(pixels)


def assert_stamped(png):
    text, red = stamp_of(png)
    assert text == standin.STAMP and red > 0.6, (text, red)


def assert_not_stamped(png):
    text, red = stamp_of(png)
    assert text is None and red == 0.0, (text, red)


def test_a_real_report_draws_no_stamp(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")  # real Vivado HLS output, no stand-in log
    written = report.write_report(out, "myproject")
    assert written["produced_by_test_double"] is False
    assert_not_stamped(out / "utilisation.png")


def _rows(stand_in: bool) -> list:
    """Four synthesised points as the sweep's rows hold them, all with the same report's figures (as
    the stand-in gives every point)."""
    return [{"point": f"rf{rf}", "latency_cycles": 21, "latency_ns": 86.52, "DSP": 1, "LUT": 9000,
             "agreement": 1.0, "fits": False, "stand_in": stand_in, "limits": {"DSP": 3600}} for rf in (1, 2, 4, 8)]


def test_pareto_of_test_double_points_is_stamped_and_never_says_vivado(tmp_path):
    double, real = tmp_path / "double.png", tmp_path / "real.png"
    double.write_bytes(render_pareto_png(_rows(True), 0.9))
    real.write_bytes(render_pareto_png(_rows(False), 0.9))
    assert_stamped(double)
    assert_not_stamped(real)


def _doctor(*args, **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XILINX", "VIVADO"))}
    env.update(env_extra, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "hlsflow", "doctor", *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=env_extra.get("cwd", "/tmp"))


def test_doctor_names_the_test_double_in_its_verdict(tmp_path):
    proc = _doctor(XILINX_ROOT=str(STANDIN))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith(
        f"VERDICT: ready for synthesis with Vivado HLS at {STANDIN}/Vivado/2018.2 (test double: "
        "tests/standin_xilinx, not a Xilinx tool) (warnings: ")
    assert "vivado_hls 2018.2 (test double: tests/standin_xilinx, not a Xilinx tool)" in proc.stdout


def test_doctor_says_nothing_of_a_double_for_another_install(tmp_path):
    # A copy of the double with its self-description removed stands for a real install here.
    root = tmp_path / "Xilinx"
    shutil.copytree(STANDIN, root, symlinks=True)
    binary = root / "Vivado" / "2018.2" / "bin" / "vivado_hls"
    binary.write_text(binary.read_text().replace("TEST DOUBLE", "wrapper"))
    proc = _doctor(XILINX_ROOT=str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test double" not in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith(f"VERDICT: ready for synthesis with Vivado HLS at {root}")


def test_versions_names_the_test_double():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XILINX", "VIVADO"))}
    env.update(PYTHONPATH=str(REPO_ROOT), PATH=f"{STANDIN}/Vivado/2018.2/bin:{env['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "hlsflow.versions"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("| Vivado"))
    assert "(test double: tests/standin_xilinx, not a Xilinx tool)" in line
