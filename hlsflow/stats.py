"""Agreement and accuracy figures as what they are: k of n samples, with the 95% interval of that
share (Wilson's, by scipy), and gates judged on the exact counts.

A share measured on a few hundred samples is uncertain by about a point: 297 of 300 is 99.0%,
and anything from about 97.1% to 99.7% would give that count as often. So every figure is shown
with its interval, a gate that lies inside the interval is said to need more samples, and a
change smaller than the interval is not taken as an improvement (tune-precision)."""

import math
from fractions import Fraction

CONFIDENCE = 0.95


def count(share, n: int) -> int:
    """The number of samples a share of n stands for (a stored share is k / n as a float)."""
    return int(round(float(share) * n))


def interval(k: int, n: int) -> tuple:
    """(low, high): the 95% Wilson interval of k successes in n samples, as scipy computes it."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def _exact(gate) -> Fraction:
    """The share a gate means: 0.99 is 99/100 (not the float just below it), and a share written
    out to float precision, such as 0.9666666666666667, is the 29/30 it stands for."""
    return Fraction(str(gate)).limit_denominator(10**9)


def meets(k: int, n: int, gate) -> bool:
    """k of n at or above the gate, compared exactly."""
    return n > 0 and Fraction(int(k), int(n)) >= _exact(gate)


def needed(n: int, gate) -> int:
    """The fewest of n samples that meet the gate."""
    return math.ceil(_exact(gate) * n)


def percent(value: float, unlike=None) -> str:
    """value as a percentage with one decimal, or as many more as it takes to show that it
    differs from `unlike` (so that 0.98997 is never shown as the 99.0% it falls short of)."""
    for digits in range(1, 7):
        text = f"{value:.{digits}%}"
        if unlike is None or value == unlike or text != f"{float(unlike):.{digits}%}":
            return text
    return text


def ci_text(k: int, n: int) -> str:
    """"[97.1%, 99.7%]": the 95% interval of k of n."""
    low, high = interval(k, n)
    return f"[{low:.1%}, {high:.1%}]"


def figure(k: int, n: int, gate=None) -> str:
    """"99.0% [97.1%, 99.7%] (297 of 300)": the share, its 95% interval and the counts."""
    return f"{percent(k / n, gate)} {ci_text(k, n)} ({k} of {n})"


def gate_inside(k: int, n: int, gate) -> bool:
    """Whether the gate lies inside the figure's 95% interval: the samples cannot tell whether the
    design meets it."""
    low, high = interval(k, n)
    return low <= float(gate) <= high


def gate_note(k: int, n: int, gate) -> str:
    """"" or the words saying the gate lies inside the interval."""
    if not gate_inside(k, n, gate):
        return ""
    return (f"the {percent(float(gate))} gate lies inside the 95% interval {ci_text(k, n)}: more samples are "
            "needed to tell")


def improves(k_new: int, k_old: int, n: int) -> bool:
    """Whether k_new of n is an improvement on k_old of n beyond noise: above the upper end of
    k_old's 95% interval. A smaller gain is what another draw of samples could give by itself."""
    return k_new / n > interval(k_old, n)[1]
