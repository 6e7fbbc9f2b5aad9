"""`hlsflow doctor`: what can be known about a mounted HLS install in seconds, before hours of
synthesis are spent on it. One table, one verdict; `synth` and `flow` run the blocking checks
(`blocking`) for the install they are about to use.

Resource need is a rough, documented floor, not a measurement series: C synthesis of hls4ml
designs grows with the unrolled multipliers, so
    memory = 2 GB + 2 MB x estimated multipliers,  disk = 1 GB + 1 MB x estimated multipliers
(the multipliers from the preflight of the converted project; 2 GB / 1 GB when there is none yet).
"""

import locale as _locale
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import FlowError
from ..files import read_json
from . import xilinx

OK, WARN, FAIL, NA = "ok", "warn", "FAIL", "n/a"
LICENCE_TIMEOUT_S = 3.0
FLEXLM_DEFAULT_PORT = 27000
LDD_TIMEOUT_S = 20
MAX_ELF_CHECKED = 25
BASE_MEMORY_MB, MEMORY_MB_PER_MULTIPLIER = 2048, 2.0
BASE_DISK_MB, DISK_MB_PER_MULTIPLIER = 1024, 1.0


@dataclass
class Check:
    name: str
    status: str  # OK, WARN, FAIL or NA; FAIL blocks synthesis
    detail: str


# ------------------------------------------------------------------------- the checks

def check_settings(install) -> Check:
    if install.settings:
        return Check("settings64.sh", OK, str(install.settings))
    return Check("settings64.sh", WARN, f"none in {install.root}: the tool runs without Xilinx's environment, "
                 "and vsynth finds no vivado; mount the whole install folder")


def check_version(install):
    """(Check, version or None): the binary answers `-version` within its timeout."""
    try:
        version = xilinx.tool_version(install)
    except FlowError as exc:  # what the tool itself said, without the advice to run doctor
        return Check("runs (-version)", FAIL, getattr(exc, "detail", str(exc))), None
    return Check("runs (-version)", OK, f"{install.binary.name} {version}{install.double_note}"), version


def check_support(install, version, backend, part_family=None) -> Check:
    level, sentence = xilinx.support(backend, install, version, part_family)
    status = {"reference": OK, "supported": OK, "untested": WARN, "unsupported": FAIL}[level]
    return Check(f"Backend {backend}", status, f"{level}: {sentence}")


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def elf_binaries(install) -> list:
    """The tool's ELF executables: Xilinx's bin/ holds shell wrappers that start those in
    bin/unwrapped/lnx64.o/ (the tool's own first)."""
    folder = install.root / "bin" / "unwrapped" / "lnx64.o"
    found = [p for p in sorted(folder.iterdir()) if p.is_file() and _is_elf(p)] if folder.is_dir() else []
    found.sort(key=lambda p: p.name != install.binary.name)
    if _is_elf(install.binary):
        found.insert(0, install.binary)
    return found[:MAX_ELF_CHECKED]


def _own_library_names(install) -> set:
    """File names of the libraries the install brings (lib/, tps/): its loader puts them on the
    library path at run time, so ldd run without it must not count them as missing."""
    names = set()
    for sub in ("lib", "tps"):
        for _, _, files in os.walk(install.root / sub):
            names.update(files)
    return names


def missing_libraries(install) -> dict:
    """{ELF binary name: [system libraries ldd cannot find]}."""
    binaries = elf_binaries(install)
    if not binaries:
        return {}
    env = dict(os.environ)
    lib = install.root / "lib" / "lnx64.o"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(lib), env.get("LD_LIBRARY_PATH")]))
    own = _own_library_names(install)
    missing = {}
    for binary in binaries:
        try:
            out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env,
                                 timeout=LDD_TIMEOUT_S).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        libs = [m.group(1) for m in re.finditer(r"^\s*(\S+) => not found", out, re.MULTILINE)]
        libs = [name for name in libs if name not in own]
        if libs:
            missing[binary.name] = sorted(set(libs))
    return missing


def check_libraries(install) -> Check:
    binaries = elf_binaries(install)
    if not binaries:
        return Check("shared libraries", NA, f"no ELF binary in {install.root}/bin/unwrapped/lnx64.o to check")
    missing = missing_libraries(install)
    if not missing:
        return Check("shared libraries", OK, f"ldd finds every library of {len(binaries)} binaries")
    listed = "; ".join(f"{name} needs {', '.join(libs)}" for name, libs in missing.items())
    return Check("shared libraries", FAIL, f"missing in the image: {listed} (add the Debian package that holds "
                 "it to docker/system-packages.txt)")


def check_locale() -> Check:
    """Vivado's C++ runtime aborts (locale::facet::_S_create_c_locale) on a locale the system lacks."""
    wanted = os.environ.get("LC_ALL") or os.environ.get("LANG") or "C"
    try:
        previous = _locale.setlocale(_locale.LC_ALL)
        _locale.setlocale(_locale.LC_ALL, "")
        _locale.setlocale(_locale.LC_ALL, previous)
    except _locale.Error:
        return Check("locale", FAIL, f"{wanted} is not installed in the image: set LANG=C.UTF-8 (or en_US.UTF-8) "
                     "before running")
    return Check("locale", OK, wanted)


def check_y2k22(install, version, export: bool) -> Check:
    if not xilinx.y2k22_needed(version):
        return Check("Y2K22 patch", NA, f"{install.tool} {version} does not need it")
    if xilinx.y2k22_patched(install):
        return Check("Y2K22 patch", OK, f"{xilinx.Y2K22_PATCH_FILE} present")
    problem = xilinx.y2k22_problem(install, version)
    if export:
        return Check("Y2K22 patch", FAIL, problem)
    return Check("Y2K22 patch", WARN, "missing (AR 76960); only export_design needs it, and export is off")


def _licence_entries(value: str) -> list:
    return [entry for entry in value.split(os.pathsep) if entry.strip()]


def server_answers(entry: str, timeout=LICENCE_TIMEOUT_S) -> bool:
    port, _, host = entry.partition("@")
    try:
        with socket.create_connection((host, int(port or FLEXLM_DEFAULT_PORT)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def check_licence() -> Check:
    """Each licence variable set: its files exist, its port@host servers take a TCP connection."""
    given = [(var, os.environ[var]) for var in xilinx.LICENCE_VARS if os.environ.get(var)]
    if not given:
        return Check("licence", WARN, f"neither {' nor '.join(xilinx.LICENCE_VARS)} is set: fine for parts the tool "
                     "needs no licence for; licensed parts fail in synthesis")
    good, bad = [], []
    for var, value in given:
        for entry in _licence_entries(value):
            if "@" in entry:
                if server_answers(entry):
                    good.append(f"{var}: server {entry} answers")
                else:
                    bad.append(f"{var}: server {entry} does not answer within {LICENCE_TIMEOUT_S:.0f} s")
            elif Path(entry).exists():
                good.append(f"{var}: file {entry} exists")
            else:
                bad.append(f"{var}: file {entry} does not exist in the container")
    if bad:
        return Check("licence", FAIL, "; ".join(bad) + " (a server needs the host's network: start the server, "
                     "or fix the variable)")
    return Check("licence", OK, "; ".join(good))


def estimated_need(multipliers) -> dict:
    m = multipliers or 0
    return {"memory_mb": BASE_MEMORY_MB + MEMORY_MB_PER_MULTIPLIER * m, "disk_mb": BASE_DISK_MB + DISK_MB_PER_MULTIPLIER * m}


def design_multipliers(cfg):
    """The preflight's multiplier estimate of the converted project, or None."""
    if cfg is None:
        return None
    try:
        manifest = read_json(Path(cfg.output_dir) / "manifest.json")
        return manifest["stages"]["convert"]["result"]["preflight"]["estimated_multipliers"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def available_memory_mb():
    """MemAvailable, or the container's cgroup limit when lower; None when unknown."""
    figures = []
    try:
        m = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        if m:
            figures.append(int(m.group(1)) / 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            figures.append(int(limit) / 2**20)
    except OSError:
        pass
    return min(figures) if figures else None


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_memory(multipliers) -> Check:
    need = estimated_need(multipliers)["memory_mb"]
    have = available_memory_mb()
    basis = f"estimate {need / 1024:.1f} GB" + (f" for ~{multipliers:,} multipliers" if multipliers else " (no design)")
    if have is None:
        return Check("memory", WARN, f"{basis}; available memory unknown")
    status = OK if have >= need else FAIL
    return Check("memory", status, f"{have / 1024:.1f} GB available, {basis}" +
                 ("" if status == OK else ": free memory or raise ReuseFactor"))


def check_disk(out_dir, multipliers) -> Check:
    need = estimated_need(multipliers)["disk_mb"]
    where = _nearest_existing(Path(out_dir or "."))
    have = shutil.disk_usage(where).free / 2**20
    status = OK if have >= need else FAIL
    return Check("disk", status, f"{have / 1024:.1f} GB free at {where}, estimate {need / 1024:.1f} GB" +
                 ("" if status == OK else ": free space there or use another --out"))


# ----------------------------------------------------------------------- together

def checks_for(install, backend, cfg=None, export=False, full=True) -> list:
    """Every check of one install for a backend (and the design of cfg, when given)."""
    from ..parts import family_of

    checks = [check_settings(install)] if full else []
    version_check, version = check_version(install)
    checks.append(version_check)
    if version is None:
        return checks
    checks.append(check_support(install, version, backend, family_of(cfg.part) if cfg is not None else None))
    return checks + _run_checks(install, version, cfg, export)


def _run_checks(install, version, cfg, export) -> list:
    """What decides whether a run of this install can start: libraries, locale, the Y2K22 patch,
    licence, memory and disk (for the design of cfg, when given)."""
    multipliers = design_multipliers(cfg)
    return [check_libraries(install), check_locale(), check_y2k22(install, version, export), check_licence(),
            check_memory(multipliers), check_disk(cfg.output_dir if cfg is not None else Path.cwd(), multipliers)]


def blocking(install, version, cfg, export=False) -> list:
    """The failed checks that stop synthesis, for `synth` and `flow` (no -version or support
    check: they have made those)."""
    return [c for c in _run_checks(install, version, cfg, export) if c.status == FAIL]


def verdict(checks: list, install) -> str:
    """One line: whether synthesis with this install can start."""
    failed = [c for c in checks if c.status == FAIL]
    where = f"{install.tool} at {install.root}{install.double_note}"  # the test double named as such
    if failed:
        return (f"VERDICT: synthesis with {where} will fail: fix " + ", ".join(c.name for c in failed) + " first.")
    warned = [c.name for c in checks if c.status == WARN]
    return (f"VERDICT: ready for synthesis with {where}"
            + (f" (warnings: {', '.join(warned)})." if warned else "."))


def run(backend: str, explicit=None, cfg=None, export=False) -> tuple:
    """(rows of the table, verdict line, exit status): every install found, then the checks of
    the one the backend would use."""
    from .. import console

    try:  # an install the user named that is not there: one sentence, before any table
        xilinx.candidates(explicit)
    except FlowError as exc:
        raise FlowError(str(exc), exit_code=1) from None
    rows = []
    found = xilinx.discover()
    listed = ", ".join(f"{i.tool} {i.folder_version}" for i in found) or "none"
    rows.append(("installs found", OK if found else WARN, f"under {xilinx.xilinx_root()}: {listed}"))
    install, checks = None, []
    try:
        install = xilinx.select(backend, explicit)
    except FlowError as exc:
        checks.append(Check(f"Backend {backend}", FAIL, str(exc)))
    if install is None and not checks:
        checks.append(Check("install", WARN, "no vivado_hls or vitis_hls found (XILINX_ROOT, --vivado/--vitis, "
                                             "PATH): synthesis is skipped"))
    elif install is not None:
        rows.append(("checked", OK, install.describe()))
        checks += checks_for(install, backend, cfg, export=export)
    rows += [(c.name, c.status, c.detail) for c in checks]
    failed = any(c.status == FAIL for c in checks)
    if install is not None:
        line = verdict(checks, install)
    elif failed:
        line = f"VERDICT: synthesis with Backend {backend} cannot run: {checks[0].detail}"
    else:
        line = "VERDICT: no HLS install found: synthesis will be skipped."
    console.step("hlsflow doctor: the HLS install synthesis would use")
    console.say(console.table(["check", "status", "detail"], rows))
    console.say(line)
    return rows, line, 1 if failed else 0
