"""Held-out evaluation of a committee: predictions, error metrics (meV/atom, meV/Å), uncertainty
vs error. Units: eV, Å."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from twistox.core.checkpoint import atomic_write_text
from twistox.mlip.calculator import load_calculator


def predict(calc: Calculator, frames: list[Atoms]) -> dict[str, list]:
    """Energies (eV), forces (eV/Å) and per-atom force_std (eV/Å, when the calculator has it)."""
    out = {"energy": [], "forces": [], "force_std": []}
    for at in frames:
        a = Atoms(at.numbers, at.positions, cell=at.cell, pbc=at.pbc)
        a.calc = calc
        out["energy"].append(float(a.get_potential_energy()))
        out["forces"].append(np.asarray(a.get_forces()))
        out["force_std"].append(np.asarray(calc.results.get("force_std", np.zeros(len(a)))))
    return out


def error_metrics(frames: list[Atoms], pred: dict[str, list]) -> dict[str, float]:
    """Held-out errors: energy MAE/RMSE (meV/atom), force MAE/RMSE (meV/Å, per component), force R^2."""
    n = np.array([len(a) for a in frames], float)
    e_ref = np.array([a.info["REF_energy"] for a in frames]) / n
    e_pred = np.array(pred["energy"]) / n
    f_ref = np.concatenate([a.arrays["REF_forces"] for a in frames]).ravel()
    f_pred = np.concatenate(pred["forces"]).ravel()
    de, df = e_pred - e_ref, f_pred - f_ref
    ss_tot = float(((f_ref - f_ref.mean()) ** 2).sum())
    return {
        "energy_mae_meV_per_atom": float(np.abs(de).mean() * 1e3),
        "energy_rmse_meV_per_atom": float(np.sqrt((de**2).mean()) * 1e3),
        "forces_mae_meV_per_A": float(np.abs(df).mean() * 1e3),
        "forces_rmse_meV_per_A": float(np.sqrt((df**2).mean()) * 1e3),
        "forces_r2": float(1.0 - (df**2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
    }



def evaluate_committee(paths: list[Path], test: list[Atoms], device: str = "cpu") -> dict:
    """Held-out errors of the committee mean and of the first model (the default for later stages)."""
    mean = error_metrics(test, predict(load_calculator(paths, "mean", device), test))
    first = error_metrics(test, predict(load_calculator(paths, "first", device), test))
    return {**mean, "first_model": first}


def uncertainty_vs_error(paths: list[Path], frames: list[Atoms], device: str = "cpu") -> dict[str, np.ndarray]:
    """Per atom: committee force std (eV/Å) and the committee-mean force error |F - F_ref| (eV/Å)."""
    p = predict(load_calculator(paths, "mean", device), frames)
    err = np.concatenate([np.linalg.norm(f - a.arrays["REF_forces"], axis=1) for f, a in zip(p["forces"], frames)])
    std = np.concatenate(p["force_std"])
    return {"force_std": std, "force_error": err, "pred": p}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic) if len(x) > 2 else float("nan")



def write_metrics(path: str | os.PathLike, metrics: dict) -> None:
    """metrics.json, atomically."""
    atomic_write_text(path, json.dumps(metrics, indent=2, sort_keys=True))
