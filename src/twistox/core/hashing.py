"""The one settings hash: a short, stable digest of settings and arrays.

Used for checkpoint keys, cache file names and run fingerprints. JSON-able parts are hashed
through ``json.dumps(sort_keys=True)`` (so dict order does not matter); arrays (NumPy, or torch
tensors moved to the CPU) through their dtype, shape and bytes, optionally rounded first so that
noise below ``decimals`` does not change the key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def _as_array(p: Any) -> np.ndarray | None:
    if isinstance(p, np.ndarray):
        return p
    if type(p).__module__.startswith("torch") and hasattr(p, "detach"):
        return p.detach().cpu().numpy()
    return None


def settings_hash(*parts: Any, decimals: int | None = None, length: int = 16) -> str:
    """Hex digest (``length`` characters, SHA-256) of ``parts``.

    ``decimals``: round floating-point arrays to this many decimals before hashing (e.g. 4 for
    positions in Å: 0.1 mÅ). Non-array parts must be JSON-able (others go through ``str``).
    """
    h = hashlib.sha256()
    for p in parts:
        a = _as_array(p)
        if a is not None:
            if decimals is not None and np.issubdtype(a.dtype, np.floating):
                a = np.round(a, decimals) + 0.0  # + 0.0: -0.0 and 0.0 hash alike
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\x1f")  # part separator: ("ab", "c") and ("a", "bc") differ
    return h.hexdigest()[:length]


def file_hash(path, length: int = 64) -> str:
    """SHA-256 of a file's bytes (model files, inputs), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]
