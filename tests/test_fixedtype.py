"""The one fixed-point type: both spellings read, its C++ text read back, its ranges, and what each caller raises."""

import pytest

from hlsflow.fixedtype import FixedType, NotFixedPoint, from_hls4ml, parse


@pytest.mark.parametrize("text, expected", [
    ("ap_fixed<16,6>", FixedType(16, 6)),
    ("fixed<16, 6>", FixedType(16, 6)),
    ("ufixed<8,3>", FixedType(8, 3, False)),
    ("ap_ufixed<8,-2,AP_RND>", FixedType(8, -2, False, "RND")),
    ("fixed<24,12,RND,SAT>", FixedType(24, 12, True, "RND", "SAT")),
    ("ap_fixed<18,8,AP_RND_CONV,AP_SAT_SYM,2>", FixedType(18, 8, True, "RND_CONV", "SAT_SYM", 2)),
    ("ap_int<8>", FixedType(8, 8)),
    (" uint<4> ", FixedType(4, 4, False)),
])
def test_both_spellings_and_the_cpp_text_round_trip(text, expected):
    t = parse(text)
    assert t == expected
    assert parse(str(t)) == t
    assert str(t).startswith("ap_u" if not t.signed else "ap_fixed<")


def test_cpp_text_writes_modes_only_where_needed():
    assert str(FixedType(16, 6)) == "ap_fixed<16,6>"
    assert str(FixedType(16, 6, rounding="RND")) == "ap_fixed<16,6,AP_RND>"
    assert str(FixedType(16, 6, False, overflow="SAT")) == "ap_ufixed<16,6,AP_TRN,AP_SAT>"
    assert str(FixedType(16, 6, saturation_bits=1)) == "ap_fixed<16,6,AP_TRN,AP_WRAP,1>"


def test_ranges():
    t = FixedType(16, 6)
    assert (t.frac, t.min_raw, t.max_raw) == (10, -2 ** 15, 2 ** 15 - 1)
    assert (t.min_value, t.max_value, t.resolution) == (-32.0, 32 - 2 ** -10, 2 ** -10)
    u = FixedType(8, 3, signed=False)
    assert (u.min_raw, u.max_raw, u.min_value, u.max_value, u.resolution) == (0, 255, 0.0, 8 - 2 ** -5, 2 ** -5)
    n = parse("ap_int<4>")
    assert (n.min_value, n.max_value, n.resolution) == (-8.0, 7.0, 1.0)


@pytest.mark.parametrize("bad", ["ap_fixd<16,6>", "ap_fixed<16>", "ap_fixed<0,0>", "ap_fixed<16,6,AP_FOO>",
                                 "ap_fixed<16,6,AP_SAT>", "ap_fixed<16,6,RND,SAT,-1>", "ap_int<8,2>", "float", ""])
def test_what_is_not_a_type(bad):
    with pytest.raises(NotFixedPoint):
        parse(bad)


def test_the_old_positional_order_fails_loudly():
    with pytest.raises(TypeError):
        FixedType(True, 16, 6)


def test_hls4ml_precisions():
    from hls4ml.model import types  # the image has it: a broken import fails here, never skips
    fixed = types.FixedPrecisionType(18, 8, False, "AP_RND", "AP_SAT", 1)
    assert from_hls4ml(fixed) == FixedType(18, 8, False, "RND", "SAT", 1)
    assert from_hls4ml(types.FixedPrecisionType(16, 6)) == FixedType(16, 6)
    assert from_hls4ml(types.IntegerPrecisionType(5, signed=False)) == FixedType(5, 5, False)
    # a backend's own subclass, as the Vivado backend's converted model holds
    backend_fixed = type("APFixedPrecisionType", (types.FixedPrecisionType,), {})
    assert from_hls4ml(backend_fixed(12, 4, True, "RND")) == FixedType(12, 4, True, "RND")
    for other in (types.XnorPrecisionType(), types.ExponentPrecisionType()):
        with pytest.raises(NotFixedPoint):
            from_hls4ml(other)


def test_each_caller_keeps_its_error():
    from hlsflow.config import parse_precision
    from hlsflow.emulator import fixedpoint as fp
    from hlsflow.errors import FlowError

    with pytest.raises(FlowError, match=r"^Precision 'ap_fixed<16,6,AP_FOO>' \(layer d\) is not a fixed-point type: "
                                        r"write it like ap_fixed<16,6> \(total bits, integer bits\) or ap_int<8>\.$"):
        parse_precision("ap_fixed<16,6,AP_FOO>", "layer d")
    assert fp.cpp_type("ap_fixed<18,8,AP_RND,AP_SAT>") == FixedType(18, 8, True, "RND", "SAT")
    for text, why in [("ap_fixed<18,8,AP_RND,AP_SAT,1>", "saturation bits"), ("ap_fixed<64,8>", "wider than 62"),
                      ("ap_fixed<18,8,AP_WRAP_SM>", "mode"), ("float", "not written like")]:
        with pytest.raises(fp.Unsupported, match=why):
            fp.cpp_type(text)
    from hls4ml.model import types

    with pytest.raises(fp.Unsupported, match="saturation bits"):
        fp.hls4ml_type(types.FixedPrecisionType(18, 8, True, "AP_RND", "AP_SAT", 2))
    with pytest.raises(fp.Unsupported, match="XnorPrecisionType"):
        fp.hls4ml_type(types.XnorPrecisionType())
