"""The compiled multiply-accumulate loops of the fast engine (numba, every core): dense.py (the
multiply-adds in 32 and 64 bits, im2col, depthwise), simd.py (conv16: convolutions in <16 x i32>
vectors) and casts.py (the elementwise casts every kernel ends with).

Kept apart from fixedpoint.py, which says what the arithmetic is: these only say how to run it
fast. Each product is cast to the accumulator type before it is added, as hls4ml's kernels do,
so no loop here may merge the per-product shifts; the sums wrap, so their order is free.
Where products fit 32 bits (dot32, conv32) every step runs in 32-bit lanes (_mas32: numba would
widen each int32 operation to int64, and a 64-bit shift costs several instructions where AVX2
has none), four outputs by two rows per pass so that each input and weight row is loaded once
per block; convolutions build their windows a tile at a time (one output row, in cache) instead
of writing them all out. Convolutions with a multiple of 16 outputs run conv16 instead: sixteen
outputs of four pixels per pass in vector registers (explicit <16 x i32> values), read from the
input itself or a zero-bordered int32 copy, with a following BatchNormalization (and ReLU) in
its output pass. The wider kernels (mac32, mac64) first gather a row's nonzero inputs
(ReLU outputs are about half zeros) without a branch, then run a clean vector loop over the
outputs. Every array a kernel reads must be C-contiguous: a Fortran-ordered weight matrix made
dot32's forerunner 2.6x slower.

Compiled on first use (seconds) and cached on disk (cache=True), for the CPU's x86-64 level; the
image ships them compiled (kernelcache.py; numba names its cache folder for this folder, which
holds the three files). numba's cache index also records the target CPU and each file's own
stamp, so a cache for another CPU or other kernels is never loaded.
"""

from .. import kernelcache

_CACHE = kernelcache.prepare()  # numba reads its settings when imported: they come first

import numba  # noqa: E402

if not numba.config.CACHE_DIR:  # numba imported before this module, with no cache folder set
    numba.config.CACHE_DIR = _CACHE

# The kernels, by the names the engine (and precompile.py's list of what the image ships) uses.
from .casts import (RND, RND_CONV, RND_INF, RND_MIN_INF, RND_ZERO, SAT, SAT_SYM, SAT_ZERO, TRN,  # noqa: E402
                    TRN_ZERO, WRAP, affine_cast, from_float, merge_cast, relu)
from .simd import LANES, NO_EPILOGUE, conv16  # noqa: E402
from .dense import ROWS, SMALL_IN, conv32, depthwise, dot32, im2col32, mac32, mac64, mas32  # noqa: E402

__all__ = ["RND", "RND_CONV", "RND_INF", "RND_MIN_INF", "RND_ZERO", "SAT", "SAT_SYM", "SAT_ZERO", "TRN", "TRN_ZERO",
           "WRAP", "affine_cast", "from_float", "merge_cast", "relu", "LANES", "NO_EPILOGUE", "conv16", "ROWS",
           "SMALL_IN", "conv32", "depthwise", "dot32", "im2col32", "mac32", "mac64", "mas32"]
