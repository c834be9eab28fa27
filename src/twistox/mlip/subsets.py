"""Held-out errors on a subset of the test frames chosen by ``config_type`` (metrics.json ``twisted``
block): the frames with twisted interfaces are where a potential trained mostly on bulk and registry
cells is weakest, and what the relax stage needs. Units: meV/atom, meV/Å (as metrics.json)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from twistox.mlip.metrics import error_metrics

ERROR_KEYS = ("energy_mae_meV_per_atom", "energy_rmse_meV_per_atom", "forces_mae_meV_per_A",
              "forces_rmse_meV_per_A", "forces_r2")


def select(frames: list[Atoms], prefix: str) -> list[int]:
    """Indices of the frames whose ``config_type`` starts with ``prefix``."""
    return [i for i, a in enumerate(frames) if str(a.info.get("config_type", "")).startswith(prefix)]


def subset_metrics(frames: list[Atoms], pred: dict[str, list], prefix: str = "twisted") -> dict:
    """The error keys of :func:`twistox.mlip.metrics.error_metrics` on the frames of type ``prefix*``,
    with ``n_test``, ``n_test_atoms`` and ``config_types``; every error is None when no frame matches
    (JSON null, n_test 0). ``pred`` holds predictions for all of ``frames`` (energy, forces)."""
    idx = select(frames, prefix)
    if not idx:
        return {**{k: None for k in ERROR_KEYS}, "n_test": 0, "n_test_atoms": 0, "config_types": []}
    sub = [frames[i] for i in idx]
    m = error_metrics(sub, {"energy": [pred["energy"][i] for i in idx], "forces": [pred["forces"][i] for i in idx]})
    m = {k: (None if not np.isfinite(v) else v) for k, v in m.items()}
    return {**m, "n_test": len(sub), "n_test_atoms": int(sum(len(a) for a in sub)),
            "config_types": sorted({str(a.info["config_type"]) for a in sub})}


def twisted_block(paths: list[Path], test: list[Atoms], load_mode: str, device: str = "cpu",
                  test_pred: dict | None = None) -> dict:
    """metrics.json ``twisted`` block for the model later stages load (``load_mode`` first | mean).
    ``test_pred``: that model's predictions on all of ``test`` when already computed (then reused);
    otherwise the twisted frames alone are predicted."""
    idx = select(test, "twisted")
    if not idx:
        return subset_metrics(test, {"energy": [], "forces": []})
    if test_pred is not None:
        return subset_metrics(test, test_pred)
    from twistox.mlip.calculator import load_calculator
    from twistox.mlip.metrics import predict

    sub = [test[i] for i in idx]
    return subset_metrics(sub, predict(load_calculator(paths, load_mode, device), sub))
