"""Twisted bilayer builder: periodicity, counts, distances, geometry attrs."""

import math

import numpy as np
import pytest
from ase.neighborlist import neighbor_list
from scipy.spatial import cKDTree

from twistox.supercell.lattice import nearest_csl
from twistox.supercell.builder import AO, BO2, BilayerSpec, Perovskite, build_bilayer, expected_atom_count

ANGLES = [36.87, 22.62, 28.07, 16.26, 10.39, 6.73, 4.98, 20.02]


def _periodic_match(pos, shift, L):
    """Max distance from each shifted atom to the nearest atom, x and y periodic with period L."""
    box = [L, L, 1e9]
    tree = cKDTree(np.mod(pos, box), boxsize=box)
    d, _ = tree.query(np.mod(pos + shift, box))
    return d.max()


@pytest.mark.parametrize("theta", ANGLES)
def test_supercell_periodic_and_counts(theta):
    csl = nearest_csl(theta)
    spec = BilayerSpec(bottom_cells=2, top_cells=2)
    atoms = build_bilayer(csl, spec)
    assert len(atoms) == expected_atom_count(csl, spec) == 2 * 2 * 5 * csl.sigma
    L = atoms.cell[0, 0]
    assert L == pytest.approx(3.905 * math.sqrt(csl.sigma))
    pos = atoms.positions
    for k in (0, 1):
        ang = math.radians(csl.layer_angles_deg[k])
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        # each supercell vector is a lattice vector of this layer: integer in its own lattice units
        in_layer = rot.T @ (np.eye(2) * L / 3.905)
        assert np.allclose(in_layer, np.round(in_layer), atol=1e-9)
        for z in np.unique(atoms.numbers):
            sel = (atoms.arrays["layer"] == k) & (atoms.numbers == z)
            p = pos[sel]
            # every atom shifted by a lattice vector of its layer lands on an atom of the same layer and
            # species through the periodic boundary: the crystal is continuous across the supercell faces
            for t2 in (rot @ [3.905, 0.0], rot @ [0.0, 3.905], rot @ [3.905, 3.905]):
                assert _periodic_match(p, np.array([*t2, 0.0]), L) < 1e-6


@pytest.mark.parametrize("theta", ANGLES)
def test_no_close_contacts_across_interface(theta):
    atoms = build_bilayer(nearest_csl(theta), BilayerSpec(bottom_cells=1, top_cells=1))
    atoms.pbc = (True, True, False)
    i, j, d = neighbor_list("ijd", atoms, 1.5)
    assert len(d) == 0


@pytest.mark.parametrize("interface,kinds", [
    ("SrO-TiO2", (AO, BO2)), ("TiO2-SrO", (BO2, AO)), ("TiO2-TiO2", (BO2, BO2)), ("SrO-SrO", (AO, AO)),
    ("AO-BO2", (AO, BO2)),
])
def test_terminations(interface, kinds):
    csl = nearest_csl(36.87)
    spec = BilayerSpec(interface=interface, bottom_cells=2, top_cells=1)
    atoms = build_bilayer(csl, spec)
    ib, it = atoms.info["interface_planes"]
    pk = atoms.arrays["plane_kind"]
    pl = atoms.arrays["plane"]
    assert pk[pl == ib][0] == kinds[0] and pk[pl == it][0] == kinds[1]
    # stoichiometric by default: as many AO as BO2 planes per layer
    bottom, top = spec.plane_sequence()
    assert bottom.count(AO) == bottom.count(BO2) == 2 and top.count(AO) == top.count(BO2) == 1
    z = atoms.info["plane_z"]
    assert z[it] - z[ib] == pytest.approx(3.905 / 2)
    assert atoms.info["interface_z"] == pytest.approx((z[ib] + z[it]) / 2)


def test_outer_termination_adds_a_plane():
    # seed 001: 1.5-cell top layer with SrO on both faces
    spec = BilayerSpec(interface="TiO2-SrO", bottom_cells=2, top_cells=1, top_outer="SrO")
    bottom, top = spec.plane_sequence()
    assert top == [AO, BO2, AO]
    atoms = build_bilayer(nearest_csl(36.87), spec)
    assert len(atoms) == expected_atom_count(nearest_csl(36.87), spec)


def test_translation_shifts_top_layer_only():
    csl = nearest_csl(22.62)
    a0 = build_bilayer(csl, BilayerSpec())
    a1 = build_bilayer(csl, BilayerSpec(translation=(0.5, 0.5)))
    bottom = a0.arrays["layer"] == 0
    assert np.allclose(a0.positions[bottom], a1.positions[bottom])
    # AB shift a(1,1)/2 in the top layer's frame: Sr of the top layer moves onto the former Ti column
    L = a0.cell[0, 0]
    top = a0.arrays["layer"] == 1
    ang = math.radians(csl.layer_angles_deg[1])
    shift = 3.905 * 0.5 * np.array([math.cos(ang) - math.sin(ang), math.sin(ang) + math.cos(ang), 0])
    d = _periodic_match(a1.positions[top], np.zeros(3), L)
    assert d < 1e-9
    tree = cKDTree(np.mod(a1.positions[top][:, :2], L), boxsize=[L, L])
    dd, _ = tree.query(np.mod(a0.positions[top][:, :2] + shift[:2], L))
    assert dd.max() < 1e-6


def test_other_perovskite():
    bto = Perovskite(A="Ba", B="Ti", X="O", a=4.0)
    atoms = build_bilayer(nearest_csl(36.87), BilayerSpec(material=bto, interface="BaO-TiO2"))
    assert set(atoms.get_chemical_symbols()) == {"Ba", "Ti", "O"}
    assert atoms.cell[0, 0] == pytest.approx(4.0 * math.sqrt(5))


@pytest.mark.parametrize("kwargs,match", [
    (dict(interface="SrO-PbO"), "allowed"),
    (dict(interface="SrO"), "BOTTOM-TOP"),
    (dict(bottom_cells=-1), "bottom_cells"),
    (dict(top_cells=0), "top_cells"),
    (dict(vacuum=-1.0), "vacuum"),
])
def test_bad_geometry_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_bilayer(nearest_csl(36.87), BilayerSpec(**kwargs))
