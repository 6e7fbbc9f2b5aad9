"""hlsflow/parts.py: the device table against what real Vivado/Vitis HLS runs wrote (every wild
report's AvailableResources), one data sheet figure per family, board names, and the grammar check
in front of every lookup (a part is written into Tcl)."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import run_hlsflow
from hlsflow import parts
from hlsflow.errors import FlowError

WILD = Path(__file__).resolve().parents[1] / "report_fixtures" / "wild"
XML_NAMES = {"DSP48E": "DSP", "DSP": "DSP", "BRAM_18K": "BRAM_18K", "LUT": "LUT", "FF": "FF", "URAM": "URAM"}


def _available(xml: Path) -> tuple:
    """(part, {resource: figure}) straight from a csynth.xml, not through hlsflow's reader."""
    root = ET.parse(xml).getroot()
    block = root.find("AreaEstimates/AvailableResources")
    return root.findtext("UserAssignments/Part"), {XML_NAMES[n.tag]: int(n.text) for n in block if n.tag in XML_NAMES}


WILD_XMLS = sorted(x for case in WILD.iterdir() if case.is_dir() for x in case.glob("*_csynth.xml"))


@pytest.mark.parametrize("xml", WILD_XMLS, ids=lambda x: x.parent.name)
def test_the_table_gives_what_the_tools_reported_for_every_wild_device(xml):
    part_name, reported = _available(xml)
    part = parts.find_part(part_name)
    assert part is not None, f"{part_name} ({xml.parent.name}) is not in the table"
    assert {name: part.resources()[name] for name in reported} == reported, part_name


def test_the_wild_reports_cover_seventeen_devices_of_ten_families():
    devices = {parts.device_of(_available(x)[0]) for x in WILD_XMLS}
    assert len(WILD_XMLS) == 40 and len(devices) == 17
    assert {parts.DEVICES[d].family for d in devices} == {
        "virtex7", "kintexu", "virtexuplus", "zynq", "zynquplus", "artix7", "kintex7", "kintexuplus",
        "zynquplusRFSOC", "virtexuplusHBM"}


# One figure per family, as its data sheet gives it (36 Kb block RAMs doubled into BRAM_18K).
SHEET_FIGURES = [
    ("xc7s50", "DSP", 120, "DS180"),        # Spartan-7
    ("xc7a100t", "LUT", 63400, "DS180"),    # Artix-7: 15,850 slices x 4 LUTs
    ("xc7k325t", "BRAM_18K", 890, "DS180"),  # Kintex-7: 445 x 36 Kb
    ("xc7vx485t", "DSP", 2800, "DS180"),    # Virtex-7
    ("xc7z020", "LUT", 53200, "DS190"),     # Zynq-7000
    ("xcku040", "LUT", 242400, "DS890"),    # Kintex UltraScale
    ("xcvu095", "DSP", 768, "DS890"),       # Virtex UltraScale
    ("xcau15p", "DSP", 576, "DS890"),       # Artix UltraScale+
    ("xcku5p", "URAM", 64, "DS890"),        # Kintex UltraScale+
    ("xcvu13p", "URAM", 1280, "DS890"),     # Virtex UltraScale+ (the VU13P's 360 Mb of UltraRAM)
    ("xcvu37p", "LUT", 1303680, "DS890"),   # Virtex UltraScale+ HBM
    ("xczu3eg", "LUT", 70560, "DS891"),     # Zynq UltraScale+ MPSoC (Ultra96)
    ("xczu28dr", "DSP", 4272, "DS889"),     # Zynq UltraScale+ RFSoC
    ("xck26", "URAM", 64, "DS987"),         # Kria K26
    ("xcu50", "DSP", 5952, "DS965"),        # Alveo U50
    ("xcu55c", "BRAM_18K", 4032, "DS978"),  # Alveo U55C: 2,016 x 36 Kb
    ("xcu200", "LUT", 1182240, "DS962"),    # Alveo U200
    ("xcu280", "URAM", 960, "DS963"),       # Alveo U280
    ("xcvc1902", "DSP", 1968, "DS950"),     # Versal AI Core
    ("xcvm1802", "LUT", 899840, "DS956"),   # Versal Prime
]


@pytest.mark.parametrize("device, resource, figure, sheet", SHEET_FIGURES, ids=[f[0] for f in SHEET_FIGURES])
def test_a_data_sheet_figure_of_each_family(device, resource, figure, sheet):
    assert parts.DEVICES[device].resources()[resource] == figure
    assert parts.DEVICES[device].sheet.startswith(sheet + " ")


def test_every_device_names_its_sheet_and_every_family_is_covered():
    assert all(re.match(r"DS\d{3} ", d.sheet) for d in parts.DEVICES.values())
    checked = {parts.DEVICES[f[0]].family for f in SHEET_FIGURES}
    assert checked == {d.family for d in parts.DEVICES.values()}


def test_a_versal_premium_part_runs_without_figures_and_is_known_as_versal():
    # DS957 figures are not confirmed here: the part runs, its fit is judged after synthesis,
    # and Vivado HLS is still refused for it (toolchain/xilinx.py).
    assert parts.find_part("xcvp1202-vsva2785-2MP-e-S") is None
    assert parts.family_of("xcvp1202-vsva2785-2MP-e-S") == "versal"
    assert parts.family_of("xcvu9p-flga2104-2L-e") == "virtexuplus"


@pytest.mark.parametrize("name, part", [("pynq-z2", "xc7z020clg400-1"), ("Ultra96-V2", "xczu3eg-sbva484-1-e"),
                                        ("ultra96v2", "xczu3eg-sbva484-1-e"), ("zcu104", "xczu7ev-ffvc1156-2-e"),
                                        ("kv260", "xck26-sfvc784-2LV-c"), ("alveo-u250", "xcu250-figd2104-2L-e"),
                                        ("u280", "xcu280-fsvh2892-2L-e"), ("xczu3eg-sbva484-1-e", "xczu3eg-sbva484-1-e"),
                                        ("xcku19p-ffvj1760-2-e", "xcku19p-ffvj1760-2-e")])
def test_a_board_names_its_part_and_a_part_is_taken_as_given(name, part):
    assert parts.resolve_part(name) == part


def test_every_board_part_passes_the_grammar():
    for board, part in parts.BOARDS.items():
        assert parts.check_part_name(part) == part, board


@pytest.mark.parametrize("text", ['xc7z020"; exec rm -rf ~; #', "pynq-z2]", "$part", "zcu104\n", "u250 ", "x" * 65,
                                  "pynq_z2;"])
def test_the_grammar_is_checked_before_any_board_lookup(text):
    with pytest.raises(FlowError, match="is not a part name"):
        parts.resolve_part(text)


def test_device_lookup_takes_the_whole_device_name():
    assert parts.device_of("xcvu3p-ffvc1517-2-e") == "xcvu3p"
    assert parts.device_of("xcvu31p-fsvh1924-2-e") == "xcvu31p"  # not the VU3P's
    assert parts.device_of("xc7a35ticsg324-1L") == "xc7a35t"      # the industrial grade of the device
    assert parts.device_of("xa7a12tcsg325-1q") == "xc7a12t"       # the automotive grade
    assert parts.device_of("xc7z0100clg400-1") is None            # no such device, not the Z010


def test_hlsflow_parts_lists_boards_and_devices_with_a_search(tmp_path):
    proc = run_hlsflow("parts", "--search", "ultra96", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| ultra96v2 | xczu3eg-sbva484-1-e | xczu3eg |" in proc.stdout
    proc = run_hlsflow("parts", "--search", "xcvu13p", cwd=tmp_path)
    assert "| xcvu13p | virtexuplus | 12,288 | 5,376    | 1,280 | 1,728,000 | 3,456,000 | DS890" in proc.stdout
    proc = run_hlsflow("parts", cwd=tmp_path)
    assert proc.returncode == 0 and all(f"| {d} " in proc.stdout for d in parts.DEVICES)
    proc = run_hlsflow("parts", "--search", "nosuchboard", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("ERROR: No board or device")
