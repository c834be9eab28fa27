"""Per-atom strain, rotation, off-centring and coordination against known answers."""

import numpy as np
import pytest

from twistox.strain.atomistic import (b_site_offcentring, coordination_counts, deformation_gradient, polar_2d,
                               polarization_from_offcentring)
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
    r0 = b_site_offcentring(b, 22, 8, 2.4)
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
    r1 = b_site_offcentring(b, 22, 8, 2.4)
    assert r1.delta[k] == pytest.approx([0.01, 0.0], abs=1e-12)
    P = polarization_from_offcentring(r1.delta[k], 7.12, A)
    assert P[0] == pytest.approx(7.12 * 1.602176634e-19 * 1e-12 / (A * 1e-10) ** 3)
    assert P[0] == pytest.approx(0.0191, abs=2e-4)


def test_bulk_ti_is_sixfold():
    """A 3-cell slab: the middle TiO2 plane has full octahedra (CN 6), surfaces CN 5."""
    b = build_bilayer(nearest_csl(36.87, 30), BilayerSpec(interface="SrO-TiO2", bottom_cells=3, top_cells=1,
                                                          interlayer_spacing=5.0))
    r = b_site_offcentring(b, 22, 8, 2.4)
    plane = b.arrays["plane"]
    ti = b.numbers == 22
    cn_by_plane = {p: set(r.coordination[ti & (plane == p)]) for p in np.unique(plane[ti])}
    assert 6 in set().union(*cn_by_plane.values())
    assert min(min(v) for v in cn_by_plane.values()) == 5


def test_strain_dataset_contract_and_homogeneous_field(bilayer):
    """strain.zarr per docs/architecture.md; a homogeneously strained bilayer gives flat fields."""
    from twistox.strain.atomistic import COMPONENTS, strain_dataset
    from twistox.core.io import structure_dataset

    cfg = {"planes": "interface", "neighbour_cutoff": 0.85, "bo_cutoff": 2.4, "born_charge": 7.12,
           "grid_spacing": 0.5, "smoothing_sigma": 1.0, "fourier_order": 6}
    eps = np.array([[0.004, 0.002], [0.002, -0.001]])
    b = deformed(bilayer, np.eye(2) + eps)
    b.info.update(bilayer.info)
    b.info["supercell_length"] = bilayer.info["supercell_length"]  # grid on the reference cell length
    ds = strain_dataset(structure_dataset(b), cfg)
    ib, it = bilayer.info["interface_planes"]
    assert list(ds["plane"].values) == [ib, it]
    for v in ("eps_xx", "eps_yy", "eps_xy", "rotation"):
        assert ds[v].dims == ("plane", "y", "x") and "units" in ds[v].attrs
    assert ds["ti_offcentering"].dims == ("plane", "y", "x", "xy")
    assert ds["polarization"].attrs["units"] == "C/m^2"
    c = ds["fourier_coefficients"]
    assert c.dims == ("plane", "component", "h", "k") and c.dtype == np.complex128
    assert list(c["component"].values) == COMPONENTS and list(c["h"].values) == list(range(-6, 7))
    assert np.allclose(c.values, np.conj(c.values[:, :, ::-1, ::-1]), atol=1e-15)
    assert np.allclose(ds["eps_xx"], eps[0, 0], atol=1e-9) and np.allclose(ds["eps_xy"], eps[0, 1], atol=1e-9)
    # the field is constant: only c[0, 0] survives, equal to the strain
    N = 6
    assert c.sel(component="eps_yy", h=0, k=0).values == pytest.approx([eps[1, 1]] * 2, abs=1e-9)
    assert np.abs(np.delete(c.values.reshape(2, 4, -1), N * 13 + N, axis=2)).max() < 1e-9
    assert ds.attrs["fourier_residual_rms"] < 1e-9
    # interfacial TiO2 plane (top layer's bottom plane): off-centring 0 everywhere; the SrO plane has none
    kinds = ds["plane_kind"].values
    assert np.nanmax(np.abs(ds["ti_offcentering"].values[kinds == 1])) < 1e-9
    assert np.isnan(ds["ti_offcentering"].values[kinds == 0]).all()
