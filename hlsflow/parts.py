"""FPGA parts the flow knows, with the resources Vivado HLS reports against.

Figures are the device totals from Xilinx's data sheets (DS190, DS890, DS923, DS950); those
marked "as reported" are the AvailableResources real Vivado/Vitis HLS runs wrote for that part
(tests/report_fixtures/wild), which is what a report is judged against.
BRAM is counted in 18 Kb blocks, as Vivado HLS reports it (one BRAM36 = two BRAM_18K).
Families: 7-series and UltraScale(+) run on both backends; Versal needs Vitis HLS
(toolchain/xilinx.py refuses it with Vivado HLS).
"""

import re
from dataclasses import dataclass, replace

from .errors import FlowError


@dataclass(frozen=True)
class Part:
    name: str
    family: str
    DSP: int
    BRAM_18K: int
    LUT: int
    FF: int

    def resources(self) -> dict:
        return {"DSP": self.DSP, "BRAM_18K": self.BRAM_18K, "LUT": self.LUT, "FF": self.FF}

    def describe(self) -> str:
        return f"{self.DSP:,} DSP, {self.BRAM_18K:,} BRAM_18K, {self.LUT:,} LUT, {self.FF:,} FF"


PARTS = {
    p.name: p
    for p in (
        # Zynq-7010: the reference board part (80 DSP48E1, 60 BRAM36, 17,600 LUT).
        Part("xc7z010clg400-1", "zynq", DSP=80, BRAM_18K=120, LUT=17600, FF=35200),
        Part("xc7z020clg400-1", "zynq", DSP=220, BRAM_18K=280, LUT=53200, FF=106400),
        Part("xczu9eg-ffvb1156-2-e", "zynquplus", DSP=2520, BRAM_18K=1824, LUT=274080, FF=548160),
        Part("xcku115-flvb2104-2-i", "kintexu", DSP=5520, BRAM_18K=4320, LUT=663360, FF=1326720),
        Part("xc7vx690tffg1927-2", "virtex7", DSP=3600, BRAM_18K=2940, LUT=433200, FF=866400),
        # hls4ml's default part for the Vivado backend.
        Part("xcvu13p-flga2577-2-e", "virtexuplus", DSP=12288, BRAM_18K=5376, LUT=1728000, FF=3456000),
        # As reported by Vivado/Vitis HLS 2019.1-2024.1 (the wild fixtures).
        Part("xc7a200t-fbg676-2", "artix7", DSP=740, BRAM_18K=730, LUT=134600, FF=269200),
        Part("xc7k325t-ffg900-2", "kintex7", DSP=840, BRAM_18K=890, LUT=203800, FF=407600),
        Part("xcku15p-ffve1517-1-i", "kintexuplus", DSP=1968, BRAM_18K=1968, LUT=522720, FF=1045440),
        Part("xczu5ev-sfvc784-2LV-e", "zynquplus", DSP=1248, BRAM_18K=288, LUT=117120, FF=234240),
        Part("xck26-sfvc784-2LV-c", "zynquplus", DSP=1248, BRAM_18K=288, LUT=117120, FF=234240),
        Part("xczu7ev-ffvc1156-2-e", "zynquplus", DSP=1728, BRAM_18K=624, LUT=230400, FF=460800),
        Part("xczu49dr-ffvf1760-2-e", "zynquplusRFSOC", DSP=4272, BRAM_18K=2160, LUT=425280, FF=850560),
        Part("xcvu9p-flga2104-2L-e", "virtexuplus", DSP=6840, BRAM_18K=4320, LUT=1182240, FF=2364480),
        Part("xcvu11p-flga2577-1-e", "virtexuplus", DSP=9216, BRAM_18K=4032, LUT=1296000, FF=2592000),
        Part("xcu250-figd2104-2L-e", "virtexuplus", DSP=12288, BRAM_18K=5376, LUT=1728000, FF=3456000),
        Part("xcu55c-fsvh2892-2L-e", "virtexuplusHBM", DSP=9024, BRAM_18K=4032, LUT=1303680, FF=2607360),
        # Versal AI Core VC1902 (VCK190), DS950: 1,968 DSP58, 967 BRAM36, 899,840 LUTs, 1,799,680 FFs.
        Part("xcvc1902-vsva2197-2MP-e-S", "versal", DSP=1968, BRAM_18K=1934, LUT=899840, FF=1799680),
    )
}


def _key(name: str) -> str:
    # Vivado writes "xc7z020-clg400-1" where users write "xc7z020clg400-1".
    return name.lower().replace("-", "")


# Xilinx part names: device, package (clg400, ffvb1156, ...), speed grade and temperature.
_DEVICE_RE = re.compile(r"^(x[a-z0-9]+?)-?(?:clg|ffg|fbg|csg|sfv[a-z]|ffv[a-z]|fl[a-z]{2}|fig[a-z]|fsv[a-z]|vsv[a-z])\d")


# A whole Xilinx/AMD part name: letters and digits in hyphen-joined groups (xc7z020clg400-1,
# xcu280-fsvh2892-2L-e, xcvc1902-vsva2197-2MP-e-S). Matched whole: hls4ml writes the part into
# `set part "..."` in the project's Tcl, where brackets, quotes, $ or a newline would run as code.
PART_NAME_RE = re.compile(r"x[a-z0-9]+(?:-[a-z0-9]+)*", re.IGNORECASE)


def check_part_name(name) -> str:
    text = str(name)
    if len(text) > 64 or not PART_NAME_RE.fullmatch(text):
        shown = text if len(text) <= 80 and text.isprintable() else repr(text[:80])
        raise FlowError(f"Part '{shown}' is not a part name (letters and digits in groups joined by hyphens, "
                        "like xc7z020clg400-1): give the part as Vivado lists it.")
    return text


def device_of(name: str):
    """The device of a part name ("xc7z020" of "xc7z020-clg484-1"), or None."""
    m = _DEVICE_RE.match(name.lower())
    return m.group(1) if m else None


def find_part(name: str):
    """The Part for a name as users or Vivado spell it, or None. Another package, speed grade or
    temperature range of a known device has the same fabric, so it gets that device's figures."""
    wanted = _key(name)
    for part in PARTS.values():
        if _key(part.name) == wanted:
            return part
    device = device_of(name)
    for part in PARTS.values():
        if device and device_of(part.name) == device:
            return replace(part, name=name)
    return None


def get_part(name: str) -> Part:
    part = find_part(check_part_name(name))
    if part is None:
        known = ", ".join(PARTS)
        raise FlowError(
            f"Unknown part '{name}': use one of {known}, or add it to hlsflow/parts.py "
            "with its DSP, BRAM_18K, LUT and FF counts."
        )
    return part
