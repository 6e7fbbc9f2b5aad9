"""Runs in each emulation worker process: loads the compiled hls4ml bridge with ctypes and
pushes images through it. Imports nothing heavy, so a worker starts in a fraction of a second."""

import ctypes

import numpy as np

_top = None
_n_out = 0


def init(lib_path: str, function: str, n_out: int) -> None:
    global _top, _n_out
    lib = ctypes.cdll.LoadLibrary(lib_path)
    _top = getattr(lib, function)
    _top.restype = None
    ptr = np.ctypeslib.ndpointer(dtype=np.float32, flags="C_CONTIGUOUS")
    _top.argtypes = [ptr, ptr]
    _n_out = n_out


def run(batch: np.ndarray) -> np.ndarray:
    out = np.zeros((len(batch), _n_out), dtype=np.float32)
    for i, x in enumerate(batch):
        row = np.ascontiguousarray(x.reshape(-1), dtype=np.float32)
        _top(row, out[i])
    return out
