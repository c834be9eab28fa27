"""The strain stage: relaxed.zarr -> strain.zarr Dataset (what scripts/strain.py calls).

``check_settings`` holds the semantic checks the schema cannot express (grid vs Fourier order in
moiré harmonics, bond cutoff vs lattice constant); it needs only the geometry, so the workflow can
run it for every sample before any job starts.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from twistox.core.config import ConfigError, with_schema_defaults

from .fields import strain_dataset
from .fourier import supercell_order
from .gridding import grid_size


def check_settings(cfg: dict, L: float, moire_period: float, a: float) -> None:
    """Raise ConfigError (naming the key and the allowed values) for ``strain`` settings that cannot work
    on a supercell of side ``L`` (Å), moiré period ``moire_period`` (Å) and lattice constant ``a`` (Å)."""
    N = int(cfg["fourier_order"])
    Nsc = supercell_order(N, L, moire_period)
    n = grid_size(L, cfg["grid_spacing"])
    if n <= 2 * Nsc:
        raise ConfigError(f"config key 'strain.grid_spacing': {cfg['grid_spacing']} Å gives {n} points on L = {L:.2f} Å, "
                          f"too few for strain.fourier_order = {N} moiré harmonics (= {Nsc} supercell harmonics, "
                          f"L/λ = {L / moire_period:.3f}); allowed: grid_spacing < {L / (2 * Nsc + 1):.4f} Å")
    lo, hi = a / 2, a * np.sqrt(5) / 2
    if not lo * 1.02 < cfg["bo_cutoff"] < hi * 0.98:
        raise ConfigError(f"config key 'strain.bo_cutoff': {cfg['bo_cutoff']} Å must hold the four equatorial X at a/2 "
                          f"and none of the next shell; allowed: {lo * 1.02:.2f} < bo_cutoff < {hi * 0.98:.2f} Å (a = {a} Å)")


def run(relaxed: xr.Dataset, cfg: dict, species: dict | None = None, log: logging.Logger | None = None) -> xr.Dataset:
    """strain.zarr Dataset from relaxed.zarr; ``cfg`` is the ``strain`` config section (validated here against
    workflow/schemas/strain.schema.yaml, the only source of defaults), ``species`` the system's
    {"B": symbol, "X": symbol} (inferred from the planes if None)."""
    log = log or logging.getLogger("twistox.strain")
    cfg = with_schema_defaults("strain", cfg)
    at = relaxed.attrs
    check_settings(cfg, float(at["supercell_length"]), float(at["moire_period"]), float(at["a"]))
    ds = strain_dataset(relaxed, cfg, species)
    log_summary(ds, log)
    return ds


def log_summary(ds: xr.Dataset, log: logging.Logger) -> None:
    """One line per plane (crystal-frame strain, rotation, cages, dz) and the network periods."""
    a = ds.attrs
    log.info("Fourier order: %d moiré harmonics = %d supercell harmonics (L/λ = %.3f)", a["fourier_order_moire"],
             a["fourier_order_supercell"], a["supercell_length"] / a["moire_period"])
    for p in ds["plane"].values:
        d = ds.sel(plane=p, all_planes=p)
        log.info("plane %d (layer %d, z = %.2f Å): crystal eps_xy rms %.2e, rotation rms %.3f deg, eps_xy period "
                 "%.2f Å, Fourier residual eps_xy %.1e; changed cages %d, max |dz| %.2f Å (%.2f Å beyond the plane's "
                 "shift)", p, int(d["plane_layer"]), float(d["plane_z"]), float(np.sqrt((d["eps_xy"] ** 2).mean())),
                 np.degrees(float(np.sqrt((d["rotation"] ** 2).mean()))), float(d["network_period"]),
                 float(d["fourier_residual"].sel(field="eps_xy")), int(d["cage_changed_count"]),
                 float(d["max_dz"]), float(d["max_dz_relative"]))
        c = d["ti_cn_counts"].values
        if c.sum():
            log.info("plane %d: B-site CN5 = %d, CN6 = %d (of %d)", p, c[5], c[6], c.sum())
    tw = ds["interlayer_twist"].values
    log.info("interlayer twist %.2f .. %.2f deg (θ = %.2f deg); network period: eps_xy %.2f Å, twist %.2f Å, λ = %.2f Å",
             tw.min(), tw.max(), a["theta_deg"], a["network_period_eps_xy"], a["network_period_twist"], a["moire_period"])
    if abs(a["a_reference"] - a["a"]) > 1e-4 * a["a"]:
        log.warning("reference lattice constant from the rigid lattice %.4f Å differs from relaxed.zarr attr a = %.4f Å; "
                    "strain and P use %.4f Å", a["a_reference"], a["a"], a["a_reference"])
    if a["cage_changed_total"]:
        log.warning("%d of %d B-site cages changed (left out of P): see cage_changed_count per plane",
                    a["cage_changed_total"], a["b_sites"])
