"""Environments of the target angle picked by committee uncertainty (issue 12 item 2).

The target supercell (Σ145: 1450 atoms) is beyond DFT here, so the committee relaxes it briefly
(capped FIRE on the committee mean, from the rigid interface whose O-over-O sites carry ~10 eV/Å),
the per-atom committee force std ``sqrt(mean_k |F_k,i − <F_i>|²)`` [eV/Å] ranks its atoms, and
periodic Σ = p² + q² patches (``twistox.dft.carve``) around the most uncertain, mutually separated
atoms become DFT candidates (``config_type`` twisted_carved, ``split`` train).

Runs inside active learning (``mlip.active_learning.carve``), once per iteration, next to the
committee-MD candidates; the targets are the rigid supercells of the config's angles
(:func:`twistox.mlip.stage.carve_targets`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from twistox.core.config import ConfigError, known_keys
from twistox.dft.carve import carve_uncertain, patch_vector
from twistox.dft.twisted import fire_path

log = logging.getLogger("twistox")


KEY = "mlip.active_learning.carve"


@dataclass(frozen=True)
class CarveSettings:
    """``mlip.active_learning.carve`` (defaults = workflow/schemas/mlip.schema.yaml; frames 0 = off).

    frames: carved cells per target and iteration; sigma: patch size (p² + q², 9 = 3 x 3 cells: 90
    atoms for 1 + 1 cells, stoichiometric on Σ145); relax_steps / maxstep [Å] / fmax [eV/Å]: committee FIRE
    of the target before ranking; min_distance [Å]: seam contacts removed when carving."""

    frames: int = 0
    sigma: int = 9
    relax_steps: int = 30
    maxstep: float = 0.1
    fmax: float = 0.05
    min_distance: float = 1.2

    @classmethod
    def from_config(cls, d: dict | None) -> "CarveSettings":
        """Settings from the config section; ConfigError on unknown keys or a sigma that is no p² + q²."""
        d = known_keys(KEY, d, cls)
        s = cls(**d)
        try:
            patch_vector(int(s.sigma))
        except ValueError:
            raise ConfigError(f"{KEY}.sigma: {s.sigma!r} is not a sum of two squares p² + q²; "
                              "allowed e.g. 4, 5, 8, 9, 10, 13, 16, 17, 25") from None
        return s

    @property
    def enabled(self) -> bool:
        return self.frames > 0


def carved_candidates(calc, targets: list[Atoms], s: CarveSettings) -> list[Atoms]:
    """Carved cells around the most uncertain atoms of each (briefly committee-relaxed) target.

    ``calc``: committee-mean calculator with ``results['force_std']`` (N,) [eV/Å]
    (``twistox.mlip.calculator.load_calculator(paths, 'mean')``). Each cell records its provenance:
    ``carve_target`` (the target's ``info['sample']``, else ``Sigma<sigma>``), ``carve_center`` (index of
    the centre atom in the target) and ``carve_center_position`` [Å] (from ``twistox.dft.carve``),
    ``carve_force_std`` (its centre's std), ``carve_target_max_std`` and ``carve_relax_steps``.
    """
    if s.frames <= 0:
        return []
    out: list[Atoms] = []
    for tgt in targets:
        path = fire_path(tgt, calc, s.relax_steps, s.maxstep, s.fmax)
        at = tgt.copy()
        at.positions = path[-1]
        at.calc = calc
        at.get_forces()
        std = np.asarray(calc.results["force_std"], float)
        at.calc = None
        cells = carve_uncertain(at, std, s.frames, sigma=s.sigma, min_distance=s.min_distance)
        for c in cells:
            c.info.update(carve_target=str(tgt.info.get("sample") or f"Sigma{tgt.info.get('sigma')}"),
                          carve_target_max_std=float(std.max()), carve_relax_steps=len(path) - 1)
        log.info("carved %d Sigma%d cells from Sigma%s after %d FIRE steps: centre std %s eV/Å (max %.3f)", len(cells),
                 s.sigma, tgt.info.get("sigma"), len(path) - 1,
                 ", ".join(f"{c.info['carve_force_std']:.3f}" for c in cells), float(std.max()))
        out += cells
    return out
