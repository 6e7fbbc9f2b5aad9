"""FPGA parts the flow knows, with the resources Vivado HLS reports against.

Figures are the device totals from Xilinx's data sheets (DS190, DS890, DS923).
BRAM is counted in 18 Kb blocks, as Vivado HLS reports it (one BRAM36 = two BRAM_18K).
"""

from dataclasses import dataclass

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
    )
}


def _key(name: str) -> str:
    # Vivado writes "xc7z020-clg400-1" where users write "xc7z020clg400-1".
    return name.lower().replace("-", "")


def find_part(name: str):
    """The Part for a name as users or Vivado spell it, or None."""
    wanted = _key(name)
    for part in PARTS.values():
        if _key(part.name) == wanted:
            return part
    return None


def get_part(name: str) -> Part:
    part = find_part(name)
    if part is None:
        known = ", ".join(PARTS)
        raise FlowError(
            f"Unknown part '{name}': use one of {known}, or add it to hlsflow/parts.py "
            "with its DSP, BRAM_18K, LUT and FF counts."
        )
    return part
