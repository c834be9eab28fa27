"""Errors per ``config_type`` and how much of the energy error is a constant offset per type
(metrics.json ``by_config_type``).

Errors that share a sign within each kind of cell, on the training frames too, have one of two causes:
labels whose energy reference differs from one kind of cell to another (a k-point grid converged in some
cells and not in others, a basis, smearing or spin setting changed between batches), which no potential
can fit; or an energy term the training has not yet fitted (too few epochs, too low an ``energy_weight``
against the forces), which more training removes. Retraining longer tells them apart. The first network
potential had the first (kpt 1.0); its kpt 2.4 successor at 120 epochs the second (docs/stages/mlip.md).
Units: meV/atom, meV/Å; signed error = prediction - label.
"""

from __future__ import annotations

import logging

import numpy as np
from ase import Atoms

#: warn when the per-type offsets carry more than this share of the training energy MSE ...
OFFSET_SHARE_WARN = 0.5
#: ... and the offsets of two types differ by more than this (meV/atom)
OFFSET_SPREAD_WARN_MEV = 10.0


def _per_atom_energy_errors(frames: list[Atoms], pred: dict[str, list]) -> np.ndarray:
    n = np.array([len(a) for a in frames], float)
    return (np.asarray(pred["energy"], float) - np.array([a.info["REF_energy"] for a in frames])) / n * 1e3


def category_errors(frames: list[Atoms], pred: dict[str, list]) -> dict[str, dict]:
    """Per ``config_type`` (sorted): ``n_frames``, ``n_atoms``, ``energy_mae_meV_per_atom``,
    ``energy_mean_signed_meV_per_atom`` (mean of prediction - label per atom, per frame),
    ``forces_mae_meV_per_A`` (per component). ``pred`` holds ``energy`` (eV) and ``forces`` (eV/Å) for
    every frame of ``frames``."""
    de = _per_atom_energy_errors(frames, pred)
    kinds = np.array([str(a.info.get("config_type", "")) for a in frames])
    out = {}
    for k in sorted(set(kinds)):
        idx = np.flatnonzero(kinds == k)
        df = np.concatenate([(np.asarray(pred["forces"][i]) - frames[i].arrays["REF_forces"]).ravel() for i in idx])
        out[k] = {"n_frames": int(idx.size), "n_atoms": int(sum(len(frames[i]) for i in idx)),
                  "energy_mae_meV_per_atom": float(np.abs(de[idx]).mean()),
                  "energy_mean_signed_meV_per_atom": float(de[idx].mean()),
                  "forces_mae_meV_per_A": float(np.abs(df).mean() * 1e3)}
    return out


def offset_share(frames: list[Atoms], pred: dict[str, list]) -> tuple[float, float]:
    """(share, spread): the fraction of the per-atom energy mean-square error carried by the mean signed
    error of each ``config_type`` (sum over types of n_type x mean_type^2 over the sum of squared errors;
    1 when every frame of a type is off by the same amount, ~n_types / n_frames for unbiased noise), and
    the largest minus the smallest type mean (meV/atom). (nan, 0) for exact predictions."""
    de = _per_atom_energy_errors(frames, pred)
    kinds = np.array([str(a.info.get("config_type", "")) for a in frames])
    means = {k: de[kinds == k].mean() for k in set(kinds)}
    total = float((de**2).sum())
    explained = float(sum((kinds == k).sum() * m**2 for k, m in means.items()))
    spread = float(max(means.values()) - min(means.values())) if means else 0.0
    return (explained / total if total > 0 else float("nan")), spread


def by_config_type(train: list[Atoms], train_pred: dict, test: list[Atoms], test_pred: dict,
                   log: logging.Logger | None = None) -> dict:
    """metrics.json ``by_config_type``: :func:`category_errors` of the train and test frames, the training
    set's :func:`offset_share` and spread, and ``offsets_dominate`` (share > ``OFFSET_SHARE_WARN`` and
    spread > ``OFFSET_SPREAD_WARN_MEV``), logged as a warning: the energies of some kinds of cell are not
    fitted, either underfit (train longer / raise energy_weight) or labels on different references."""
    share, spread = offset_share(train, train_pred)
    dominate = bool(np.isfinite(share) and share > OFFSET_SHARE_WARN and spread > OFFSET_SPREAD_WARN_MEV)
    block = {"train": category_errors(train, train_pred), "test": category_errors(test, test_pred) if test else {},
             "train_offset_share": None if not np.isfinite(share) else share,
             "train_offset_spread_meV_per_atom": spread, "offsets_dominate": dominate}
    if log is not None:
        for split in ("train", "test"):
            for k, v in block[split].items():
                log.info("%s %-16s %3d frames: energy mean signed %+7.1f, MAE %6.1f meV/atom; force MAE %6.1f meV/Å",
                         split, k, v["n_frames"], v["energy_mean_signed_meV_per_atom"], v["energy_mae_meV_per_atom"],
                         v["forces_mae_meV_per_A"])
        if dominate:
            log.warning("energy errors on the TRAINING frames are mostly a constant offset per config_type (%.0f %% of "
                        "the MSE, offsets %.0f meV/atom apart): either the energy is underfit (more epochs, a higher "
                        "mlip.energy_weight) or the labels of different kinds of cell are not on one energy reference "
                        "(k-point density, basis, smearing: docs/stages/dft.md), which no training fixes; if a "
                        "longer training leaves the offsets, it is the labels", 100 * share, spread)
    return block
