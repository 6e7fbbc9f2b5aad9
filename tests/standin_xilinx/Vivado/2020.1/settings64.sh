# TEST DOUBLE, not Xilinx software: stand-in for Vivado/2020.1/settings64.sh (see tests/standin_xilinx/README.md).
# Like the real file it is sourced from bash: it sets XILINX_VIVADO and puts its bin on PATH.
if [ -z "${BASH_VERSION:-}" ]; then
    echo "settings64.sh (stand-in) must be sourced from bash, like the real one." >&2
    return 1 2>/dev/null || exit 1
fi
XILINX_VIVADO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export XILINX_VIVADO
export PATH="${XILINX_VIVADO}/bin${PATH:+:${PATH}}"
