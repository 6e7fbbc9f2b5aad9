"""FPGA parts: any Xilinx/AMD part name runs; the devices in the table below also get their resources.

A part string is handed to hls4ml and Vivado as given (once it passes the grammar check, as it is
written into Tcl). Its device (xc7z020 of xc7z020clg400-1: every package, speed grade and
temperature range of a device has the same fabric) is looked up here, for what can be judged
before synthesis (the preflight, `plan`). A part whose device is not in the table still runs: the
preflight says that fit cannot be judged before synthesis, and the report judges against the
figures Vivado writes into the synthesis report, as it does for every part.

Figures are the device totals of AMD's data sheets, family by family (the sheet is named with
each); tests/toolchain/test_parts_table.py checks them against the AvailableResources real
Vivado/Vitis HLS runs wrote (tests/report_fixtures/wild). BRAM is counted in 18 Kb blocks, as Vivado
HLS reports it (one 36 Kb block = two BRAM_18K); URAM in 288 Kb UltraRAM blocks. Devices whose
figures could not be confirmed here are left out, and named in a comment: they run all the same.
Board names users know (`pynq-z2`, `ultra96v2`, `kv260`, `u250`, ...) stand for their part.
"""

import re
from dataclasses import dataclass, replace

from .errors import FlowError


@dataclass(frozen=True)
class Part:
    name: str
    family: str  # Vivado's ProductFamily name (zynq, virtexuplus, ...)
    DSP: int
    BRAM_18K: int
    LUT: int
    FF: int
    URAM: int = 0
    sheet: str = ""  # the data sheet the figures come from

    def resources(self) -> dict:
        return {"DSP": self.DSP, "BRAM_18K": self.BRAM_18K, "LUT": self.LUT, "FF": self.FF, "URAM": self.URAM}

    def describe(self) -> str:
        return (f"{self.DSP:,} DSP, {self.BRAM_18K:,} BRAM_18K, {self.URAM:,} URAM, {self.LUT:,} LUT, "
                f"{self.FF:,} FF")


DEVICES = {}


def _family(family: str, sheet: str, rows) -> None:
    """rows: (device, DSP, 36 Kb block RAMs, UltraRAM blocks, LUT, FF), as the sheet gives them."""
    for device, dsp, bram36, uram, lut, ff in rows:
        DEVICES[device] = Part(device, family, DSP=dsp, BRAM_18K=2 * bram36, LUT=lut, FF=ff, URAM=uram, sheet=sheet)


def _slices(count: int) -> tuple:
    """(LUT, FF) of a 7-series device from its slices: DS180 gives slices, and each 7-series slice
    holds four LUTs and eight flip-flops."""
    return 4 * count, 8 * count


def _seven(device, slices, dsp, bram36):
    return (device, dsp, bram36, 0, *_slices(slices))


DS180 = "DS180 7 Series FPGAs Data Sheet: Overview"
# DS180 Table 2 (Spartan-7): slices, DSP slices, 36 Kb block RAMs.
_family("spartan7", DS180, [_seven("xc7s6", 938, 10, 5), _seven("xc7s15", 2000, 20, 10),
                            _seven("xc7s25", 3650, 80, 45), _seven("xc7s50", 8150, 120, 75),
                            _seven("xc7s75", 12000, 140, 90), _seven("xc7s100", 16000, 160, 120)])
# DS180 Table 3 (Artix-7).
_family("artix7", DS180, [_seven("xc7a12t", 2000, 40, 20), _seven("xc7a15t", 2600, 45, 25),
                          _seven("xc7a25t", 3650, 80, 45), _seven("xc7a35t", 5200, 90, 50),
                          _seven("xc7a50t", 8150, 120, 75), _seven("xc7a75t", 11800, 180, 105),
                          _seven("xc7a100t", 15850, 240, 135), _seven("xc7a200t", 33650, 740, 365)])
# DS180 Table 4 (Kintex-7).
_family("kintex7", DS180, [_seven("xc7k70t", 10250, 240, 135), _seven("xc7k160t", 25350, 600, 325),
                           _seven("xc7k325t", 50950, 840, 445), _seven("xc7k355t", 55650, 1440, 715),
                           _seven("xc7k410t", 63550, 1540, 795), _seven("xc7k420t", 65150, 1680, 835),
                           _seven("xc7k480t", 74650, 1920, 955)])
# DS180 Table 5 (Virtex-7, T, XT and HT).
_family("virtex7", DS180, [_seven("xc7v585t", 91050, 1260, 795), _seven("xc7v2000t", 305400, 2160, 1292),
                           _seven("xc7vx330t", 51000, 1120, 750), _seven("xc7vx415t", 64400, 2160, 880),
                           _seven("xc7vx485t", 75900, 2800, 1030), _seven("xc7vx550t", 86600, 2880, 1180),
                           _seven("xc7vx690t", 108300, 3600, 1470), _seven("xc7vx980t", 153000, 3600, 1500),
                           _seven("xc7vx1140t", 178000, 3360, 1880), _seven("xc7vh580t", 90700, 1680, 940),
                           _seven("xc7vh870t", 136900, 2520, 1410)])
# DS190 Zynq-7000 SoC Data Sheet: Overview, which gives LUTs and flip-flops directly.
_family("zynq", "DS190 Zynq-7000 SoC Data Sheet: Overview", [
    ("xc7z007s", 66, 50, 0, 14400, 28800), ("xc7z012s", 120, 72, 0, 34400, 68800),
    ("xc7z014s", 170, 107, 0, 40600, 81200), ("xc7z010", 80, 60, 0, 17600, 35200),
    ("xc7z015", 160, 95, 0, 46200, 92400), ("xc7z020", 220, 140, 0, 53200, 106400),
    ("xc7z030", 400, 265, 0, 78600, 157200), ("xc7z035", 900, 500, 0, 171900, 343800),
    ("xc7z045", 900, 545, 0, 218600, 437200), ("xc7z100", 2020, 755, 0, 277400, 554800)])

DS890 = "DS890 UltraScale Architecture and Product Data Sheet: Overview"
_family("kintexu", DS890, [
    ("xcku025", 1152, 360, 0, 145440, 290880), ("xcku035", 1700, 540, 0, 203128, 406256),
    ("xcku040", 1920, 600, 0, 242400, 484800), ("xcku060", 2760, 1080, 0, 331680, 663360),
    ("xcku085", 4100, 1620, 0, 497520, 995040), ("xcku095", 768, 1680, 0, 537600, 1075200),
    ("xcku115", 5520, 2160, 0, 663360, 1326720)])
_family("virtexu", DS890, [
    ("xcvu065", 600, 1260, 0, 358080, 716160), ("xcvu080", 672, 1421, 0, 445712, 891424),
    ("xcvu095", 768, 1728, 0, 537600, 1075200), ("xcvu125", 1200, 2520, 0, 716160, 1432320),
    ("xcvu160", 1560, 3276, 0, 926400, 1852800), ("xcvu190", 1800, 3780, 0, 1074240, 2148480),
    ("xcvu440", 2880, 2520, 0, 2532960, 5065920)])
# Artix UltraScale+ (DS890's Artix UltraScale+ table): no report of one among the wild sets, so
# these are not cross-checked against a tool's AvailableResources.
_family("artixuplus", DS890, [
    ("xcau7p", 216, 108, 0, 37440, 74880), ("xcau10p", 400, 100, 0, 44000, 88000),
    ("xcau15p", 576, 144, 0, 77760, 155520), ("xcau20p", 900, 200, 0, 109000, 218000),
    ("xcau25p", 1200, 300, 0, 141000, 282000)])
# Kintex UltraScale+; KU19P is left out (its figures not confirmed here).
_family("kintexuplus", DS890, [
    ("xcku3p", 1368, 360, 48, 162720, 325440), ("xcku5p", 1824, 480, 64, 216960, 433920),
    ("xcku9p", 2520, 912, 0, 274080, 548160), ("xcku11p", 2928, 600, 80, 298560, 597120),
    ("xcku13p", 3528, 744, 112, 341280, 682560), ("xcku15p", 1968, 984, 128, 522720, 1045440)])
# Virtex UltraScale+, the HBM devices (VU31P-VU47P) included; VU23P is left out (not confirmed here).
_family("virtexuplus", DS890, [
    ("xcvu3p", 2280, 720, 320, 394080, 788160), ("xcvu5p", 3474, 1024, 470, 600577, 1201154),
    ("xcvu7p", 4560, 1440, 640, 788160, 1576320), ("xcvu9p", 6840, 2160, 960, 1182240, 2364480),
    ("xcvu11p", 9216, 2016, 960, 1296000, 2592000), ("xcvu13p", 12288, 2688, 1280, 1728000, 3456000),
    ("xcvu19p", 3840, 2160, 320, 4085760, 8171520), ("xcvu27p", 9216, 2016, 960, 1296000, 2592000),
    ("xcvu29p", 12288, 2688, 1280, 1728000, 3456000), ("xcvu57p", 9024, 2016, 960, 1303680, 2607360)])
_family("virtexuplusHBM", DS890, [
    ("xcvu31p", 2880, 672, 320, 439680, 879360), ("xcvu33p", 2880, 672, 320, 439680, 879360),
    ("xcvu35p", 5952, 1344, 640, 871680, 1743360), ("xcvu37p", 9024, 2016, 960, 1303680, 2607360),
    ("xcvu45p", 5952, 1344, 640, 871680, 1743360), ("xcvu47p", 9024, 2016, 960, 1303680, 2607360)])


def _variants(base, kinds, dsp, bram36, uram, lut, ff):
    """The CG/EG/EV devices of one Zynq UltraScale+ size share its programmable logic."""
    return [(f"{base}{kind}", dsp, bram36, uram, lut, ff) for kind in kinds]


# DS891 Zynq UltraScale+ MPSoC Data Sheet: Overview. ZU3TCG/TEG and ZU17EG are left out (not
# confirmed here).
_family("zynquplus", "DS891 Zynq UltraScale+ MPSoC Data Sheet: Overview", [
    *_variants("xczu1", ("cg", "eg"), 216, 108, 0, 37440, 74880),
    *_variants("xczu2", ("cg", "eg"), 240, 150, 0, 47232, 94464),
    *_variants("xczu3", ("cg", "eg"), 360, 216, 0, 70560, 141120),
    *_variants("xczu4", ("cg", "eg", "ev"), 728, 128, 48, 87840, 175680),
    *_variants("xczu5", ("cg", "eg", "ev"), 1248, 144, 64, 117120, 234240),
    *_variants("xczu6", ("cg", "eg"), 1973, 714, 0, 214604, 429208),
    *_variants("xczu7", ("cg", "eg", "ev"), 1728, 312, 96, 230400, 460800),
    *_variants("xczu9", ("cg", "eg"), 2520, 912, 0, 274080, 548160),
    ("xczu11eg", 2928, 600, 80, 298560, 597120), ("xczu15eg", 3528, 744, 112, 341280, 682560),
    ("xczu19eg", 1968, 984, 128, 522720, 1045440)])
# DS889 Zynq UltraScale+ RFSoC Data Sheet: Overview: the devices with 930K logic cells. ZU25DR,
# ZU42DR, ZU65DR and ZU67DR are left out (not confirmed here).
_family("zynquplusRFSOC", "DS889 Zynq UltraScale+ RFSoC Data Sheet: Overview", [
    (device, 4272, 1080, 80, 425280, 850560)
    for device in ("xczu21dr", "xczu27dr", "xczu28dr", "xczu29dr", "xczu39dr", "xczu43dr", "xczu46dr",
                   "xczu47dr", "xczu48dr", "xczu49dr")])
# DS987 Kria K26 SOM Data Sheet: the XCK26 (a ZU5EV-class device). The K24's XCK24 is left out
# (not confirmed here).
_family("zynquplus", "DS987 Kria K26 SOM Data Sheet", [("xck26", 1248, 144, 64, 117120, 234240)])
# Alveo cards: each card's device. The card data sheets give the same figures rounded (1,182K LUTs);
# the exact counts are those of the Virtex UltraScale+ device each is built on (DS890).
_family("virtexuplusHBM", "DS965 Alveo U50 Data Center Accelerator Cards Data Sheet",
        [("xcu50", 5952, 1344, 640, 871680, 1743360)])
_family("virtexuplusHBM", "DS978 Alveo U55C Data Center Accelerator Cards Data Sheet",
        [("xcu55c", 9024, 2016, 960, 1303680, 2607360)])
_family("virtexuplus", "DS962 Alveo U200 and U250 Data Center Accelerator Cards Data Sheet",
        [("xcu200", 6840, 2160, 960, 1182240, 2364480), ("xcu250", 12288, 2688, 1280, 1728000, 3456000)])
_family("virtexuplusHBM", "DS963 Alveo U280 Data Center Accelerator Card Data Sheet",
        [("xcu280", 9024, 2016, 960, 1303680, 2607360)])
# Versal (DSP58 engines, needs Vitis HLS). DS950 Versal AI Core Series: the VC1902 of the VCK190.
# DS956 Versal Prime Series: the VM1802 of the VMK180, the VC1902's programmable logic without AI
# Engines. The other AI Core and Prime devices, and every Versal Premium device (DS957), are left
# out: their figures are not confirmed here, so their fit is judged after synthesis only.
_family("versal", "DS950 Versal AI Core Series Data Sheet: Overview",
        [("xcvc1902", 1968, 967, 463, 899840, 1799680)])
_family("versal", "DS956 Versal Prime Series Data Sheet: Overview",
        [("xcvm1802", 1968, 967, 463, 899840, 1799680)])


# Boards users name, with the part on them (their vendors' board files and user guides).
BOARDS = {
    "pynq-z1": "xc7z020clg400-1", "pynq-z2": "xc7z020clg400-1", "zybo-z7-10": "xc7z010clg400-1",
    "zybo-z7-20": "xc7z020clg400-1", "zedboard": "xc7z020clg484-1", "zc702": "xc7z020clg484-1",
    "zc706": "xc7z045ffg900-2", "arty-a7-35": "xc7a35ticsg324-1L", "arty-a7-100": "xc7a100tcsg324-1",
    "arty-s7-50": "xc7s50csga324-1", "basys3": "xc7a35tcpg236-1", "nexys-a7-100t": "xc7a100tcsg324-1",
    "kc705": "xc7k325tffg900-2", "vc707": "xc7vx485tffg1761-2", "vc709": "xc7vx690tffg1761-2",
    "kcu105": "xcku040-ffva1156-2-e", "kcu116": "xcku5p-ffvb676-2-e", "vcu108": "xcvu095-ffva2104-2-e",
    "vcu118": "xcvu9p-flga2104-2L-e", "vcu128": "xcvu37p-fsvh2892-2L-e",
    "ultra96": "xczu3eg-sbva484-1-e", "ultra96v2": "xczu3eg-sbva484-1-e",
    "zcu102": "xczu9eg-ffvb1156-2-e", "zcu104": "xczu7ev-ffvc1156-2-e", "zcu106": "xczu7ev-ffvc1156-2-e",
    "zcu111": "xczu28dr-ffvg1517-2-e", "zcu208": "xczu48dr-fsvg1517-2-e", "zcu216": "xczu49dr-ffvf1760-2-e",
    "rfsoc2x2": "xczu28dr-ffvg1517-2-e", "rfsoc4x2": "xczu48dr-ffvg1517-2-e",
    "kv260": "xck26-sfvc784-2LV-c", "kr260": "xck26-sfvc784-2LV-c", "kd240": "xck24-ubva530-2LV-c",
    "u50": "xcu50-fsvh2104-2-e", "u55c": "xcu55c-fsvh2892-2L-e", "u200": "xcu200-fsgd2104-2-e",
    "u250": "xcu250-figd2104-2L-e", "u280": "xcu280-fsvh2892-2L-e",
    "vck190": "xcvc1902-vsva2197-2MP-e-S", "vmk180": "xcvm1802-vsva2197-2MP-e-S",
    "vek280": "xcve2802-vsvh1760-2MP-e-S", "vpk120": "xcvp1202-vsva2785-2MP-e-S",
}


def _board_key(name: str) -> str:
    # "Ultra96-V2", "ultra96v2", "alveo-u250", "kria_kv260": one board each.
    key = re.sub(r"[-_]", "", name.lower())
    return re.sub(r"^(alveo|kria)", "", key)


_BOARD_KEYS = {_board_key(board): part for board, part in BOARDS.items()}


# A whole Xilinx/AMD part name: letters and digits in hyphen-joined groups (xc7z020clg400-1,
# xcu280-fsvh2892-2L-e, xcvc1902-vsva2197-2MP-e-S). Matched whole: hls4ml writes the part into
# `set part "..."` in the project's Tcl, where brackets, quotes, $ or a newline would run as code.
PART_NAME_RE = re.compile(r"x[a-z0-9]+(?:-[a-z0-9]+)*", re.IGNORECASE)
# What may be looked up as a board name at all: letters and digits in groups joined by - or _.
_NAME_RE = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*", re.IGNORECASE)


def _not_a_part(text) -> FlowError:
    shown = text if len(text) <= 80 and text.isprintable() else repr(text[:80])
    return FlowError(f"Part '{shown}' is not a part name (letters and digits in groups joined by hyphens, "
                     "like xc7z020clg400-1) nor a board `hlsflow parts` lists: give the part as Vivado lists it.")


def check_part_name(name) -> str:
    text = str(name)
    if len(text) > 64 or not PART_NAME_RE.fullmatch(text):
        raise _not_a_part(text)
    return text


def resolve_part(name) -> str:
    """The part a --part or Part: value names: a part as given, or a board's part. The grammar is
    checked first, before the board lookup, and the part that results is checked again."""
    text = str(name)
    if len(text) > 64 or not _NAME_RE.fullmatch(text):
        raise _not_a_part(text)
    board = _BOARD_KEYS.get(_board_key(text))
    return check_part_name(board if board else text)


def device_of(name: str):
    """The device in the table a part name is of ("xc7z020" of "xc7z020-clg484-1"), or None. The
    longest device name that starts the part and is followed by its package letters (or nothing);
    automotive (xa) and defence (xq) grades are the commercial device's fabric."""
    key = name.lower().replace("-", "")
    if key.startswith(("xa", "xq")):
        key = "xc" + key[2:]
    found = [d for d in DEVICES if key.startswith(d) and (len(key) == len(d) or key[len(d)].isalpha())]
    return max(found, key=len) if found else None


def find_part(name: str):
    """The Part for a part name as users or Vivado spell it (its device's figures), or None when
    the device is not in the table."""
    device = device_of(str(name))
    return replace(DEVICES[device], name=str(name)) if device else None


def family_of(name: str):
    """Vivado's family name of a part, from the table, else from the name for Versal (whose
    devices need Vitis HLS), else None."""
    part = find_part(name)
    if part:
        return part.family
    return "versal" if re.match(r"x[acq]v[cmpeh]\d{4}", str(name).lower()) else None


# Parts named in full: the boards' and the wild reports' parts, for `plan` to suggest.
PARTS = {p.name: p for p in (find_part(n) for n in (
    *BOARDS.values(), "xcvu13p-flga2577-2-e", "xczu5ev-sfvc784-2LV-e", "xcku115-flvb2104-2-i",
    "xcku15p-ffve1517-1-i", "xcvu11p-flga2577-1-e", "xc7a200t-fbg676-2")) if p is not None}


def listing(search=None) -> tuple:
    """(board rows, device rows) for `hlsflow parts`, those matching `search` (any part of a board,
    part, device or family name, case-insensitive)."""
    wanted = (search or "").lower()

    def matches(*names) -> bool:
        return not wanted or any(wanted in str(n).lower() for n in names)

    boards = []
    for board, part in BOARDS.items():
        known = find_part(part)
        if matches(board, part, known.family if known else "", known.name if known else ""):
            boards.append((board, part, device_of(part) or "not in the table"))
    devices = [(d.name, d.family, f"{d.DSP:,}", f"{d.BRAM_18K:,}", f"{d.URAM:,}", f"{d.LUT:,}", f"{d.FF:,}",
                d.sheet.split(" ")[0]) for d in DEVICES.values() if matches(d.name, d.family, d.sheet)]
    return boards, devices


def show(search=None) -> None:
    """`hlsflow parts [SEARCH]`: the boards and devices known, as tables."""
    from . import console

    boards, devices = listing(search)
    if not boards and not devices:
        raise FlowError(f"No board or device matches '{search}': run `hlsflow parts` for the whole list; any "
                        "Xilinx part runs, its fit judged against Vivado's own figures after synthesis.")
    if boards:
        console.say(console.table(["board", "part", "device"], boards))
    if devices:
        console.say(console.table(["device", "family", "DSP", "BRAM_18K", "URAM", "LUT", "FF", "data sheet"],
                                  devices))
    console.say("Any other Xilinx part runs too (give --part as Vivado lists it); its fit is judged after "
                "synthesis, against the figures Vivado writes into the report.")
