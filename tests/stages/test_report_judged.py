"""A synthesis report judged against the part it was synthesised for (issue 38): Vivado's own
AvailableResources of that part, whatever part the config names; a configured part that differs
is stated, never substituted. Real reports only (tests/standin_xilinx/fixtures, the wild sets)."""

import json

from conftest import run_invoke


def test_a_2018_2_report_for_the_vx690t_from_a_checkout_whose_config_names_the_z010(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")  # Vivado HLS 2018.2, xc7vx690tffg1927-2
    # From the checkout's root: its project/hls4ml_config.yml names xc7z010clg400-1.
    proc = run_invoke("report", "--out", out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    report = json.loads((out / "report.json").read_text())
    assert report["part"] == "xc7vx690tffg1927-2" and report["target_part"] == "xc7z010clg400-1"
    assert report["available_source"] == "csynth_xml"
    # The XML's own AvailableResources for the VX690T, not the Z010's 17,600 LUT.
    assert {n: (r["used"], r["available"]) for n, r in report["resources"].items()} == {
        "DSP": (1, 3600), "BRAM_18K": (0, 2940), "LUT": (2070828, 433200), "FF": (1105961, 866400)}
    assert report["resources"]["LUT"]["percent"] == 478.03 and report["fits"] is False

    md = (out / "report.md").read_text()
    assert "- Part: xc7vx690tffg1927-2 (the configured part is xc7z010clg400-1;" in md
    assert "Fit on xc7vx690tffg1927-2: does NOT fit (over: LUT, FF)" in md
    assert "17,600" not in md and "17600" not in md and "11765" not in md
    warning = [line for line in proc.stderr.splitlines() if "xc7z010clg400-1" in line]
    assert warning and "judged against xc7vx690tffg1927-2" in warning[0]
