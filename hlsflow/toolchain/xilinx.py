"""Xilinx HLS installs: found by version, matched with hls4ml 1.3.0's backends, and the command
line each needs.

hls4ml 1.3.0's backends run (backends/*/…_backend.py, build()):
- Vivado: `vivado_hls -f build_prj.tcl "reset=.. csim=.. synth=.. cosim=.. validation=.. export=..
  vsynth=.. fifo_opt=.."`: Vivado HLS 2018.2 (hlsflow's reference) to 2020.1; Vivado HLS is gone
  from 2020.2 (renamed Vitis HLS, binary vitis_hls).
- Vitis: writes build_opt.tcl (`array set opt {..}`) and runs `vitis-run --tcl build_prj.tcl --mode
  hls`, which exists only from Vitis 2023.1. Its build_prj.tcl uses nothing but the HLS Tcl commands
  vitis_hls has had since 2020.2 (config_array_partition, gone there, is wrapped in `catch`), so for
  2020.2-2022.2 hlsflow runs `vitis_hls -f build_prj.tcl` after writing the same build_opt.tcl.

The tree under XILINX_ROOT is Xilinx's: <root>/{Vivado,Vivado_HLS,Vitis_HLS,Vitis}/<version>/bin/.
"""

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import standin
from ..errors import FlowError

REFERENCE = "2018.2"
# FlexLM's variables naming Xilinx licence files or port@host servers.
LICENCE_VARS = ("XILINXD_LICENSE_FILE", "LM_LICENSE_FILE")
VIVADO_HLS, VITIS_HLS = "Vivado HLS", "Vitis HLS"
BINARIES = {"vivado_hls": VIVADO_HLS, "vitis_hls": VITIS_HLS}
BINARY_OF = {"Vivado": "vivado_hls", "Vitis": "vitis_hls"}  # hls4ml backend -> the binary it needs
TOOL_DIRS = ("Vivado", "Vivado_HLS", "Vitis_HLS", "Vitis")
VITIS_RUN_FROM = (2023, 1)
VITIS_HLS_FROM = (2020, 2)
VIVADO_HLS_SUPPORTED = ((2018, 2), (2020, 1))
TESTED_UP_TO = (2024, 2)  # newer Vitis releases may change vitis-run: untested, said so
# Xilinx AR 76960: HLS releases 2014.1-2021.2 stamp IP with a date that overflows since 2022;
# its y2k22 patch adds this file to each install (and sources it), so export_design works again.
Y2K22_RANGE = ((2014, 1), (2021, 2))
Y2K22_PATCH_FILE = Path("common/scripts/automg_patch_20220104.tcl")
VERSION_TIMEOUT_S = 120  # a cold vivado_hls takes several seconds to start
_VERSION_RE = re.compile(r"^(\d{4})\.(\d+)")
FLAG_NAMES = ("reset", "csim", "synth", "cosim", "validation", "export", "vsynth", "fifo_opt")


def version_key(version):
    """(2019, 2) for "2019.2" or "2019.2.1"; None for anything else."""
    m = _VERSION_RE.match(str(version or ""))
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class Install:
    """One HLS install: its vivado_hls or vitis_hls binary, and the folder holding bin/."""
    binary: Path

    @property
    def tool(self) -> str:
        return BINARIES[self.binary.name]

    @property
    def root(self) -> Path:
        return self.binary.parent.parent

    @property
    def folder_version(self):
        return self.root.name if version_key(self.root.name) else None

    @property
    def settings(self):
        path = self.root / "settings64.sh"
        return path if path.is_file() else None

    def siblings(self, kind: str) -> list:
        """The same version's <XILINX_ROOT>/<kind>/<version> folder (Vitis_HLS beside Vitis, ...)."""
        return [self.root.parent.parent / kind / self.root.name] if self.folder_version else []

    def vitis_run(self):
        """vitis-run of this install (in its bin/ or the same version's Vitis/), else on PATH."""
        for folder in [self.root, *self.siblings("Vitis")]:
            if (folder / "bin" / "vitis-run").is_file():
                return folder / "bin" / "vitis-run"
        found = shutil.which("vitis-run")
        return Path(found) if found else None

    @property
    def test_double(self) -> bool:
        """Whether this is the test double (tests/standin_xilinx): its figures are never Vivado's."""
        return standin.is_test_double(self.binary)

    @property
    def double_note(self) -> str:
        """" (test double: ...)" after anything that names the install, "" for a real one."""
        return f" ({standin.NOTE})" if self.test_double else ""

    def describe(self, version=None) -> str:
        return f"{self.tool} {version or self.folder_version or '(version unknown)'} at {self.root}{self.double_note}"


def with_settings(install: Install, argv: list) -> list:
    """argv run after sourcing the install's settings64.sh (as Xilinx asks; it puts vivado on PATH
    for vsynth), its chatter kept out of the log; argv as is without one."""
    if install.settings is None:
        return [str(a) for a in argv]
    return ["bash", "-c", 'source "$0" >/dev/null 2>&1; exec "$@"', str(install.settings), *map(str, argv)]


@functools.lru_cache(maxsize=None)  # asked by doctor, before the run and in it: seconds each time
def tool_version(install: Install) -> str:
    """The version `<binary> -version` prints, e.g. "2018.2"; the folder's name when it prints none."""
    try:
        out = subprocess.run(with_settings(install, [install.binary, "-version"]), capture_output=True, text=True,
                             timeout=VERSION_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FlowError(f"{install.binary} -version did not answer ({exc}): run `hlsflow doctor` to check the "
                        "install and its system libraries.") from exc
    m = re.search(r"\bv(\d{4}\.\d+(?:\.\d+)?)", out.stdout + out.stderr)
    if m:
        return m.group(1)
    if out.returncode != 0:
        raise VersionFailed(install, out.returncode, out.stderr or out.stdout)
    return install.folder_version or "unknown"


class VersionFailed(FlowError):
    """`<binary> -version` failed: the sentence quotes the tool's own last lines (what it said
    about a missing library or file); `detail` is that sentence without the advice to run doctor,
    for doctor itself."""

    LINES = 3

    def __init__(self, install: Install, status: int, said: str):
        # Printable characters only, and not too many: a tool's output must not drive the terminal.
        lines = ["".join(c if c.isprintable() else "?" for c in line.strip())[:200]
                 for line in said.splitlines() if line.strip()][-self.LINES:]
        quoted = f', saying "{" / ".join(lines)}"' if lines else ", saying nothing"
        self.detail = f"{install.binary} -version failed with status {status}{quoted}"
        super().__init__(f"{self.detail}: check the install and its system libraries (`hlsflow doctor` checks them).")


def xilinx_root() -> Path:
    return Path(os.environ.get("XILINX_ROOT") or "/opt/Xilinx")


# Variables that name one install, and the binaries one of them holds (XILINX_VIVADO is also set by
# the settings64.sh of a Vivado without vivado_hls, from 2020.2 on, beside Vitis HLS).
INSTALL_VARS = (("XILINX_VIVADO", ("vivado_hls", "vivado")), ("VIVADO_DIR", ("vivado_hls",)),
                ("XILINX_HLS", ("vitis_hls",)))


def named_install_problem():
    """The sentence for an install the environment names that is not there (a folder that does not
    exist, or holds no Xilinx tool), or None. The user named it: skipping synthesis would hide it."""
    given = os.environ.get("XILINX_ROOT")
    if given:
        root = Path(given)
        if not root.is_dir():
            return (f"XILINX_ROOT is {given}, which is not a folder here: set it to the folder holding Xilinx's "
                    "Vivado/ or Vitis_HLS/ installs (e.g. /opt/Xilinx), or unset it to run without synthesis.")
        if not any((root / kind).is_dir() for kind in TOOL_DIRS):
            return (f"XILINX_ROOT is {given}, which holds no {', '.join(TOOL_DIRS[:-1])} or {TOOL_DIRS[-1]} folder: "
                    "set it to the folder holding Xilinx's installs (e.g. /opt/Xilinx), or unset it.")
    for var, binaries in INSTALL_VARS:
        value = os.environ.get(var)
        if not value:
            continue
        folder = Path(value)
        if not folder.is_dir():
            return (f"{var} is {value}, which is not a folder here: set it to an install folder (the one holding "
                    "settings64.sh and bin/), or unset it.")
        if not any((folder / "bin" / name).is_file() for name in binaries):
            return (f"{var} is {value}, which holds no bin/{' nor bin/'.join(binaries)}: set it to an install folder "
                    "(the one holding settings64.sh and bin/), or unset it.")
    return None


def install_mounts(path) -> list:
    """What a --vivado/--vitis path needs mounted: the tool folders of its Xilinx tree when it is an
    install laid out as Xilinx lays them out (<tree>/<Vivado|Vitis_HLS|...>/<version>[/bin/<binary>]),
    since an install reaches into the folders beside it (Vitis HLS into Vivado/ and Vitis/); the path
    otherwise. A tree that is your home folder or / (~/Vivado/2018.2) gives its tool folders alone."""
    path = Path(path)
    folder = path.parent.parent if path.is_file() and path.parent.name == "bin" else path
    if version_key(folder.name) and folder.parent.name in TOOL_DIRS:
        tree = folder.parent.parent
        if tree.resolve() in (Path.home().resolve(), Path("/")):
            return [tree / kind for kind in TOOL_DIRS if (tree / kind).is_dir()]
        return [tree]
    return [path]


def discover(root=None) -> list:
    """Every HLS install under the Xilinx tree, oldest first."""
    root = Path(root) if root else xilinx_root()
    found = {}
    for kind in TOOL_DIRS:
        folder = root / kind
        if not folder.is_dir():
            continue
        for version_dir in sorted(folder.iterdir(), key=lambda p: version_key(p.name) or (0, 0)):
            for name in BINARIES:
                binary = version_dir / "bin" / name
                if version_key(version_dir.name) and binary.is_file() and os.access(binary, os.X_OK):
                    found.setdefault(binary.resolve(), Install(binary))
    return sorted(found.values(), key=lambda i: (version_key(i.folder_version), i.tool))


def _from_path(path: Path):
    """The install a --vivado/--vitis path names (its folder or a binary), or None."""
    if path.is_file():
        return Install(path) if path.name in BINARIES else None
    for name in BINARIES:
        if (path / "bin" / name).is_file():
            return Install(path / "bin" / name)
    return None


def no_install_at(path) -> FlowError:
    return FlowError(f"No vivado_hls at {path} (nor vitis_hls): pass --vivado (or --vitis) an HLS install folder "
                     "(the one holding settings64.sh and bin/), its binary, or a version under XILINX_ROOT such as "
                     "2020.1.")


def candidates(explicit=None) -> list:
    """Installs in the order they are looked for: --vivado/--vitis (a folder, a binary, or a
    version under XILINX_ROOT), XILINX_VIVADO / VIVADO_DIR / XILINX_HLS, XILINX_ROOT, PATH. An install
    the environment names that is not there is a mistake (FlowError), not an install to skip."""
    problem = named_install_problem()
    if problem:
        raise FlowError(problem)
    if explicit:
        text = str(explicit)
        if version_key(text) and not Path(text).exists():
            matching = [i for i in discover() if i.folder_version == text]
            if not matching:
                versions = ", ".join(f"{i.tool} {i.folder_version}" for i in discover()) or "none"
                raise FlowError(f"No HLS {text} under {xilinx_root()} (found: {versions}): mount that install as "
                                "XILINX_ROOT, or pass --vivado its folder.")
            return matching
        found = _from_path(Path(text))
        if found is None:
            raise no_install_at(text)
        return [found]
    found = []
    for var, name in (("XILINX_VIVADO", "vivado_hls"), ("VIVADO_DIR", "vivado_hls"), ("XILINX_HLS", "vitis_hls")):
        if os.environ.get(var):
            binary = Path(os.environ[var]) / "bin" / name
            if binary.is_file() and os.access(binary, os.X_OK):
                found.append(Install(binary))
    installs = discover()
    # The reference first, then the newest: what a lab with several installs most likely wants.
    installs.sort(key=lambda i: (i.folder_version != REFERENCE, [-n for n in version_key(i.folder_version)]))
    found += installs
    for name in BINARIES:
        on_path = shutil.which(name)
        if on_path:
            found.append(Install(Path(on_path)))
    unique = {}
    for install in found:
        unique.setdefault(install.binary.resolve(), install)
    return list(unique.values())


def select(backend: str, explicit=None):
    """The install the backend runs (None when there is none at all); FlowError naming the pair
    when only installs the backend cannot run are there."""
    found = candidates(explicit)
    wanted = BINARY_OF[backend]
    for install in found:
        if install.binary.name == wanted:
            return install
    if found:
        raise FlowError(unsupported_pair(backend, found[0], found[0].folder_version))
    return None


def unsupported_pair(backend: str, install: Install, version) -> str:
    if backend == "Vivado":
        return (f"Backend Vivado runs vivado_hls, which {install.describe(version)} does not have (Xilinx renamed "
                "it vitis_hls in 2020.2): set `Backend: Vitis` in the config, or mount Vivado HLS 2018.2-2020.1.")
    return (f"Backend Vitis needs Vitis HLS 2020.2 or later (vitis_hls, or vitis-run from 2023.1), and "
            f"{install.describe(version)} is not one: set `Backend: Vivado` in the config, or mount Vitis HLS.")


def support(backend: str, install: Install, version: str, part_family=None) -> tuple:
    """(level, sentence): level "reference", "supported", "untested" (runs, with a warning) or
    "unsupported" (refused before anything runs)."""
    key = version_key(version)
    if install.binary.name != BINARY_OF[backend]:
        return "unsupported", unsupported_pair(backend, install, version)
    if part_family and part_family.startswith("versal") and install.tool == VIVADO_HLS:
        return "unsupported", (f"Versal parts need Vitis HLS, and {install.describe(version)} is Vivado HLS: set "
                               "`Backend: Vitis` and mount Vitis HLS 2020.2 or later, or pick a 7-series or "
                               "UltraScale part.")
    if install.tool == VIVADO_HLS:
        if version == REFERENCE:
            return "reference", f"Vivado HLS {version} is hlsflow's reference."
        low, high = VIVADO_HLS_SUPPORTED
        if key and low <= key <= high:
            return "supported", (f"Vivado HLS {version} found at {install.root}; supported, but the reference flow "
                                 f"is {REFERENCE}, so results may differ from it.")
        return "untested", (f"Vivado HLS {version} found at {install.root} is outside the tested range "
                            f"{REFERENCE}-2020.1 of this flow, so results may differ.")
    if key is None:
        return "untested", f"Vitis HLS at {install.root} gave no version, so the command line is a guess."
    if key < VITIS_HLS_FROM:
        return "unsupported", (f"Vitis HLS {version} at {install.root} predates the vitis_hls Tcl flow hls4ml's "
                               "Vitis backend writes for (2020.2 on): mount Vitis HLS 2020.2 or later, or use that "
                               "release's Vivado HLS with `Backend: Vivado`.")
    if key >= VITIS_RUN_FROM and install.vitis_run() is None:
        return "unsupported", (f"hls4ml 1.3.0 runs Vitis HLS {version} with vitis-run, which is not in "
                               f"{install.root}/bin, the Vitis {version} beside it, or on PATH: mount the full "
                               "Vitis HLS install.")
    if key > TESTED_UP_TO:
        return "untested", (f"Vitis HLS {version} is newer than the releases this flow was checked against "
                            "(up to 2024.2), so the command line may have changed.")
    how = "vitis-run" if key >= VITIS_RUN_FROM else "vitis_hls -f (hls4ml itself needs vitis-run, from 2023.1)"
    return "supported", f"Vitis HLS {version} at {install.root} is supported, run by {how}."


def flag_values(flags: dict) -> dict:
    """The build script's options: C synthesis always, cosimulation and validation never."""
    return {"reset": 0, "csim": int(bool(flags.get("csim"))), "synth": 1, "cosim": 0, "validation": 0,
            "export": int(bool(flags.get("export"))), "vsynth": int(bool(flags.get("vsynth"))), "fifo_opt": 0}


def vivado_args(flags: dict) -> str:
    """The argument string the Vivado backend's build_prj.tcl reads."""
    return " ".join(f"{k}={v}" for k, v in flag_values(flags).items())


def build_opt_tcl(flags: dict) -> str:
    """build_opt.tcl as the Vitis backend's build() writes it, with these flags."""
    body = "".join(f"    {k:<10} {v}\n" for k, v in flag_values(flags).items())
    return "array set opt {\n" + body + "}\n"


def command(install: Install, version: str, flags: dict) -> tuple:
    """(argv as shown, argv to run, build_opt.tcl text or None) for a project's build_prj.tcl."""
    if install.tool == VIVADO_HLS:
        shown = ["vivado_hls", "-f", "build_prj.tcl", vivado_args(flags)]
        return shown, [install.binary, *shown[1:]], None
    key = version_key(version)
    if key and key < VITIS_RUN_FROM:
        shown = ["vitis_hls", "-f", "build_prj.tcl"]
        return shown, [install.binary, *shown[1:]], build_opt_tcl(flags)
    vitis_run = install.vitis_run()
    if vitis_run is None:
        raise FlowError(support("Vitis", install, version)[1])
    shown = ["vitis-run", "--tcl", "build_prj.tcl", "--mode", "hls"]
    return shown, [vitis_run, *shown[1:]], build_opt_tcl(flags)


def y2k22_needed(version) -> bool:
    key = version_key(version)
    return bool(key) and Y2K22_RANGE[0] <= key <= Y2K22_RANGE[1]


def y2k22_patched(install: Install) -> bool:
    """Whether the patch's file is in the install (or the same version's HLS folder beside it)."""
    folders = [install.root, *install.siblings("Vivado_HLS"), *install.siblings("Vitis_HLS")]
    return any((folder / Y2K22_PATCH_FILE).is_file() for folder in folders)


def y2k22_problem(install: Install, version: str):
    """The sentence for an export that will fail on the Y2K22 bug, or None."""
    if not y2k22_needed(version) or y2k22_patched(install):
        return None
    return (f"export_design in {install.tool} {version} fails since 2022 without Xilinx's Y2K22 patch, and "
            f"{install.root} does not have it ({Y2K22_PATCH_FILE}): apply AR 76960 (y2k22_patch) to the host "
            "install, or run without --export.")
