"""The one device picker (torch and CuPy/abTEM) and CPU memory-allocator tuning.

``preference`` is the config's ``device`` key: ``auto`` (a GPU when one is usable, else the
CPU), ``cpu`` or ``cuda`` (a GPU is required; an error says so when there is none).
"""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")


def _check(preference: str) -> None:
    if preference not in DEVICES:
        raise ValueError(f"device: {preference!r} is not allowed; allowed: {', '.join(DEVICES)}")


def torch_device(preference: str = "auto") -> str:
    """torch device string: 'cuda' when asked for or available under 'auto', else 'cpu'."""
    _check(preference)
    if preference == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if preference == "cuda" and not has_cuda:
        raise RuntimeError("device: 'cuda' requested but no CUDA device is available")
    return "cuda" if has_cuda else "cpu"


def array_device(preference: str = "auto") -> str:
    """abTEM / CuPy device string: 'gpu' when CuPy sees a CUDA device (and allowed), else 'cpu'."""
    _check(preference)
    if preference == "cpu":
        return "cpu"
    try:
        import cupy

        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no driver, or no device
        has_gpu = False
    if preference == "cuda" and not has_gpu:
        raise RuntimeError("device: 'cuda' requested but CuPy finds no CUDA device (install cupy-cuda12x)")
    return "gpu" if has_gpu else "cpu"


def array_module(array):
    """numpy or cupy, whichever owns ``array``."""
    import numpy as np

    return np if isinstance(array, np.ndarray) else __import__("cupy")


def tune_malloc() -> bool:
    """Keep glibc from mmapping/unmapping torch's large per-call buffers (~2x on CPU for MACE).

    Same effect as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2^31-1 MALLOC_TOP_PAD_=2^31-1, set
    at run time through mallopt; a no-op (False) where glibc is absent.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
        ok = libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) and libc.mallopt(M_TOP_PAD, 2**31 - 1)
        return bool(ok)
    except (OSError, AttributeError):
        return False
