"""Twist-boundary energy (twistox.relax.boundary) against known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

from twistox.core.config import SCHEMA_DIR, ConfigError, with_schema_defaults
from twistox.dft.trainset import bilayer_1x1
from twistox.relax.boundary import (EV_PER_A2_IN_J_PER_M2, BoundarySettings, boundary_energy, boundary_energy_attrs,
                                    check_sigma_multiple, in_plane_area, reference_energies, reference_spec,
                                    relax_stage_boundary_attrs)
from twistox.supercell.builder import BilayerSpec, build_bilayer
from twistox.supercell.lattice import nearest_csl

SPEC = BilayerSpec(bottom_cells=1, top_cells=1, interlayer_spacing=1.9525, vacuum=12.0)


def lj():
    # one LJ species for all atoms, minimum at the B-X bond a/2 = 1.9525 Å and a smooth cutoff before the
    # next shell (2.76 Å): the ideal stack is a local minimum and FIRE converges tightly
    return LennardJones(sigma=1.9525 / 2 ** (1 / 6), epsilon=0.2, rc=2.6, ro=2.3, smooth=True)


class OneBody(Calculator):
    """E = sum of a fixed energy per species, no forces: strictly extensive, no interface energy at all."""

    implemented_properties = ["energy", "forces"]
    E = {"Sr": -1.3, "Ti": -7.1, "O": -4.9}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": float(sum(self.E[s] for s in atoms.get_chemical_symbols())),
                        "forces": np.zeros((len(atoms), 3))}


def untwisted_supercell(spec: BilayerSpec, shift, n: int, spacing: float | None = None):
    """An n x n repeat of the 1x1 bilayer dressed as a supercell (Sigma = n^2, plane arrays, info)."""
    one = bilayer_1x1(spec, tuple(shift), spacing)
    at = one.repeat((n, n, 1))
    z = np.round(at.positions[:, 2], 6)
    zs = np.unique(z)
    bottom, top = spec.plane_sequence()
    at.set_array("plane", np.searchsorted(zs, z).astype(np.int32))
    at.set_array("plane_kind", np.array(bottom + top, dtype=np.int32)[at.arrays["plane"]])
    at.info.update(sigma=n * n, a=spec.material.a, interlayer_spacing=spec.interlayer_spacing)
    return at


def test_units_sign_and_scaling():
    assert EV_PER_A2_IN_J_PER_M2 == pytest.approx(16.0218, abs=1e-4)
    assert boundary_energy(1.0, 0.0, 1, 1.0) == pytest.approx(16.02177, abs=1e-5)  # 1 eV on 1 Å^2
    g0 = boundary_energy(-1000.0, -250.0, 4, 61.0)
    assert g0 == pytest.approx(0.0, abs=1e-12)
    # an added known energy dE raises gamma by dE / A, a lower energy gives a negative gamma
    assert boundary_energy(-1000.0 + 0.5, -250.0, 4, 61.0) - g0 == pytest.approx(0.5 / 61.0 * 16.0217663, rel=1e-8)
    assert boundary_energy(-1000.0 - 0.5, -250.0, 4, 61.0) < 0
    with pytest.raises(ValueError, match="area"):
        boundary_energy(0.0, 0.0, 1, 0.0)


@pytest.mark.parametrize("interface, cells, outer", [("SrO-TiO2", (1, 1), ("auto", "auto")),
                                                     ("TiO2-TiO2", (2, 1), ("TiO2", "auto")),
                                                     ("SrO-SrO", (1, 2), ("auto", "SrO"))])
def test_reference_spec_rebuilds_the_planes_of_a_twisted_cell(interface, cells, outer):
    spec = BilayerSpec(interface=interface, bottom_cells=cells[0], top_cells=cells[1], bottom_outer=outer[0],
                       top_outer=outer[1], interlayer_spacing=2.1, vacuum=11.0)
    tw = build_bilayer(nearest_csl(36.87, 30), spec)  # Sigma 5
    ref = reference_spec(tw)
    assert ref.plane_sequence() == spec.plane_sequence()
    assert ref.interlayer_spacing == pytest.approx(2.1) and ref.material.a == pytest.approx(3.905)
    one = bilayer_1x1(ref, (0.0, 0.0))
    check_sigma_multiple(tw, one, 5)
    # same stack height and cell height as the twisted cell
    assert np.ptp(one.positions[:, 2]) == pytest.approx(np.ptp(tw.positions[:, 2]), abs=1e-9)
    assert one.cell[2, 2] == pytest.approx(tw.cell[2, 2], abs=1e-9)


def test_atom_count_mismatch_is_refused():
    tw = build_bilayer(nearest_csl(36.87, 30), SPEC)
    del tw[[0]]
    tw.info["sigma"] = 5
    with pytest.raises(ValueError, match="not Sigma = 5 times"):
        check_sigma_multiple(tw, bilayer_1x1(reference_spec(build_bilayer(nearest_csl(36.87, 30), SPEC)), (0, 0)), 5)


@pytest.mark.parametrize("theta", [36.87, 22.62])  # Sigma 5, 13
def test_extensive_energy_has_no_boundary_energy(theta):
    """A one-body energy (per species) is exactly extensive: gamma = 0 for any twist, rigid and relaxed."""
    tw = build_bilayer(nearest_csl(theta, 30), SPEC)
    tw.calc = OneBody()
    e = tw.get_potential_energy()
    at = boundary_energy_attrs(tw, OneBody(), e, e, BoundarySettings(registry_grid=2, repeat=1), fmax=0.01, max_steps=5)
    assert abs(at["boundary_energy_rigid_J_m2"]) < 1e-10 and abs(at["boundary_energy_relaxed_J_m2"]) < 1e-10
    assert at["boundary_area_A2"] == pytest.approx(tw.info["sigma"] * 3.905**2, rel=1e-12)
    assert at["boundary_reference_n_atoms_1x1"] == 10 and at["boundary_reference_converged"]


def test_untwisted_supercell_at_the_best_registry_has_zero_boundary_energy():
    """Pair potential, untwisted 2x2 'supercell' of the 1x1 bilayer through the relax stage's own scan +
    FIRE (relax_bilayer) and its boundary hook: relaxed gamma = 0 to 1e-6 J/m^2; the rigid gamma is the
    rigid energy at the stage's chosen translation above the best rigid registry (known from the scan),
    and 0 for the 2x2 cell at the best rigid registry."""
    from twistox.relax.stage import relax_bilayer

    sc = untwisted_supercell(SPEC, (0.0, 0.0), 2)
    sc.info["layer_angles_deg"] = [0.0, 0.0]
    # offsets of 1/3: registries off the mirror planes really relax; scan and final fmax equal, so the scan's
    # best candidate is final (the reference is relaxed to the same fmax)
    cfg = with_schema_defaults("relax", {"translation_grid": 3, "scan_fmax": 1e-3, "fmax": 1e-3, "scan_max_steps": 5000,
                                         "max_steps": 5000, "md": {"enabled": False},
                                         "boundary_energy": {"registry_grid": 3, "repeat": 1},
                                         "contact_guard": {"enabled": False}})  # LJ stand-in: Sr pairs at 1.9 Å
    out = relax_bilayer(sc, lj(), cfg, np.random.default_rng(0))
    at = relax_stage_boundary_attrs(sc, lj(), out, cfg)
    area = 4 * 3.905**2
    assert at["boundary_area_A2"] == pytest.approx(area, rel=1e-12)
    assert abs(at["boundary_energy_relaxed_J_m2"]) < 1e-6
    assert at["boundary_reference_energy_relaxed_eV"] < at["boundary_reference_energy_rigid_eV"] - 0.1  # non-trivial
    i, j = out.best
    # the scan's offsets are the reference's registries, so Sigma E_ref(rigid) = the scan's rigid minimum
    want = (out.scan_energy_rigid[i, j] - out.scan_energy_rigid.min()) / area * EV_PER_A2_IN_J_PER_M2
    assert at["boundary_energy_rigid_J_m2"] == pytest.approx(want, abs=1e-9)
    assert at["boundary_reference_energy_rigid_eV"] == pytest.approx(out.scan_energy_rigid.min() / 4, abs=1e-9)
    # the same untwisted cell rigid at the best rigid registry: gamma = 0; at the worst registry: > 0
    for shift, zero in ((at["boundary_reference_registry_rigid"], True), ((0.0, 0.0), False)):
        rig = untwisted_supercell(SPEC, shift, 2)
        rig.calc = lj()
        g = boundary_energy(rig.get_potential_energy(), at["boundary_reference_energy_rigid_eV"], 4, in_plane_area(rig))
        assert (abs(g) < 1e-9) if zero else (g > 1e-2)


def test_reference_takes_the_lowest_registry_and_relaxation_lowers_it():
    ref = reference_energies(untwisted_supercell(SPEC, (0, 0), 1), lj(), BoundarySettings(registry_grid=4, repeat=1),
                             fmax=1e-3, max_steps=3000)
    assert ref.shifts.shape == (16, 2)
    assert ref.e_rigid == pytest.approx(ref.energies_rigid.min()) and ref.e_relaxed == pytest.approx(ref.energies_relaxed.min())
    assert ref.e_relaxed <= ref.e_rigid + 1e-9
    assert np.ptp(ref.energies_rigid) > 0  # the registries differ
    # no FIRE steps allowed (relax.max_steps: 0): the relaxed reference is the rigid one
    ref0 = reference_energies(untwisted_supercell(SPEC, (0, 0), 1), lj(), BoundarySettings(registry_grid=2, repeat=1),
                              fmax=1e-3, max_steps=0)
    assert ref0.e_relaxed == ref0.e_rigid


def test_settings_errors_and_schema_defaults():
    with pytest.raises(ConfigError, match="relax.boundary_energy: unknown"):
        BoundarySettings.from_config({"grid": 3})
    with pytest.raises(ConfigError, match="registry_grid"):
        BoundarySettings.from_config({"registry_grid": 0})
    with open(SCHEMA_DIR / "relax.schema.yaml") as fh:
        props = yaml.safe_load(fh)["properties"]["boundary_energy"]["properties"]
    lib = {f.name: f.default for f in dataclasses.fields(BoundarySettings)}
    assert lib == {k: v["default"] for k, v in props.items()}
    cfg = with_schema_defaults("relax", {})
    assert BoundarySettings.from_config(cfg["boundary_energy"]) == BoundarySettings()


def test_relax_stage_hook_and_disable():
    from types import SimpleNamespace

    tw = build_bilayer(nearest_csl(36.87, 30), SPEC)
    tw.calc = OneBody()
    e = tw.get_potential_energy()
    out = SimpleNamespace(best=(0, 1), scan_energy_rigid=np.array([[0.0, e + 0.25]]), energy_relaxed=e)
    cfg = with_schema_defaults("relax", {"boundary_energy": {"registry_grid": 2, "repeat": 1}, "max_steps": 5})
    at = relax_stage_boundary_attrs(tw, OneBody(), out, cfg)
    assert at["boundary_energy_rigid_J_m2"] == pytest.approx(0.25 / (5 * 3.905**2) * EV_PER_A2_IN_J_PER_M2, rel=1e-9)
    assert at["boundary_energy_relaxed_J_m2"] == pytest.approx(0.0, abs=1e-10)
    cfg["boundary_energy"]["enabled"] = False
    assert relax_stage_boundary_attrs(tw, OneBody(), out, cfg) == {}


def test_batched_mace_on_the_small_reference_cell(tmp_path):
    """The reference cell (2x2 of a 3.9 Å cell) is smaller than 2 r_max: the batched MACE path must still
    equal MACECalculator there (periodic images counted more than once)."""
    pytest.importorskip("mace")
    from mace.calculators import MACECalculator

    from test_relax import tiny_mace
    from twistox.relax.evaluators import MaceBatchEvaluator

    calc = MACECalculator(model_paths=str(tiny_mace(tmp_path / "t.model", r_max=5.0)), device="cpu",
                          default_dtype="float64")
    at = bilayer_1x1(SPEC, (0.25, 0.5)).repeat((2, 2, 1))
    at.rattle(0.05, seed=1)
    ev = MaceBatchEvaluator.from_calculator(calc, at, skin=0.5)
    e, f = ev.evaluate(at.positions[None], [0])
    at.calc = calc
    assert e[0] == pytest.approx(at.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(f[0], at.get_forces(), atol=1e-8)
