"""Loading trained MACE models as an ASE calculator: the one entry point later stages use.

``load_calculator(model_paths, mode="first"|"mean")``. ``mode="mean"`` returns the committee
mean energy/forces/stress and exposes the committee force disagreement in
``calc.results["force_std"]`` (per atom, eV/Å): ``sqrt(mean_k |F_k,i - mean_k F_k,i|^2)``;
``calc.results["forces_comm"]`` holds every member's forces (K, N, 3) and
``calc.results["force_std_max"]`` the largest per-atom value.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator

from twistox.core.device import torch_device

MODES = ("first", "mean")


def _mace_calculator_class():
    from mace.calculators import MACECalculator

    class CommitteeMACECalculator(MACECalculator):
        """MACECalculator (committee mean) that also reports the per-atom force disagreement."""

        def calculate(self, atoms=None, properties=None, system_changes=None):
            from ase.calculators.calculator import all_changes

            super().calculate(atoms, properties, system_changes if system_changes is not None else all_changes)
            fc = self.results.get("forces_comm")
            if fc is None:  # one model: no disagreement
                std = np.zeros(len(self.atoms))
            else:
                dev = fc - fc.mean(axis=0, keepdims=True)
                std = np.sqrt((dev**2).sum(axis=2).mean(axis=0))
            self.results["force_std"] = std
            self.results["force_std_max"] = float(std.max()) if len(std) else 0.0

    return CommitteeMACECalculator


def load_calculator(model_paths: list[str | os.PathLike], mode: str = "first", device: str = "auto",
                    default_dtype: str = "float64") -> Calculator:
    """ASE calculator from trained MACE model files.

    mode "first": the first model only (fastest). mode "mean": committee mean of all models;
    ``calc.results["force_std"]`` (N,) eV/Å is the per-atom committee force disagreement.
    device: "auto" (GPU when present), "cpu" or "cuda". default_dtype: "float64" or "float32".
    """
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r} is not allowed; allowed: {', '.join(MODES)}")
    if default_dtype not in ("float64", "float32"):
        raise ValueError(f"default_dtype: {default_dtype!r} is not allowed; allowed: float64, float32")
    paths = [str(p) for p in (model_paths if isinstance(model_paths, (list, tuple)) else [model_paths])]
    if not paths:
        raise ValueError("model_paths: empty; give at least one MACE .model file")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"MACE model file(s) not found: {missing}")
    if mode == "first":
        paths = paths[:1]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cls = _mace_calculator_class()
        return cls(model_paths=paths, device=torch_device(device), default_dtype=default_dtype)

