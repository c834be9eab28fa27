"""The cost estimate runs before any SCF and stops a structure too big for the memory given."""

import numpy as np
import pytest
from ase.build import bulk

from twistox.core.config import ConfigError
from twistox.electronic import calculation, stage
from twistox.electronic import regions as R
from twistox.electronic.estimate import estimate


def _sto(reps):
    from ase import Atoms

    a = 3.905
    cell = Atoms("SrTiO3", scaled_positions=[[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                 cell=[a] * 3, pbc=True)
    return cell.repeat(reps)


def test_estimate_scales_with_orbitals_and_kpoints():
    small = _sto((1, 1, 1))
    e1 = estimate(small.get_chemical_symbols(), small.cell.array, (1, 1, 1), 0.2, "dzp", gamma_only=True)
    assert e1["orbitals"] == 29 + 29 + 3 * 13                     # gpaw-data dzp: Sr, Ti 29, O 13
    big = _sto((4, 4, 2))
    e2 = estimate(big.get_chemical_symbols(), big.cell.array, (1, 1, 1), 0.2, "dzp", gamma_only=True)
    assert e2["orbitals"] == 32 * e1["orbitals"]
    e3 = estimate(big.get_chemical_symbols(), big.cell.array, (2, 2, 1), 0.2, "dzp", gamma_only=False)
    assert e3["memory_gb"] > e2["memory_gb"] and e3["time_s"] > e2["time_s"]
    # time reversal pairs k and −k; the self-inverse points of a Γ-centred grid stay single (GPAW: 8 for 2×2×2)
    sym = small.get_chemical_symbols()
    assert estimate(sym, small.cell.array, (2, 2, 2), 0.25, "dzp", False)["kpoints_irreducible"] == 8
    assert estimate(sym, small.cell.array, (3, 3, 3), 0.25, "dzp", False)["kpoints_irreducible"] == 14


def test_too_big_structure_stops_before_the_scf(monkeypatch):
    def no_scf(*a, **k):
        raise AssertionError("the SCF must not start")

    monkeypatch.setattr(calculation, "make_calculator", no_scf)
    s = stage.check_settings({"max_memory_gb": 4.0})
    atoms = _sto((12, 12, 2))                                       # 1440 atoms, ~28 000 orbitals
    with pytest.raises(ConfigError) as err:
        stage.compute(atoms, s, np.zeros(len(atoms), np.int8), np.zeros((8, 8), np.int8), False,
                      np.arange(8.0), np.arange(8.0), None)
    msg = str(err.value)
    assert "electronic.max_memory_gb" in msg and "orbitals" in msg and "GB" in msg
    assert len(msg.splitlines()) == 1


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match="electronic"):
        stage.check_settings({"regions": {"line_level": 0.8, "node_level": 0.7}})
    with pytest.raises(ConfigError, match="xc"):
        stage.check_settings({"xc": "B3LYP"})
    assert stage.check_settings({})["hubbard_u"] == {"Ti": 4.3}
    assert stage.check_settings({})["ldos_window_eV"] == 0.3


def test_kpoint_grid_density():
    atoms = _sto((1, 1, 1))
    assert calculation.kpoint_grid(atoms, 0.0) == (1, 1, 1)
    assert calculation.kpoint_grid(atoms, 1.2) == (2, 2, 2)          # 2π·1.2/3.905 = 1.93
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.pbc = [True, True, False]
    assert calculation.kpoint_grid(slab, 3.0)[2] == 1
    assert R.GROUPS[:3] == R.REGIONS


def test_run_builds_regions_groups_and_z_window_from_strain(monkeypatch):
    """stage.run wiring without an SCF: masks from interlayer_twist, atom groups on the interface planes,
    the LDOS z-window around the interface planes' mean height."""
    import xarray as xr

    L, n = 20.0, 40
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    G = 2 * np.pi / L
    twist = 6.7 + np.cos(G * X) + np.cos(G * Y)                     # node at (0, 0), domain at (L/2, L/2)
    pos = np.array([[0.2, 0.2, 5.0], [L / 2, L / 2, 5.0], [L / 2, 0.2, 7.0], [1.0, 1.0, 1.0]])
    plane = np.array([1, 1, 2, 0])
    relaxed = xr.Dataset({"numbers": ("atom", [22, 22, 8, 38]), "positions": (("atom", "xyz"), pos),
                          "cell": (("v", "xyz"), np.diag([L, L, 20.0]))}, attrs={"pbc": [True, True, False]})
    strain = xr.Dataset({"interlayer_twist": (("y", "x"), twist), "atom_plane": ("atom", plane)},
                        coords={"x": x, "y": x},
                        attrs={"supercell_length": L, "moire_period": L, "interface_planes": [1, 2]})
    seen = {}

    def fake_compute(atoms, s, groups, code, found, xx, yy, z_range, *a, **k):
        seen.update(groups=groups, code=code, found=found, z_range=z_range)
        return "ok"

    monkeypatch.setattr(stage, "compute", fake_compute)
    assert stage.run(relaxed, strain, {"ldos_z_halfwidth": 3.0}) == "ok"
    assert seen["found"] and seen["code"][0, 0] == 2 and seen["code"][n // 2, n // 2] == 0
    assert [R.GROUPS[g] for g in seen["groups"]] == ["node", "domain", "line", "interface_near"]
    assert seen["z_range"] == pytest.approx((3.0, 9.0))             # mean of plane means (5 + 7)/2 ± 3
