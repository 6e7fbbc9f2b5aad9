"""The fixed-point arithmetic (hlsflow/emulator/fixedpoint.py and its compiled kernels) against
Xilinx's ap_fixed headers (hls4ml's copy), on a table of cases compiled into ONE C++ program: every
rounding and overflow mode, casts between random types, floats assigned to a type, and hls4ml's
dense multiply-accumulate (each product assigned to the accumulator type, then `acc += product`).

test_kernels.py checks the kernels against fixedpoint's numpy; this ties both to the C++ with many
more cases than test_fastemu.py's per-case programs can afford (one compile, one run)."""

import hashlib
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from hlsflow.emulator import fixedpoint as fp, kernels
from hlsflow.fixedtype import OVERFLOW, ROUNDING, FixedType

CASES_PER_MODE = 3  # cast pairs per (rounding, overflow) of the target: 7 x 4 x 3 = 84
RAWS, FLOATS = 48, 24
MAC_SHAPES, WIDE_SHAPES = 4, 2  # per accumulator rounding fp.mac supports (TRN, RND, RND_MIN_INF): 18 cases


def _ap_types() -> Path:
    import hls4ml

    return Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"


def _cpp(t: FixedType) -> str:
    return f"ap_{'' if t.signed else 'u'}fixed<{t.width},{t.integer},AP_{t.rounding},AP_{t.overflow}>"


def _random_type(rng, rounding=None, overflow=None, widths=(2, 24)) -> FixedType:
    width = int(rng.integers(*widths, endpoint=True))
    return FixedType(width, int(rng.integers(-2, width + 3)), bool(rng.integers(2)),
                     rounding or ROUNDING[rng.integers(len(ROUNDING))], overflow or OVERFLOW[rng.integers(len(OVERFLOW))])


def _cast_cases(rng) -> list:
    """(src, dst, raws, floats): every target mode CASES_PER_MODE times. Xilinx's header asserts
    when a rounding reads a bit beyond the source's MSB (all its bits dropped): hls4ml's emulation
    aborts there too, so such pairs are drawn again rather than matched."""
    cases = []
    for rounding, overflow in itertools.product(ROUNDING, OVERFLOW):
        while sum(1 for _, d, *_ in cases if (d.rounding, d.overflow) == (rounding, overflow)) < CASES_PER_MODE:
            src, dst = _random_type(rng), _random_type(rng, rounding, overflow)
            if src.frac - dst.frac >= src.width:
                continue
            raws = rng.integers(src.min_raw, src.max_raw + 1, RAWS, dtype=np.int64)
            raws[:4] = [src.min_raw, src.max_raw, 0, min(src.max_raw, 1)]
            floats = rng.normal(0, 2.0 ** max(dst.integer, 0) * 1.5, FLOATS).astype(np.float32)
            cases.append((src, dst, raws, floats))
    return cases


def _mac_cases(rng) -> list:
    """(a_t, w_t, acc, out_t, a (n, n_in), w (n_in, n_out), bias): wrap-around accumulators (fp.mac's
    domain), the sums then assigned to out_t (any modes). Narrow cases: products that lose bits to
    the accumulator's rounding, and products that do not. Wide ones (32-bit operands, accumulators
    of up to 60 bits): the int64 kernel, and exact products whose sums float64 cannot hold."""
    cases = []
    for rounding in ("TRN", "RND", "RND_MIN_INF"):
        for k in range(MAC_SHAPES + WIDE_SHAPES):
            wide = k >= MAC_SHAPES
            a_t = _random_type(rng, widths=(24, 32) if wide else (3, 16))
            w_t = _random_type(rng, widths=(24, 29) if wide else (3, 16))
            acc = _random_type(rng, rounding, "WRAP", widths=(40, 60) if wide else (8, 32))
            if wide and k % 2:  # every product exact (shift < 0): only the sums outgrow float64
                acc = FixedType(acc.width, acc.width - a_t.frac - w_t.frac - 2, acc.signed, rounding, "WRAP")
            shift = a_t.frac + w_t.frac - acc.frac
            if shift >= a_t.width + w_t.width - 1:
                acc = FixedType(acc.width, acc.width - a_t.frac - w_t.frac + 2, acc.signed, rounding, "WRAP")
            out_t = _random_type(rng)
            while acc.frac - out_t.frac >= acc.width:  # all of acc's bits dropped: Xilinx's header asserts
                out_t = _random_type(rng)
            n, n_in, n_out = 4, int(rng.integers(1, 12)), int(rng.integers(1, 5))
            a = rng.integers(a_t.min_raw, a_t.max_raw + 1, (n, n_in), dtype=np.int64)
            w = rng.integers(w_t.min_raw, w_t.max_raw + 1, (n_in, n_out), dtype=np.int64)
            bias = rng.integers(acc.min_raw, acc.max_raw + 1, n_out, dtype=np.int64)
            cases.append((a_t, w_t, acc, out_t, a, w, bias))
    return cases


def _program(casts, macs) -> str:
    """A switch over the cases: each reads its raw inputs from stdin and prints the raw results."""
    lines = ['#include "ap_fixed.h"', "#include <cstdio>",
             "static long long next() { long long v; if (std::scanf(\"%lld\", &v) != 1) std::abort(); return v; }",
             "template <class S, class D> void cast(int n, int m) {",
             "  for (int i = 0; i < n; i++) { S s; s.V = next(); D d = s; std::printf(\"%lld \", (long long)d.V.to_int64()); }",
             "  for (int i = 0; i < m; i++) { float f; if (std::scanf(\"%f\", &f) != 1) std::abort(); D d = f;",
             "    std::printf(\"%lld \", (long long)d.V.to_int64()); }",
             "  std::printf(\"\\n\"); }",
             "template <class A, class W, class C, class O> void mac(int n, int n_in, int n_out) {",
             "  A a[64][16]; W w[16][8]; C bias[8];",
             "  for (int p = 0; p < n; p++) for (int i = 0; i < n_in; i++) a[p][i].V = next();",
             "  for (int i = 0; i < n_in; i++) for (int j = 0; j < n_out; j++) w[i][j].V = next();",
             "  for (int j = 0; j < n_out; j++) bias[j].V = next();",
             "  for (int p = 0; p < n; p++) for (int j = 0; j < n_out; j++) {",
             "    C acc = bias[j];  // as nnet_dense_latency.h: mult = product assigned to accum_t, acc += mult",
             "    for (int i = 0; i < n_in; i++) { C m = a[p][i] * w[i][j]; acc += m; }",
             "    O out = acc;  // the layer's result_t",
             "    std::printf(\"%lld %lld \", (long long)acc.V.to_int64(), (long long)out.V.to_int64()); }",
             "  std::printf(\"\\n\"); }",
             "int main() { int k; while (std::scanf(\"%d\", &k) == 1) switch (k) {"]
    for k, (src, dst, raws, floats) in enumerate(casts):
        lines.append(f"  case {k}: cast<{_cpp(src)}, {_cpp(dst)} >({len(raws)}, {len(floats)}); break;")
    for k, (a_t, w_t, acc, out_t, a, w, bias) in enumerate(macs, len(casts)):
        lines.append(f"  case {k}: mac<{_cpp(a_t)}, {_cpp(w_t)}, {_cpp(acc)}, {_cpp(out_t)} >({a.shape[0]}, {a.shape[1]}, "
                     f"{w.shape[1]}); break;")
    lines.append("  default: return 1; } }")
    return "\n".join(lines) + "\n"


def _stdin(casts, macs) -> str:
    parts = []
    for k, (_, _, raws, floats) in enumerate(casts):
        parts.append(" ".join([str(k), *map(str, raws.tolist()), *(repr(float(f)) for f in floats)]))
    for k, (_, _, _, _, a, w, bias) in enumerate(macs, len(casts)):
        parts.append(" ".join(map(str, [k, *a.ravel().tolist(), *w.ravel().tolist(), *bias.tolist()])))
    return "\n".join(parts) + "\n"


@pytest.fixture(scope="module")
def table():
    """The cases and what Xilinx's headers make of them (one g++ compile, one run)."""
    rng = np.random.default_rng(20261207)
    casts, macs = _cast_cases(rng), _mac_cases(rng)
    program = _program(casts, macs)
    # Kept by the program's text in the temporary folder: a second session (a mutation run's many)
    # compiles nothing; a changed table or header path is another program.
    key = hashlib.sha256(f"{program}{_ap_types()}".encode()).hexdigest()[:16]
    work = Path(tempfile.gettempdir()) / f"hlsflow-ap-fixed-table-{key}"
    if not (work / "table").is_file():
        build = Path(tempfile.mkdtemp(prefix="hlsflow-ap-fixed-table-"))
        (build / "table.cpp").write_text(program)
        subprocess.run(["g++", "-O0", "-std=c++14", f"-I{_ap_types()}", "table.cpp", "-o", "table"], cwd=build,
                       check=True)
        try:
            os.replace(build, work)  # whole or not at all; another session's copy wins
        except OSError:
            shutil.rmtree(build, ignore_errors=True)
    run = subprocess.run(["./table"], cwd=work, input=_stdin(casts, macs), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [np.array(line.split(), dtype=np.int64) for line in run.stdout.splitlines()]
    assert len(rows) == len(casts) + len(macs)
    return casts, macs, rows


def test_every_mode_is_in_the_table(table):
    casts, macs, _ = table
    assert {(d.rounding, d.overflow) for _, d, *_ in casts} == set(itertools.product(ROUNDING, OVERFLOW))
    assert len(casts) == len(ROUNDING) * len(OVERFLOW) * CASES_PER_MODE
    assert {acc.rounding for _, _, acc, *_ in macs} == {"TRN", "RND", "RND_MIN_INF"}
    # Some products lose bits to the accumulator (its rounding matters), some do not; fp.mac's every
    # kernel is reached: float64, dot32 and the 64-bit one, and exact products whose sums outgrow float64.
    shifts = {a_t.frac + w_t.frac - acc.frac for a_t, w_t, acc, *_ in macs}
    assert min(shifts) <= 0 < max(shifts), shifts
    plans = [fp._mac_plan(a_t, w, w_t.frac, a.shape[1], acc) for a_t, w_t, acc, _, a, w, _ in macs]
    assert any(p["float"] for p in plans) and any(p["dot32"] for p in plans), plans
    assert any(not p["narrow"] and p["shift"] > 0 for p in plans), plans
    assert any(not p["float"] and p["shift"] < 0 for p in plans), plans


def test_casts_equal_ap_fixed(table):
    """fixedpoint.convert and cast, the compiled elementwise cast and from_float: Xilinx's bits."""
    casts, _, rows = table
    compared = {"convert": 0, "cast": 0, "merge_cast": 0, "from_float": 0}
    for (src, dst, raws, floats), row in zip(casts, rows):
        cpp, cpp_floats = row[:len(raws)], row[len(raws):]
        assert np.array_equal(fp.convert(raws, src, dst), cpp), (src, dst)
        compared["convert"] += 1
        if src != dst:  # the same type is a copy in C++: no overflow mode applies, as convert knows
            assert np.array_equal(fp.cast(raws, src.frac, dst), cpp), (src, dst)
            compared["cast"] += 1
            codes = fp.elementwise_codes(src.frac - dst.frac, dst)
            if codes is not None:
                out = np.empty(len(raws), np.int64)
                kernels.merge_cast(raws, np.zeros_like(raws), 0, 0, 0, *codes, out)
                assert np.array_equal(out, cpp), (src, dst)
                compared["merge_cast"] += 1
        assert np.array_equal(fp.from_float(floats, dst), cpp_floats), (dst, floats)
        compared["from_float"] += 1
    # The comparisons that depend on the case ran for most of them (counted: none may vanish).
    assert compared["convert"] == compared["from_float"] == len(casts)
    assert compared["cast"] >= 0.9 * len(casts) and compared["merge_cast"] >= 0.5 * len(casts), compared


def test_mac_equals_hls4ml_dense_arithmetic(table):
    """fixedpoint.mac (and the kernel it picks: float64, dot32, mac32 or mac64) gives the sums
    hls4ml's dense layers compute with ap_fixed, and with out_t the layer's result type's bits."""
    casts, macs, rows = table
    for (a_t, w_t, acc, out_t, a, w, bias), row in zip(macs, rows[len(casts):]):
        sums, outs = row[0::2], row[1::2]
        assert np.array_equal(fp.mac(a, a_t, w, w_t.frac, bias, acc).ravel(), sums), (a_t, w_t, acc)
        assert np.array_equal(fp.mac(a, a_t, w, w_t.frac, bias, acc, out_t).ravel(), outs), (a_t, w_t, acc, out_t)
