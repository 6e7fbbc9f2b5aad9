"""Any Xilinx part runs end to end (issue 38): the installed `hlsflow` from a user's folder outside
the checkout, `init` then `flow` (convert, csim, synth and report on the Vivado HLS stand-in, a test
double) on the tests' tiny CNN, for two board parts, a board name, and a part whose device is not
in hlsflow's table. The part reaches hls4ml and the HLS tool as given (the stand-in records the
set_part call of hls4ml's build_prj.tcl); the preflight gives the device's figures or says in one
line why fit cannot be judged before synthesis."""

import json

import pytest
from PIL import Image

from conftest import TESTS_DIR
from hlsflow import standin
from state.test_safety import hlsflow as installed_hlsflow, user_folder

STANDIN = TESTS_DIR / "standin_xilinx"


def hlsflow(*args, cwd):
    """The installed command, natively, with the stand-in mounted as the Xilinx tree."""
    return installed_hlsflow(*args, cwd=cwd, env={"XILINX_ROOT": str(STANDIN), "STANDIN_DELAY": "0"})


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    return user_folder(tmp_path_factory.mktemp("user"))


ZU3EG = "Part xczu3eg-sbva484-1-e: 360 DSP, 432 BRAM_18K, 0 URAM, 70,560 LUT, 141,120 FF (DS891 "
CASES = [
    ("xczu3eg-sbva484-1-e", "xczu3eg-sbva484-1-e", ZU3EG),
    ("xcu280-fsvh2892-2L-e", "xcu280-fsvh2892-2L-e",
     "Part xcu280-fsvh2892-2L-e: 9,024 DSP, 4,032 BRAM_18K, 960 URAM, 1,303,680 LUT, 2,607,360 FF (DS963 "),
    ("ultra96v2", "xczu3eg-sbva484-1-e", ZU3EG),
    # Kintex UltraScale+ KU19P: its figures are not in the table.
    ("xcku19p-ffvj1760-2-e", "xcku19p-ffvj1760-2-e",
     "VERDICT: fit on xcku19p-ffvj1760-2-e cannot be judged before synthesis: its device is not in hlsflow's "
     "table (`hlsflow parts`), so the report judges it against Vivado's own figures."),
]


@pytest.mark.parametrize("given, part, preflight_line", CASES, ids=[c[0] for c in CASES])
def test_a_part_runs_init_convert_csim_synth_and_report(user, given, part, preflight_line):
    config = f"{given}.yml"
    init = hlsflow("init", "--model", "models/tiny_cnn.keras", "--part", given, "--config", config, cwd=user)
    assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-2000:]
    assert f"\nPart: {part}  # the FPGA part: " in (user / config).read_text()

    out = user / "build" / given
    proc = hlsflow("flow", "--config", config, "--samples", "models/tiny_samples.npz", "--out", out, cwd=user)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"Converting with hls4ml (io_stream, Vivado, part {part}," in proc.stdout
    assert any(line.startswith(preflight_line) for line in proc.stdout.splitlines()), proc.stdout[-3000:]

    # hls4ml wrote the part into its Tcl as given, and the HLS tool (here the stand-in) was handed it.
    calls = [json.loads(line) for line in (out / "vivado_hls_standin_calls.log").read_text().splitlines()]
    assert [c["args"] for c in calls if c["command"] == "set_part"] == [[part]]

    manifest = json.loads((out / "manifest.json").read_text())
    preflight = manifest["stages"]["convert"]["result"]["preflight"]
    assert preflight["part"] == part
    known = "cannot be judged" not in preflight_line
    assert preflight["fits_estimate"] is (True if known else None)
    assert (preflight["available"] is None) is not known

    report = json.loads((out / "report.json").read_text())
    # The stand-in's report is a real 2018.2 report for another design on the VX690T: judged against
    # that part, the configured one stated, and the test double named.
    assert report["produced_by_test_double"] is True and report["target_part"] == part
    assert report["part"] == "xc7vx690tffg1927-2" and report["resources"]["LUT"]["available"] == 433200
    assert f"the configured part is {part};" in (out / "report.md").read_text()

    # The test double is named on each progress line and stamped on the picture of its figures.
    progress = [line for line in proc.stdout.splitlines() if "] finished " in line]
    assert progress and all(line.endswith("[test double: tests/standin_xilinx, not a Xilinx tool]")
                            for line in progress), progress
    for picture in ("utilisation.png", "layers.png"):
        image = Image.open(out / picture)
        assert image.text.get(standin.PNG_KEY) == standin.STAMP, picture
        top = image.convert("RGB").getpixel((5, 5))
        assert top == standin.STAMP_RGB, (picture, top)
    # The per-layer table of the stand-in's report (the 2018.2 fixture's instances), named as the double's.
    assert report["layers"] and "## Per layer" in (out / "report.md").read_text()
