"""What the test double (tests/standin_xilinx) leaves must say so wherever a person looks: in words
on each line that shows its figures, and as a stamp on each picture drawn from them (a red band
across the top, and a PNG text chunk that a program can read). Real-tool runs carry neither.

The double's binaries are bash wrappers that declare themselves ("# TEST DOUBLE, not Xilinx ...") in
their first lines, and its logs start with a STAND-IN notice (vivado_reports.is_stand_in_log).
"""

from pathlib import Path

NOTE = "test double: tests/standin_xilinx, not a Xilinx tool"
STAMP = "TEST DOUBLE (tests/standin_xilinx): not Vivado results, not this design's"
PNG_KEY = "hlsflow-test-double"  # the PNG text chunk a stamped picture carries
STAMP_RGB = (200, 0, 0)
STAMP_HEIGHT = 0.08  # of the figure, at its top


def is_test_double(binary) -> bool:
    """Whether an HLS binary is the test double's wrapper script (which says so in its first lines)."""
    try:
        with open(Path(binary), "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return head.startswith(b"#!") and b"TEST DOUBLE" in head


def lay_out(fig, double: bool, margins=None) -> None:
    """Lay the figure out (tight, or `margins`: subplots_adjust's, cheaper for many labels); a test
    double's gets the stamp, a red band across its top naming it."""
    from matplotlib.patches import Rectangle

    top = 1 - STAMP_HEIGHT if double else 1.0
    if margins:
        fig.subplots_adjust(**{**margins, "top": margins.get("top", 0.9) * top})
    else:
        fig.tight_layout(rect=(0, 0, 1, top))
    if not double:
        return
    fig.add_artist(Rectangle((0, 1 - STAMP_HEIGHT), 1, STAMP_HEIGHT, transform=fig.transFigure,
                             facecolor=[c / 255 for c in STAMP_RGB], edgecolor="none", zorder=10))
    fig.text(0.5, 1 - STAMP_HEIGHT / 2, STAMP, ha="center", va="center", color="white", weight="bold",
             fontsize=9, zorder=11)


def png(fig, double: bool) -> bytes:
    """The laid-out figure as PNG bytes; a test double's also carries the PNG_KEY text chunk."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={PNG_KEY: STAMP} if double else {})
    return buffer.getvalue()
