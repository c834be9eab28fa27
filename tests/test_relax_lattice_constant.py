"""The potential's own lattice constant (twistox.relax.lattice_constant) against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from scipy.optimize import minimize_scalar

from twistox.core.config import ConfigError
from twistox.relax.lattice_constant import (apply_lattice_constant, cubic_cell, fit_lattice_constant,
                                            perovskite_species, rescale_to_lattice_constant)
from twistox.supercell.builder import BilayerSpec, Perovskite, build_bilayer
from twistox.supercell.lattice import nearest_csl


class BirchMurnaghan(Calculator):
    """E(V) = third-order Birch–Murnaghan with known V0 [Å^3], B0 [GPa], B0' (forces zero by symmetry)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, v0: float, b0_gpa: float, bp: float = 4.0, e0: float = -40.0):
        super().__init__()
        self.v0, self.b0, self.bp, self.e0 = v0, b0_gpa * units.GPa, bp, e0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        eta = (self.v0 / atoms.get_volume()) ** (2.0 / 3.0)
        e = self.e0 + 9 * self.v0 * self.b0 / 16 * ((eta - 1) ** 3 * self.bp + (eta - 1) ** 2 * (6 - 4 * eta))
        self.results = {"energy": e, "forces": np.zeros((len(atoms), 3))}


def test_recovers_analytic_birch_murnaghan():
    a0, b0 = 3.95, 180.0
    fit = fit_lattice_constant(cubic_cell("Sr", "Ti", "O", 3.905), BirchMurnaghan(a0**3, b0, 4.5))
    assert fit.a0 == pytest.approx(a0, abs=1e-6)
    assert fit.bulk_modulus_GPa == pytest.approx(b0, rel=1e-5)
    assert fit.bulk_modulus_prime == pytest.approx(4.5, rel=1e-4)
    assert fit.residual_meV_per_atom < 1e-6


def test_recovers_emt_copper_and_recentres():
    # known answer: the minimum of E(a) of EMT fcc Cu, found directly (no EOS model)
    def energy(a):
        at = bulk("Cu", "fcc", a=a, cubic=True)
        at.calc = EMT()
        return at.get_potential_energy()

    ref = minimize_scalar(energy, bounds=(3.4, 3.8), method="bounded", options={"xatol": 1e-7}).x
    start = bulk("Cu", "fcc", a=3.80, cubic=True)  # 6 % too large: outside the first +-3 % window's middle
    fit = fit_lattice_constant(start, EMT())
    assert fit.a0 == pytest.approx(ref, abs=5e-4)  # measured: 8e-5 Å
    assert 100 < fit.bulk_modulus_GPa < 200  # EMT Cu: ~134 GPa (ASE EMT paper value range)
    assert fit.a_samples[0] < ref < fit.a_samples[-1]


def test_no_minimum_is_one_clear_error():
    class Linear(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": -atoms.get_volume(), "forces": np.zeros((len(atoms), 3))}

    with pytest.raises(ValueError, match="relax.lattice_constant"):
        fit_lattice_constant(cubic_cell("Sr", "Ti", "O", 3.905), Linear())


def _sigma5(a: float):
    spec = BilayerSpec(material=Perovskite(a=a), bottom_cells=1, top_cells=1, translation=(0.25, 0.5), vacuum=10.0)
    return build_bilayer(nearest_csl(36.87), spec)


def test_rescale_equals_building_at_new_lattice_constant():
    old, new = _sigma5(3.905), _sigma5(3.95)
    got = rescale_to_lattice_constant(old, 3.95, 3.905)
    np.testing.assert_allclose(got.positions, new.positions, atol=1e-9)
    np.testing.assert_allclose(np.asarray(got.cell), np.asarray(new.cell), atol=1e-9)
    for k in ("a", "supercell_length", "moire_period", "interface_z", "interlayer_spacing"):
        assert got.info[k] == pytest.approx(new.info[k], abs=1e-9)
    np.testing.assert_allclose(got.info["plane_z"], new.info["plane_z"], atol=1e-9)
    assert old.info["a"] == 3.905  # input untouched


def test_apply_lattice_constant_modes():
    at = _sigma5(3.905)
    assert perovskite_species(at) == ("Sr", "Ti", "O")
    calc = BirchMurnaghan(3.93**3, 170.0)
    pot, attrs = apply_lattice_constant(at, calc, "potential")
    assert attrs["a_potential"] == pytest.approx(3.93, abs=1e-6) and attrs["a_config"] == 3.905
    assert attrs["bulk_modulus_GPa"] == pytest.approx(170.0, rel=1e-5)
    assert pot.info["a"] == pytest.approx(3.93, abs=1e-6)
    assert pot.cell[0, 0] == pytest.approx(3.93 * np.sqrt(5), abs=1e-5)
    same, attrs = apply_lattice_constant(at, calc, "config")
    assert same is at and attrs["lattice_constant_source"] == "config"
    with pytest.raises(ConfigError, match="relax.lattice_constant"):
        apply_lattice_constant(at, calc, "experiment")


def test_relax_stage_builds_at_the_potentials_lattice_constant(monkeypatch, tmp_path):
    """relax.stage.run rescales the rigid bilayer to a0 and records it in relaxed.zarr attrs."""
    from twistox.core.config import with_schema_defaults
    from twistox.core.io import structure_dataset
    from twistox.relax import stage

    monkeypatch.setattr(stage, "mlip_calculator", lambda *a, **k: BirchMurnaghan(3.93**3, 170.0))
    at = _sigma5(3.905)
    relax = with_schema_defaults("relax", {"translation_grid": 1, "scan_max_steps": 2, "max_steps": 2,
                                           "md": {"enabled": False}})
    assert relax["lattice_constant"] == "potential"  # the default
    model = tmp_path / "unused.model"  # hashed into the checkpoint key only
    model.write_bytes(b"x")
    ds, final = stage.run(structure_dataset(at), [model], {"relax": relax, "device": "cpu"},
                          np.random.default_rng(0), 1)
    assert ds.attrs["a_potential"] == pytest.approx(3.93, abs=1e-6) and ds.attrs["a_config"] == 3.905
    assert ds.attrs["bulk_modulus_GPa"] == pytest.approx(170.0, rel=1e-5)
    assert ds.attrs["a"] == pytest.approx(3.93, abs=1e-6)
    assert ds.attrs["supercell_length"] == pytest.approx(3.93 * np.sqrt(5), abs=1e-5)
    np.testing.assert_allclose(ds["positions_rigid"].values, _sigma5(3.93).positions, atol=1e-6)
    assert final.cell[0, 0] == pytest.approx(3.93 * np.sqrt(5), abs=1e-5)
