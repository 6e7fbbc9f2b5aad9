# TEST DOUBLE, not AMD software: stand-in for Vitis_HLS/2024.1/settings64.sh (see tests/standin_xilinx/README.md).
# Like the real file it is sourced from bash: it sets XILINX_HLS and puts its bin on PATH.
if [ -z "${BASH_VERSION:-}" ]; then
    echo "settings64.sh (stand-in) must be sourced from bash, like the real one." >&2
    return 1 2>/dev/null || exit 1
fi
XILINX_HLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export XILINX_HLS
export PATH="${XILINX_HLS}/bin${PATH:+:${PATH}}"
