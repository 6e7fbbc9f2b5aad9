#!/bin/bash
# Entrypoint of the hlsflow image: set up a mounted Vivado if there is one, become the host user
# (so files written to mounted directories belong to them, not to root), then run the command.
set -euo pipefail

# What was found is said only under `hlsflow --verbose` (HLSFLOW_VERBOSE=1): the synthesis stage
# names the tool it runs, and `flow` says in one line when none was found.
say() { if [ "${HLSFLOW_VERBOSE:-}" = 1 ]; then echo "$@" >&2; fi; }

vivado_dir="${VIVADO_DIR:-${XILINX_ROOT:-/opt/Xilinx}/Vivado/2018.2}"
if [ -f "$vivado_dir/settings64.sh" ]; then
    # Xilinx's settings script is not written for `set -u`; its stdout must not mix with ours.
    set +u
    # shellcheck disable=SC1091
    source "$vivado_dir/settings64.sh" >/dev/null
    set -u
    # `vivado_hls -version` takes seconds to start: name the binary instead.
    hls="$(command -v vivado_hls || echo 'not on PATH')"
    say "hlsflow: Vivado found at $vivado_dir (vivado_hls $hls)"
else
    # Another version (Vivado HLS 2019.1-2020.1, Vitis HLS): hlsflow sources its settings64.sh
    # itself when it synthesises (hlsflow/toolchain/xilinx.py picks it by the config's Backend).
    # `|| true`: ls fails when nothing matches, and pipefail with set -e would end the entrypoint.
    others="$(ls -d "${XILINX_ROOT:-/opt/Xilinx}"/Vivado/*/bin/vivado_hls \
        "${XILINX_ROOT:-/opt/Xilinx}"/Vitis_HLS/*/bin/vitis_hls 2>/dev/null | sed 's|/bin/[^/]*$||' | tr '\n' ' ' || true)"
    if [ -n "$others" ]; then
        say "hlsflow: HLS installs found: ${others% } (hlsflow doctor checks them)"
    else
        say "hlsflow: no Vivado mounted at $vivado_dir; synthesis will be skipped"
    fi
fi

# FlexLM in containers often needs libudev preloaded; given as HLSFLOW_LD_PRELOAD so that the host's
# own LD_PRELOAD (host paths) never leaks in.
if [ -n "${HLSFLOW_LD_PRELOAD:-}" ]; then
    export LD_PRELOAD="$HLSFLOW_LD_PRELOAD"
fi

# `docker run IMAGE` alone: what this image is and how to use it. `docker run IMAGE flow ...` (any
# word that is not a command here, or a flag): an hlsflow task. Anything else runs as given.
if [ "$#" -eq 0 ]; then
    set -- sh -c 'hlsflow --help; echo; hlsflow versions'
elif [ "${1#-}" != "$1" ] || ! command -v "$1" >/dev/null 2>&1; then
    set -- hlsflow "$@"
fi

# Whom to run as: HOST_UID/HOST_GID when given, else the owner of the working directory (for a
# plain `docker run -v $PWD:/w -w /w IMAGE ...`), else stay root.
if [ "$(id -u)" = 0 ]; then
    uid="${HOST_UID:-}"
    gid="${HOST_GID:-}"
    if [ -z "$uid" ]; then
        uid="$(stat -c %u .)"
        gid="$(stat -c %g .)"
    fi
    if [ "$uid" != 0 ]; then
        gid="${gid:-$uid}"
        # Some tools (Java in Vivado, getpass) look the user up: give the uid a passwd entry.
        if ! getent passwd "$uid" >/dev/null; then
            echo "hlsflow:x:$uid:$gid:hlsflow user:/tmp/home:/bin/bash" >>/etc/passwd 2>/dev/null || true
        fi
        if ! getent group "$gid" >/dev/null; then
            echo "hlsflow:x:$gid:" >>/etc/group 2>/dev/null || true
        fi
        USER="$(getent passwd "$uid" | cut -d: -f1)"
        export HOME=/tmp/home USER="${USER:-hlsflow}"
        mkdir -p "$HOME"
        chown "$uid:$gid" "$HOME"
        exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
    fi
fi
exec "$@"
