"""Multislice (abTEM) images of rigid bilayers of KNOWN registry, for calibrating the incoherent model
(twistox.imaging.calibration) and as labelled training patches (twistox.imaging.regressor.image_patches).

Uses the stem stage's plan-view code with a stem config (the ``stem`` section, e.g. from stem.zarr's
``config`` attr), so the specimen (thickness, focus, probe, detector, post-processing) is the sample's.
Conventions: image[y, x], y = row × sampling (Å), the supercell's (x, y) frame; bases' columns are the
layers' a-vectors (Å), layer 0 bottom; shifts are the positions of one A column per layer (Å).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np


@dataclass
class KnownImage:
    """A clean (noise-free) simulated image with its structure: image [y, x] (fraction of the beam),
    sampling (Å), bases (2, 2, 2), shifts (2, 2), theta_deg, dose (e/Å², for fresh noise draws)."""

    image: np.ndarray
    sampling: float
    bases: np.ndarray
    shifts: np.ndarray
    theta_deg: float
    dose: float | None


def simulate_known_bilayer(theta_deg: float, translation: tuple[float, float], stem_cfg: dict, *,
                           image: str = "haadf", focus: str | float = "interface", max_sigma: int = 30,
                           material=None, interface: str | None = None, device: str = "cpu", log=None) -> KnownImage:
    """abTEM plan view of the rigid CSL bilayer nearest ``theta_deg`` (Σ <= max_sigma) with the top layer
    translated by ``translation`` (top-layer cell fractions), one focus, noise-free (the dose is returned).
    material: twistox.supercell.builder.Perovskite (default SrTiO3); interface: e.g. "SrO-TiO2" (default: BilayerSpec's).

    Cost: one plan-view focus of the stem stage (~20 s for Σ5, ~1 min for Σ13 on one loaded core)."""
    from ase.data import atomic_numbers

    from twistox.imaging.patches import rot
    from twistox.stem.planview import integrate_range, run_planview
    from twistox.stem.postprocess import postprocess
    from twistox.supercell.builder import BilayerSpec, Perovskite, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    cfg = copy.deepcopy(stem_cfg)
    cfg["planview"]["focus"] = [focus]
    cfg["frozen_phonons"] = {**cfg.get("frozen_phonons", {}), "enabled": False}
    material = material or Perovskite()
    atoms = build_bilayer(nearest_csl(theta_deg, max_sigma), BilayerSpec(
        material=material, bottom_cells=1, top_cells=1, translation=tuple(translation),
        **({"interface": interface} if interface else {})))
    atoms.info["rigid_positions"] = atoms.positions.copy()  # a rigid structure: its own reference

    class _NoCheckpoint:
        def dataset(self, name, compute, key=None):
            return compute()

    ds = run_planview({"rigid": atoms}, cfg, device, 0, _NoCheckpoint(), log or logging.getLogger(__name__))
    lo, hi = cfg["planview"]["ranges"][image]
    rad = ds["adf_radial"].isel(defocus=0).rename(y_scan="y", x_scan="x")
    rad.attrs["angle_step_mrad"] = float(cfg["planview"]["detector"]["step_mrad"])
    pp = cfg["postprocess"]
    img = postprocess(integrate_range(rad, lo, hi), interpolate=pp["interpolate_sampling"] or None,
                      blur=pp["blur_sigma"] or None, tiles=cfg["planview"]["tiles"], dose=None)
    a = float(atoms.info["a"])
    ab, at = (float(v) for v in atoms.info["layer_angles_deg"])
    pos, lay, num = atoms.positions, atoms.arrays["layer"], atoms.numbers
    a_number = atomic_numbers[material.A]
    shifts = np.stack([pos[(lay == li) & (num == a_number)][0, :2] for li in (0, 1)])
    return KnownImage(np.asarray(img.values, float), float(img["x"][1] - img["x"][0]),
                      np.stack([rot(np.radians(ab)) * a, rot(np.radians(at)) * a]), shifts,
                      float(atoms.info["theta_deg"]), pp["dose"])
