"""Per-atom strain, rotation, off-centring and coordination against known answers."""

import numpy as np
import pytest

from twistox.strain.cages import b_site_offcentring, coordination_counts, polarization_from_offcentring, rigid_cages
from twistox.strain.deformation import deformation_gradient, polar_2d
from twistox.supercell.lattice import nearest_csl
from twistox.supercell.builder import BilayerSpec, build_bilayer

A = 3.905
CUT = 0.85 * A


@pytest.fixture(scope="module")
def bilayer():
    return build_bilayer(nearest_csl(22.62, 30), BilayerSpec(bottom_cells=1, top_cells=1))


def deformed(atoms, F2):
    """Apply a homogeneous in-plane deformation (2x2) to positions and cell."""
    b = atoms.copy()
    F = np.eye(3)
    F[:2, :2] = F2
    b.set_cell(np.asarray(atoms.cell) @ F.T, scale_atoms=True)
    return b


def rot(beta):
    c, s = np.cos(beta), np.sin(beta)
    return np.array([[c, -s], [s, c]])


def test_ideal_lattice_zero_strain(bilayer):
    r = deformation_gradient(bilayer, bilayer.info["layer_angles_deg"], A, CUT)
    assert np.isfinite(r.eps).all()
    assert np.abs(r.eps).max() < 1e-12 and np.abs(r.rotation).max() < 1e-12
    assert r.n_neighbours.min() >= 2


def test_homogeneous_strain_recovered(bilayer):
    eps = np.array([[0.012, -0.004], [-0.004, -0.007]])
    b = deformed(bilayer, np.eye(2) + eps)
    r = deformation_gradient(b, bilayer.info["layer_angles_deg"], A, CUT)
    assert np.abs(r.eps - eps).max() < 1e-6
    assert np.abs(r.rotation).max() < 1e-6


def test_rigid_rotation_gives_zero_strain_and_the_angle(bilayer):
    beta = np.radians(1.3)
    b = deformed(bilayer, rot(beta))
    # a rotated periodic cell is not axis-aligned: neighbour vectors use the rotated cell
    r = deformation_gradient(b, bilayer.info["layer_angles_deg"], A, CUT)
    assert np.abs(r.eps).max() < 1e-6
    assert np.allclose(r.rotation, beta, atol=1e-6)


def test_rotation_plus_strain(bilayer):
    eps = np.array([[0.01, 0.003], [0.003, 0.0]])
    beta = np.radians(-0.7)
    b = deformed(bilayer, rot(beta) @ (np.eye(2) + eps))
    r = deformation_gradient(b, bilayer.info["layer_angles_deg"], A, CUT)
    assert np.abs(r.eps - eps).max() < 1e-6
    assert np.allclose(r.rotation, beta, atol=1e-6)


def test_layer_twist_is_not_strain(bilayer):
    """Using the wrong layer angle (untwisted reference) must show the twist as rotation."""
    th = bilayer.info["theta_deg"]
    r = deformation_gradient(bilayer, [bilayer.info["frame_angle_deg"]] * 2, A, CUT)
    top = bilayer.arrays["layer"] == 1
    assert np.allclose(np.degrees(r.rotation[top]), th / 2, atol=1e-9)
    assert np.abs(r.eps).max() < 1e-12


def test_polar_decomposition():
    rng = np.random.default_rng(0)
    F = np.eye(2) + 0.05 * rng.normal(size=(20, 2, 2))
    phi, U = polar_2d(F)
    c, s = np.cos(phi), np.sin(phi)
    R = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    assert np.allclose(R @ U, F, atol=1e-12)
    assert np.allclose(U, np.swapaxes(U, 1, 2))
    assert (np.linalg.eigvalsh(U) > 0).all()


def test_offcentring_coordination_and_polarization(bilayer):
    b = bilayer.copy()
    ti = np.flatnonzero(b.numbers == 22)
    cages = rigid_cages(b, 22, 8, 2.4, A)
    r0 = b_site_offcentring(b, cages, 8, 2.4, A)
    assert np.nanmax(np.abs(r0.delta[ti])) < 1e-12
    assert (r0.n_equatorial[ti] == 4).all()
    assert np.isnan(r0.delta[b.numbers != 22]).all()
    # SrO-TiO2 interface, 1 + 1 cells, planes TiO2 SrO | TiO2 SrO: the outer TiO2 (plane 0)
    # has one apical O -> CN 5; the interfacial TiO2 (plane 2) has its own SrO above and
    # gains a 6th O only where an O of the twisted SrO below sits within the cutoff
    plane = b.arrays["plane"]
    counts = coordination_counts(r0.coordination, plane, np.array([0, 1, 2, 3]))
    assert counts.sum() == len(ti)
    assert counts[0, 5] == 13 and counts[0].sum() == 13
    assert counts[1].sum() == 0 and counts[3].sum() == 0
    assert counts[2, 5] + counts[2, 6] == 13 and counts[2, 6] >= 1
    # displace one Ti by 1 pm along x: delta = 0.01 Å, P = Z* e delta / a^3 ~ 0.019 C/m^2 for Z* = 7.12
    k = ti[0]
    b.positions[k, 0] += 0.01
    r1 = b_site_offcentring(b, cages, 8, 2.4, A)
    assert r1.delta[k] == pytest.approx([0.01, 0.0], abs=1e-12)
    P = polarization_from_offcentring(r1.delta[k], 7.12, A)
    assert P[0] == pytest.approx(7.12 * 1.602176634e-19 * 1e-12 / (A * 1e-10) ** 3)
    assert P[0] == pytest.approx(0.0191, abs=2e-4)


def test_bulk_ti_is_sixfold():
    """A 3-cell slab: the middle TiO2 plane has full octahedra (CN 6), surfaces CN 5."""
    b = build_bilayer(nearest_csl(36.87, 30), BilayerSpec(interface="SrO-TiO2", bottom_cells=3, top_cells=1,
                                                          interlayer_spacing=5.0))
    r = b_site_offcentring(b, rigid_cages(b, 22, 8, 2.4, A), 8, 2.4, A)
    plane = b.arrays["plane"]
    ti = b.numbers == 22
    cn_by_plane = {p: set(r.coordination[ti & (plane == p)]) for p in np.unique(plane[ti])}
    assert 6 in set().union(*cn_by_plane.values())
    assert min(min(v) for v in cn_by_plane.values()) == 5


