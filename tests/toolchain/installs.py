"""Throwaway Xilinx install trees for the toolchain tests: folders laid out as Xilinx lays them
out, with bash scripts for binaries that answer `-version` like the real tools' first line.
They run no HLS; the end-to-end test uses tests/standin_xilinx (a test double) for that."""

import os
from pathlib import Path

BANNERS = {"vivado_hls": "Vivado(TM) HLS - High-Level Synthesis from C, C++ and SystemC v{v} (64-bit)",
           "vitis_hls": "Vitis HLS - High-Level Synthesis from C, C++ and OpenCL v{v} (64-bit)",
           "vitis-run": "vitis-run v{v} (64-bit)"}


def make_install(root: Path, kind: str, version: str, binaries=("vivado_hls",), settings=True) -> Path:
    """<root>/<kind>/<version>/ with bin/<binary> scripts; returns the install folder."""
    folder = Path(root) / kind / version
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    for name in binaries:
        script = folder / "bin" / name
        script.write_text(f"#!/bin/bash\necho '{BANNERS[name].format(v=version)}'\n")
        script.chmod(0o755)
    if settings:
        (folder / "settings64.sh").write_text(f'export PATH="{folder}/bin:$PATH"\n')
    return folder


def xilinx_env(monkeypatch, root: Path) -> None:
    """Only this tree in sight: XILINX_ROOT set, the variables that point elsewhere removed."""
    monkeypatch.setenv("XILINX_ROOT", str(root))
    for var in ("XILINX_VIVADO", "VIVADO_DIR", "XILINX_HLS", "XILINXD_LICENSE_FILE", "LM_LICENSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if "Xilinx" not in p and "standin" not in p))
