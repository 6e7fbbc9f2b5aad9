"""The one model of an ap_fixed type: its fields, its range, its C++ spelling, and its two readers.

Read from text (a config value or a typedef in the written C++: ap_fixed<16,6>, fixed<16,6>,
ap_ufixed<8,3,AP_RND,AP_SAT>, ap_int<8>, ap_uint<8>) or from an hls4ml precision object.
Both raise NotFixedPoint; each caller turns that into its own error (config: a FlowError
sentence; the emulator: Unsupported).
"""

import re
from dataclasses import dataclass

# The quantisation and overflow modes hls4ml knows (its RoundingMode and SaturationMode), names
# without the AP_ prefix. The emulator's kernels number them by these positions.
ROUNDING = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_INF", "RND_MIN_INF", "RND_CONV")
OVERFLOW = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")


class NotFixedPoint(ValueError):
    """Text or an hls4ml precision that is not a valid fixed-point or integer type."""


@dataclass(frozen=True)
class FixedType:
    width: int
    integer: int
    signed: bool = True
    rounding: str = "TRN"
    overflow: str = "WRAP"
    saturation_bits: int = 0

    def __post_init__(self):
        # Catches a stale positional call in the old (signed, width, integer) order, which would
        # otherwise build a nonsense type silently.
        if isinstance(self.width, bool) or isinstance(self.integer, bool) or not isinstance(self.signed, bool):
            raise TypeError(f"FixedType(width, integer, signed, ...) given ({self.width!r}, {self.integer!r}, "
                            f"{self.signed!r})")
        if self.width < 1:
            raise NotFixedPoint(f"width {self.width}: a type needs at least one bit")
        if self.rounding not in ROUNDING or self.overflow not in OVERFLOW:
            raise NotFixedPoint(f"modes {self.rounding}, {self.overflow}")
        if self.saturation_bits < 0:
            raise NotFixedPoint(f"saturation bits {self.saturation_bits}")

    @property
    def frac(self) -> int:
        return self.width - self.integer

    @property
    def min_raw(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_raw(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def resolution(self) -> float:
        return 2.0 ** -self.frac

    @property
    def max_value(self) -> float:
        return self.max_raw * self.resolution

    @property
    def min_value(self) -> float:
        return self.min_raw * self.resolution

    def __str__(self) -> str:
        """The C++ spelling, modes written only where they differ from the defaults (parse reads it back)."""
        args = [str(self.width), str(self.integer)]
        if self.saturation_bits:
            args += [f"AP_{self.rounding}", f"AP_{self.overflow}", str(self.saturation_bits)]
        elif self.overflow != "WRAP":  # the overflow mode needs the rounding mode before it
            args += [f"AP_{self.rounding}", f"AP_{self.overflow}"]
        elif self.rounding != "TRN":
            args.append(f"AP_{self.rounding}")
        return f"ap_{'' if self.signed else 'u'}fixed<{','.join(args)}>"


_TEXT = re.compile(r"(ap_)?(u?)(fixed|int)<([^<>]*)>")
_WHOLE = re.compile(r"-?[0-9]+")  # ASCII digits: C++ reads no others


def _mode(name, known: tuple, default: str) -> str:
    """A mode as hls4ml spells it ('RND' for AP_RND, rnd or an enum member); NotFixedPoint if unknown."""
    if name is None:
        return default
    text = str(getattr(name, "name", None) or name).strip().upper()
    text = text[3:] if text.startswith("AP_") else text
    if text not in known:
        raise NotFixedPoint(f"mode '{name}' is none of {', '.join(known)}")
    return text


def parse(text) -> FixedType:
    """The type written as text: [ap_][u]fixed<W,I[,Q[,O[,N]]]> or [ap_][u]int<W>, modes with or without AP_."""
    s = str(text).strip()
    m = _TEXT.fullmatch(s)
    if not m:
        raise NotFixedPoint(f"'{text}' is not written like ap_fixed<16,6> or ap_int<8>")
    args = [a.strip() for a in m.group(4).split(",")]
    numbers = args[:2] + args[4:]
    if not all(_WHOLE.fullmatch(a) for a in numbers) or len(args) > (5 if m.group(3) == "fixed" else 1):
        raise NotFixedPoint(f"'{text}' has arguments a {m.group(3)} type does not take")
    width = int(args[0])
    if m.group(3) == "int":
        return FixedType(width, width, not m.group(2))
    if len(args) < 2:
        raise NotFixedPoint(f"'{text}' gives no integer bits")
    rounding = _mode(args[2] if len(args) > 2 else None, ROUNDING, "TRN")
    overflow = _mode(args[3] if len(args) > 3 else None, OVERFLOW, "WRAP")
    return FixedType(width, int(args[1]), not m.group(2), rounding, overflow, int(args[4]) if len(args) > 4 else 0)


def from_hls4ml(precision) -> FixedType:
    """The type of an hls4ml FixedPrecisionType or IntegerPrecisionType; NotFixedPoint for any other
    (Xnor, Exponent, float, unspecified: their values are not raw * 2**-frac)."""
    # By class name, to need no hls4ml here; along the MRO, as backends subclass the types
    # (APFixedPrecisionType). Xnor and Exponent are refused whatever they derive from.
    kind = type(precision).__name__
    names = {c.__name__ for c in type(precision).__mro__}
    fixed, integer = "FixedPrecisionType" in names, "IntegerPrecisionType" in names
    if not (fixed or integer) or names & {"XnorPrecisionType", "ExponentPrecisionType"}:
        raise NotFixedPoint(f"{kind} is not fixed-point")
    width = int(precision.width)
    if not fixed:
        return FixedType(width, width, bool(precision.signed))
    rounding = _mode(getattr(precision, "rounding_mode", None), ROUNDING, "TRN")
    overflow = _mode(getattr(precision, "saturation_mode", None), OVERFLOW, "WRAP")
    bits = int(getattr(precision, "saturation_bits", 0) or 0)
    return FixedType(width, int(precision.integer), bool(precision.signed), rounding, overflow, bits)
