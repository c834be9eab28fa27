"""Run-time helpers shared by the rule scripts: logging, threads, seeds.

Devices live in :mod:`twistox.core.device` (``torch_device`` is re-exported here for old callers).
"""

from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path

import numpy as np

from twistox.core.device import torch_device  # noqa: F401  (re-export)


def setup_logging(log_path: str | os.PathLike | None = None, name: str = "twistox") -> logging.Logger:
    """Logger that writes to the rule's log file (and stderr)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    logger.propagate = False
    return logger


def set_threads(n: int) -> None:
    """Limit numeric threads to the cores the job was given."""
    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch; return a numpy Generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass
    return np.random.default_rng(seed)
