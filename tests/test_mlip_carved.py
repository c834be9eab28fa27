"""Carved candidates of the target supercell picked by committee force std (twistox.mlip.carved)."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

from twistox.mlip.carved import CarveSettings, carved_candidates
from twistox.supercell.builder import BilayerSpec, build_bilayer
from twistox.supercell.lattice import nearest_csl


class FakeCommittee(Calculator):
    """LJ forces; 'committee std' = distance of each atom from a hot spot's centre, inverted, so the
    most uncertain atoms are known: those nearest the hot spot (in-plane, minimum image)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, hot_xy, L):
        super().__init__()
        self.hot, self.L, self.lj = np.asarray(hot_xy), L, LennardJones(sigma=1.5, epsilon=0.001, rc=3.0)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = atoms.copy()
        a.calc = self.lj
        d = a.positions[:, :2] - self.hot
        d -= self.L * np.round(d / self.L)
        self.results = {"energy": a.get_potential_energy(), "forces": a.get_forces(),
                        "force_std": 1.0 / (1.0 + np.linalg.norm(d, axis=1))}


def test_carved_candidates_centre_on_the_uncertain_region():
    tgt = build_bilayer(nearest_csl(12.68), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=8.0))  # Sigma41
    L = tgt.cell[0, 0]
    calc = FakeCommittee((0.3 * L, 0.6 * L), L)
    cells = carved_candidates(calc, [tgt], CarveSettings(frames=2, sigma=5, relax_steps=3, fmax=1e-12))
    assert len(cells) == 2 and all(c.info["config_type"] == "twisted_carved" for c in cells)
    c0 = np.asarray(cells[0].info["carve_center_position"])[:2]
    d = c0 - np.array([0.3 * L, 0.6 * L])
    d -= L * np.round(d / L)
    assert np.linalg.norm(d) < 2.0  # the first cell sits on the hot spot (nearest atom, moved <= 3 x 0.1 Å)
    assert cells[0].info["carve_force_std"] >= cells[1].info["carve_force_std"]
    assert cells[0].info["carve_relax_steps"] == 3
    assert carved_candidates(calc, [tgt], CarveSettings(frames=0)) == []
