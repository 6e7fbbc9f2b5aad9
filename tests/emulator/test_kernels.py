"""The fast engine's 32-bit kernels against the same arithmetic in int64 (numpy and the mac64
kernel), on random data at the edge of the bound that lets them run in 32-bit lanes: products,
rounding offset, shift and sums. The engine's layer-by-layer tests (test_fastemu.py) compare
whole models with hls4ml's C++; these reach the corners (shift 31, odd rows, output counts
that are no multiple of four, both loop shapes) that a model rarely does."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _reference(a, w, bias, shift, offset, acc):
    """bias + sum_i ((a_i * w_i + offset) >> shift), wrapped to acc: numpy's int64, no kernel."""
    from hlsflow.emulator import fixedpoint as fp

    products = a[:, :, None] * w[None, :, :]  # exact: |a * w| < 2**31 here
    sums = ((products + offset) >> shift).sum(axis=1) + bias
    return fp.overflow(sums, acc)


@st.composite
def near_bound(draw):
    """Types, weights and data whose largest product plus offset is just below 2**31."""
    from hlsflow.fixedtype import FixedType

    acc_width = draw(st.integers(8, 32))
    acc = FixedType(acc_width, draw(st.integers(-4, acc_width)), draw(st.booleans()),
                    draw(st.sampled_from(["TRN", "RND", "RND_MIN_INF"])), "WRAP")
    a_width = draw(st.integers(4, 20))
    a_t = FixedType(a_width, draw(st.integers(0, a_width)), draw(st.booleans()))
    a_max = max(-a_t.min_raw, a_t.max_raw)
    shift = draw(st.integers(1, 31))  # at 0 the exact float64 product runs instead
    w_frac = acc.frac + shift - a_t.frac
    offset = 0 if shift == 0 or acc.rounding == "TRN" else (1 << (shift - 1)) - (acc.rounding == "RND_MIN_INF")
    w_max = min((2 ** 31 - 1 - offset) // a_max, 2 ** 30)  # at least 1023: a_max <= 2**20
    n_in = draw(st.sampled_from([1, 5, 47, 48, 77]))  # both sides of kernels.SMALL_IN
    n_out = draw(st.integers(1, 11))
    rows = draw(st.integers(1, 9))
    return acc, a_t, w_frac, w_max, n_in, n_out, rows, shift, offset, draw(st.integers(0, 2 ** 32 - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=near_bound())
def test_int32_lanes_equal_int64(case):
    """fp.mac's int32 path (dot32) gives the bits of the int64 kernel and of plain numpy, with the
    largest weights at the bound and the extreme inputs of the input type."""
    from hlsflow.emulator import fixedpoint as fp, kernels

    acc, a_t, w_frac, w_max, n_in, n_out, rows, shift, offset, seed = case
    rng = np.random.default_rng(seed)
    a = rng.integers(a_t.min_raw, a_t.max_raw + 1, (rows, n_in), dtype=np.int64)
    a[0, :] = a_t.min_raw if a_t.signed else a_t.max_raw  # the largest magnitude the type holds
    w = rng.integers(-w_max, w_max + 1, (n_in, n_out), dtype=np.int64)
    w[:, 0] = -w_max if a_t.signed else w_max  # the product at the bound, every input
    bias = fp.overflow(rng.integers(-2 ** 31, 2 ** 31, n_out, dtype=np.int64), acc)
    plan = fp._mac_plan(a_t, w, w_frac, n_in, acc)
    assert plan["dot32"] and not plan["float"] and plan["shift"] == shift

    got = fp.mac(a, a_t, w, w_frac, bias, acc)
    wide = np.empty_like(got)
    kernels.mac64(a, np.ascontiguousarray(w), bias, shift, offset, wide)
    assert np.array_equal(got, fp.overflow(wide, acc))
    assert np.array_equal(got, _reference(a, w, bias, shift, offset, acc))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=near_bound(), out=st.tuples(st.integers(2, 20), st.integers(-3, 12), st.booleans(),
                                         st.sampled_from(["TRN", "RND", "RND_CONV", "RND_ZERO"]),
                                         st.sampled_from(["WRAP", "SAT", "SAT_SYM"])))
def test_cast_in_the_same_pass_equals_convert(case, out):
    """With an output type, dot32 casts its sums in its own pass: the same bits as convert()."""
    from hlsflow.emulator import fixedpoint as fp
    from hlsflow.fixedtype import FixedType

    acc, a_t, w_frac, w_max, n_in, n_out, rows, shift, offset, seed = case
    out_t = FixedType(out[0], out[1], out[2], out[3], out[4])
    rng = np.random.default_rng(seed)
    a = rng.integers(a_t.min_raw, a_t.max_raw + 1, (rows, n_in), dtype=np.int64)
    w = rng.integers(-w_max, w_max + 1, (n_in, n_out), dtype=np.int64)
    bias = fp.overflow(rng.integers(-2 ** 31, 2 ** 31, n_out, dtype=np.int64), acc)
    assert fp._requant(acc, out_t)[0] or out_t == acc
    expected = fp.convert(_reference(a, w, bias, shift, offset, acc), acc, out_t)
    assert np.array_equal(fp.mac(a, a_t, w, w_frac, bias, acc, out_t), expected)


@pytest.mark.parametrize("kernel, strides, top_left, c, n_out", [
    ((3, 3), (1, 1), (1, 1), 16, 16), ((3, 3), (2, 2), (0, 1), 8, 6), ((1, 1), (1, 1), (0, 0), 3, 5),
    ((5, 2), (2, 1), (3, 0), 4, 9)])
def test_conv_windows_in_tiles_equal_the_written_windows(kernel, strides, top_left, c, n_out):
    """conv32 (windows built a row at a time, zero outside the input, padding folded in) against
    the windows written out whole (im2col32) and fp.mac on them."""
    from hlsflow.emulator import fixedpoint as fp, kernels
    from hlsflow.fixedtype import FixedType

    rng = np.random.default_rng(sum(kernel) + c)
    a_t, acc, out_t = FixedType(16, 6), FixedType(32, 12), FixedType(16, 6)
    x = rng.integers(a_t.min_raw, a_t.max_raw + 1, (3, 7, 9, c), dtype=np.int64)
    w = rng.integers(-2 ** 14, 2 ** 14, (kernel[0] * kernel[1] * c, n_out), dtype=np.int64)
    bias = rng.integers(-2 ** 20, 2 ** 20, n_out, dtype=np.int64)
    out_hw = tuple((size + 2 * pad - k) // s + 1 for size, pad, k, s in zip((7, 9), top_left, kernel, strides))
    got = fp.conv(x, a_t, w, 14, bias, acc, out_t, kernel, strides, top_left, out_hw)
    cols = np.empty((3 * out_hw[0] * out_hw[1], w.shape[0]), np.int32)
    kernels.im2col32(x, *kernel, *strides, *top_left, *out_hw, cols)
    expected = fp.mac(cols, a_t, w, 14, bias, acc, out_t).reshape(got.shape)
    assert np.array_equal(got, expected)
    assert np.array_equal(expected.reshape(-1, n_out)[:2], fp.convert(
        _reference(cols[:2].astype(np.int64), w, bias, a_t.frac + 14 - acc.frac, 0, acc), acc, out_t))


def test_numba_cache_folder_is_per_cpu_and_image(tmp_path, monkeypatch):
    """The host folder the launcher mounts for numba's compiled kernels: under XDG_CACHE_HOME,
    one per image (another image may hold another numba), none where it cannot be written."""
    from hlsflow.emulator.kernelcache import numba_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first, second = numba_cache("sha256:" + "a" * 64), numba_cache("sha256:" + "b" * 64)
    assert first != second and all(Path(f).is_dir() for f in (first, second))
    assert Path(first).parent == tmp_path / "cache" / "hlsflow" / "numba"
    assert numba_cache("sha256:" + "a" * 64) == first  # the same machine and image: the same folder
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # a file where the folder should go
    assert numba_cache("sha256:" + "a" * 64) is None


@st.composite
def conv_cases(draw):
    """A convolution whose products sit near the int32 bound, with 16, 32 or 48 outputs (conv16's
    whole vectors), windows inside the input or reaching over its border, and an output type that
    needs a cast or not."""
    from hlsflow.fixedtype import FixedType

    acc, a_t, w_frac, w_max, _, _, _, shift, offset, seed = draw(near_bound())
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    top_left = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
    hw = (draw(st.integers(kernel[0], 7)), draw(st.integers(kernel[1], 9)))
    out_hw = tuple((size + 2 * pad - k) // s + 1 for size, pad, k, s in zip(hw, top_left, kernel, strides))
    c, n_out = draw(st.integers(1, 9)), draw(st.sampled_from([16, 32, 48]))
    out_t = draw(st.sampled_from([acc, FixedType(16, 6), FixedType(12, 3, False, "RND", "SAT")]))
    return acc, a_t, w_frac, w_max, shift, offset, kernel, strides, top_left, hw, out_hw, c, n_out, out_t, seed


def _conv_data(case):
    acc, a_t, w_frac, w_max, shift, offset, kernel, strides, top_left, hw, out_hw, c, n_out, out_t, seed = case
    from hlsflow.emulator import fixedpoint as fp

    rng = np.random.default_rng(seed)
    x = rng.integers(a_t.min_raw, a_t.max_raw + 1, (2, *hw, c), dtype=np.int64)
    x[0, 0, :] = a_t.min_raw if a_t.signed else a_t.max_raw  # the largest magnitude the type holds
    w = rng.integers(-w_max, w_max + 1, (kernel[0] * kernel[1] * c, n_out), dtype=np.int64)
    w[:, 0] = -w_max if a_t.signed else w_max  # the product at the bound, every input
    bias = fp.overflow(rng.integers(-2 ** 31, 2 ** 31, n_out, dtype=np.int64), acc)
    return x, w, bias


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=conv_cases())
def test_conv16_equals_the_written_windows(case):
    """conv16 (16 outputs per vector, no windows written, the border as an int32 copy or the input
    read in place) against the windows written out whole (im2col32) through dot32's kernel, and
    numpy's int64 on two of them."""
    from hlsflow.emulator import fixedpoint as fp, kernels

    acc, a_t, w_frac, w_max, shift, offset, kernel, strides, top_left, hw, out_hw, c, n_out, out_t, seed = case
    x, w, bias = _conv_data(case)
    got = fp.conv(x, a_t, w, w_frac, bias, acc, out_t, kernel, strides, top_left, out_hw)
    cols = np.empty((2 * out_hw[0] * out_hw[1], w.shape[0]), np.int32)
    kernels.im2col32(x, *kernel, *strides, *top_left, *out_hw, cols)
    expected = fp.mac(cols, a_t, w, w_frac, bias, acc, out_t).reshape(got.shape)
    assert np.array_equal(got, expected)
    assert np.array_equal(expected.reshape(-1, n_out)[:2], fp.convert(
        _reference(cols[:2].astype(np.int64), w, bias, shift, offset, acc), acc, out_t))


def test_batchnorm_in_the_conv_pass_equals_affine_cast():
    """A BatchNormalization (and ReLU) in conv16's output pass (fp.conv's `then`) against the
    conv's outputs through affine_cast; fused in hls4ml's default modes (TRN, WRAP, signed, the
    conv's outputs in its accumulator type), refused (None: the caller runs the two apart) otherwise.
    The fused comparisons are counted: a run whose examples were all refused would prove nothing."""
    from hlsflow.emulator import fixedpoint as fp, kernels

    fused = []

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=conv_cases(), bn=st.tuples(st.integers(0, 6), st.integers(0, 12), st.integers(-2, 20),
                                           st.sampled_from(["TRN", "RND", "RND_CONV"]), st.sampled_from(["WRAP", "SAT"]),
                                           st.booleans(), st.booleans(), st.integers(2, 20)), default=st.booleans())
    def check(case, bn, default):
        acc, a_t, w_frac, w_max, shift, offset, kernel, strides, top_left, hw, out_hw, c, n_out, out_t, seed = case
        k_scale, k_bias, bn_shift, rounding, overflow, signed, relu, width = bn
        if default:
            out_t, bn_shift, rounding, overflow, signed = acc, max(bn_shift, 1), "TRN", "WRAP", True
        x, w, bias = _conv_data(case)
        rng = np.random.default_rng(seed + 1)
        scale = rng.integers(-2 ** 15, 2 ** 15, n_out, dtype=np.int64)
        shift_bias = rng.integers(-2 ** 20, 2 ** 20, n_out, dtype=np.int64)
        codes = (bn_shift, fp.ROUNDING.index(rounding), width, signed, fp.OVERFLOW.index(overflow))
        then = ((True, k_scale, k_bias, *codes, relu), scale, shift_bias)
        got = fp.conv(x, a_t, w, w_frac, bias, acc, out_t, kernel, strides, top_left, out_hw, then=then)
        if got is None:
            assert not (out_t == acc and bn_shift > 0 and rounding == "TRN" and overflow == "WRAP" and signed)
            return
        plain = fp.conv(x, a_t, w, w_frac, bias, acc, out_t, kernel, strides, top_left, out_hw)
        expected = np.empty(plain.size, np.int64)
        kernels.affine_cast(plain.reshape(-1, n_out), scale, shift_bias, k_scale, k_bias, *codes,
                            expected.reshape(-1, n_out), relu)
        assert np.array_equal(got.reshape(-1), expected)
        fused.append(default)

    check()
    assert len(fused) >= 10, f"only {len(fused)} of the examples ran fused"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a_t=st.tuples(st.integers(2, 30), st.integers(-4, 12)), b_t=st.tuples(st.integers(2, 30), st.integers(-4, 12)),
       out=st.tuples(st.integers(2, 30), st.integers(-4, 12), st.sampled_from(["TRN", "TRN", "RND"]),
                     st.sampled_from(["WRAP", "WRAP", "SAT"]), st.booleans()),
       relu=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_merge_cast_equals_numpy(a_t, b_t, out, relu, seed):
    """merge_cast's Add (its branch-free path in hls4ml's default modes, and the general one)
    against fixedpoint's numpy cast of the aligned sum."""
    from hlsflow.emulator import fixedpoint as fp, kernels
    from hlsflow.fixedtype import FixedType

    ta, tb = FixedType(a_t[0], a_t[0] - a_t[1]), FixedType(b_t[0], b_t[0] - b_t[1])
    out_t = FixedType(out[0], out[0] - out[1], out[4], out[2], out[3])
    rng = np.random.default_rng(seed)
    a = rng.integers(ta.min_raw, ta.max_raw + 1, 257, dtype=np.int64)
    b = rng.integers(tb.min_raw, tb.max_raw + 1, 257, dtype=np.int64)
    frac = max(ta.frac, tb.frac)
    codes = fp.elementwise_codes(frac - out_t.frac, out_t)
    got = np.empty_like(a)
    kernels.merge_cast(a, b, frac - ta.frac, frac - tb.frac, 0, *codes, got, relu)
    expected = fp.cast((a << (frac - ta.frac)) + (b << (frac - tb.frac)), frac, out_t)
    assert np.array_equal(got, np.maximum(expected, 0) if relu else expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=st.tuples(st.integers(2, 40), st.integers(-4, 20), st.booleans(), st.sampled_from(["TRN", "RND", "RND_CONV"]),
                   st.sampled_from(["WRAP", "SAT", "SAT_ZERO", "SAT_SYM"])),
       spread=st.integers(-8, 40), special=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_from_float_kernel_equals_numpy(t, spread, special, seed):
    """from_float's compiled pass (large arrays) against its numpy version: halves and values past
    the type's range included; NaN, infinities and values past 2**62 sent back to numpy."""
    from hlsflow.emulator import fixedpoint as fp
    from hlsflow.fixedtype import FixedType

    ft = FixedType(t[0], t[1], t[2], t[3], t[4])
    rng = np.random.default_rng(seed)
    x = (rng.normal(0, 2.0 ** spread, 5000)).astype(np.float32)
    x[:100] = np.round(x[:100] * 2.0 ** ft.frac * 2) / 2 * 2.0 ** -ft.frac  # exact halves of the last bit
    if special:
        x[7] = rng.choice([np.nan, np.inf, -np.inf, 2.0 ** 70])
    try:
        expected = fp.from_float_numpy(x, ft)
    except fp.Unsupported:
        with pytest.raises(fp.Unsupported):
            fp.from_float(x, ft)
        return
    assert np.array_equal(fp.from_float(x, ft), expected)
    assert np.array_equal(fp.from_float(x.astype(np.float64), ft), expected)


# ---- The kernels the image ships compiled (precompile.py, kernelcache.py) ----

def test_the_signature_list_reads_back_as_numba_types():
    """Every line of kernel_signatures.txt names a cached kernel and decodes to numba types that
    encode to the same line: what the image compiles is what the engine calls."""
    from numba.core import types

    from hlsflow.emulator import precompile

    lines = [line for line in precompile.SIGNATURES.read_text().splitlines() if not line.startswith("#")]
    assert lines and lines == sorted(lines)
    kernels = precompile._dispatchers()
    assert {"conv16", "dot32", "from_float"} <= {line.split(":")[0] for line in lines}
    for line in lines:
        name, signature = precompile.decode(line)
        assert name in kernels and all(isinstance(t, types.Type) for t in signature), line
        assert precompile.encode(name, signature) == line


@pytest.mark.parametrize("flags, level", [
    ("fpu sse4_1 sse4_2 ssse3 popcnt cx16 avx avx2 bmi1 bmi2 f16c fma abm movbe xsave "
     "avx512f avx512bw avx512cd avx512dq avx512vl", "x86-64-v4"),
    ("fpu sse4_1 sse4_2 ssse3 popcnt cx16 avx avx2 bmi1 bmi2 f16c fma abm movbe xsave avx512f", "x86-64-v3"),
    ("fpu sse4_1 sse4_2 ssse3 popcnt cx16 avx f16c xsave", None),  # Sandy Bridge: no AVX2, compiles for itself
])
def test_the_cpu_level_picks_the_highest_one_the_flags_allow(flags, level):
    from hlsflow.emulator import kernelcache

    assert kernelcache.cpu_level(flags.split()) == level


def test_seeding_copies_what_is_missing_and_keeps_what_numba_rewrote(tmp_path):
    """The shipped folder's numba folder (named for where the image compiled kernels/) lands in
    the numba folder of this kernels/, wherever it is."""
    from hlsflow.emulator import kernelcache

    shipped, cache = tmp_path / "shipped", tmp_path / "cache"
    (shipped / "emulator_x").mkdir(parents=True)
    (shipped / "emulator_x" / "kernels.conv16-1.py311.nbi").write_bytes(b"shipped index")
    (shipped / "emulator_x" / "kernels.conv16-1.py311.1.nbc").write_bytes(b"shipped code")
    (cache / "emulator_y").mkdir(parents=True)
    (cache / "emulator_y" / "kernels.conv16-1.py311.nbi").write_bytes(b"index with one more signature")
    assert kernelcache.seed(str(cache), str(shipped), "emulator_y") == 1
    assert (cache / "emulator_y" / "kernels.conv16-1.py311.nbi").read_bytes() == b"index with one more signature"
    assert (cache / "emulator_y" / "kernels.conv16-1.py311.1.nbc").read_bytes() == b"shipped code"
    assert sorted(p.name for p in (cache / "emulator_y").iterdir()) == sorted(
        p.name for p in (shipped / "emulator_x").iterdir())  # no partial file left behind
    assert sorted(p.name for p in cache.iterdir()) == ["emulator_y"]
    assert kernelcache.seed(str(cache), str(shipped), "emulator_y") == 0
    assert kernelcache.seed(str(cache), str(tmp_path / "absent"), "emulator_y") == 0


def test_the_numba_folder_is_the_one_numba_uses(tmp_path):
    """kernelcache names the folder numba caches the kernels in by numba's own rule, one for every
    file of kernels/."""
    from numba.core.caching import _CacheLocator

    from hlsflow.emulator import kernelcache

    from hlsflow.emulator.kernels import casts, dense, simd

    for source in (kernelcache.KERNELS, str(tmp_path / "elsewhere" / "kernels" / "__init__.py")):
        assert kernelcache.numba_folder(source) == _CacheLocator.get_suitable_cache_subpath(source)
    shipped_folder = kernelcache.numba_folder(kernelcache.KERNELS)
    for module in (casts, dense, simd):  # each file's kernels are seeded into the same folder
        assert _CacheLocator.get_suitable_cache_subpath(module.__file__) == shipped_folder
