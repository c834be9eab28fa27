"""B-site off-centring against the rigid lattice's cage (issue 13 item 2): changed cages flagged, left out of P."""

import numpy as np
import pytest
from ase.neighborlist import neighbor_list
from strain_models import A, bilayer, deformed, relaxed_dataset

from twistox.core.config import ConfigError
from twistox.strain.cages import CAGE_BROKEN, CAGE_EXTRA, CAGE_MOVED, b_site_offcentring, rigid_cages
from twistox.strain.fields import strain_dataset
from twistox.strain.stage import check_settings

CFG = {"neighbour_cutoff": 0.85, "bo_cutoff": 2.4, "born_charge": 7.12, "grid_spacing": 0.5,
       "smoothing_sigma": 1.0, "fourier_order": 6}
TI, O = 22, 8


@pytest.fixture(scope="module")
def rigid():
    return bilayer(22.62)  # Sigma13, 45-degree frame, SrO-TiO2: planes TiO2 SrO | TiO2 SrO


def _mic(d, L):
    return d - L * np.round(d / L)


def test_undistorted_and_homogeneously_deformed_bilayers_have_intact_cages(rigid):
    cages = rigid_cages(rigid, TI, O, 2.4, A)
    assert cages.x_index.shape == (np.count_nonzero(rigid.numbers == TI), 4)
    assert np.allclose(np.linalg.norm(cages.d_rigid, axis=-1), A / 2)
    c, s = np.cos(0.02), np.sin(0.02)
    for atoms in (rigid, deformed(rigid, np.array([[c, -s], [s, c]]) @ np.array([[1.01, 0.004], [0.004, 0.995]]))):
        r = b_site_offcentring(atoms, cages, O, 2.4, A)
        ti = atoms.numbers == TI
        assert np.abs(r.delta[ti]).max() < 1e-12
        assert (r.cage_flags[ti] == 0).all() and (r.cage_flags[~ti] == -1).all()
        assert (r.n_equatorial[ti] == 4).all()
    ds = strain_dataset(relaxed_dataset(rigid), CFG)
    assert int(ds["cage_changed_count"].sum()) == 0 and ds.attrs["cage_changed_total"] == 0
    assert np.nanmax(np.abs(ds["ti_offcentering"].values)) < 1e-12


def _stray_oxygen(atoms, k):
    """Index of a same-plane O outside Ti k's cage, nearest to it (~a sqrt(5)/2)."""
    L = atoms.cell[0, 0]
    plane = atoms.arrays["plane"]
    cand = np.flatnonzero((atoms.numbers == O) & (plane == plane[k]))
    d = np.linalg.norm(_mic(atoms.positions[cand, :2] - atoms.positions[k, :2], L), axis=1)
    cand, d = cand[d > 3.0], d[d > 3.0]
    return int(cand[np.argmin(d)])


def test_extra_oxygen_in_the_cage_does_not_shift_delta_and_is_flagged(rigid):
    """A stray O brought to 2.2 Å of a Ti (between two cage O): the rigid cage still gives the Ti's true
    1 pm shift, where the old 'every O within 2.4 Å' centroid was off by ~0.4 Å (P ~ 0.8 C/m^2)."""
    b = rigid.copy()
    it = b.info["interface_planes"][1]
    ti = np.flatnonzero((b.numbers == TI) & (b.arrays["plane"] == it))
    k = int(ti[0])
    j = _stray_oxygen(b, k)
    phi = np.radians(b.info["layer_angles_deg"][1] + 45.0)  # the layer's [110]: between two cage O
    b.positions[j, :2] = b.positions[k, :2] + 2.2 * np.array([np.cos(phi), np.sin(phi)])
    b.positions[k, 0] += 0.01
    cages = rigid_cages(rigid, TI, O, 2.4, A)
    r = b_site_offcentring(b, cages, O, 2.4, A)
    assert r.delta[k] == pytest.approx([0.01, 0.0], abs=1e-12)
    assert r.cage_flags[k] == CAGE_EXTRA and r.n_equatorial[k] == 5
    donors = np.flatnonzero((cages.x_index == j).any(axis=1))
    assert len(donors) == 2  # an equatorial O bridges two B sites
    for dn in cages.b_index[donors]:
        assert r.cage_flags[dn] == CAGE_BROKEN | CAGE_MOVED
    assert np.count_nonzero(r.cage_flags > 0) == 3
    # the old estimate (centroid of every same-plane O within 2.4 Å) for comparison
    i_, j_, D = neighbor_list("ijD", b, 2.4)
    m = (i_ == k) & (b.numbers[j_] == O) & (np.abs(D[:, 2]) < 0.5)
    assert np.linalg.norm(-D[m, :2].mean(axis=0)) > 0.3
    # in strain.zarr: flagged sites are counted per plane and left out of P (per atom and on the grid)
    ds = strain_dataset(relaxed_dataset(b, rigid), CFG)
    cnt = ds["cage_changed_count"]
    assert int(cnt.sel(all_planes=it)) == 3 and int(cnt.sum()) == 3
    flagged = ds["cage_changed"].values == 1
    assert flagged.sum() == 3 and flagged[k]
    assert np.isnan(ds["atom_polarization"].values[flagged]).all()
    assert ds["atom_ti_offcentering"].values[k] == pytest.approx([0.01, 0.0], abs=1e-12)
    ok = (ds["cage_changed"].values == 0)
    assert np.isfinite(ds["atom_polarization"].values[ok]).all()
    # the remaining B sites are centred: the gridded plane is 0, not the donors' ~0.5 Å
    assert np.nanmax(np.abs(ds["ti_offcentering"].sel(plane=it).values)) < 1e-9
    assert np.nanmax(np.abs(ds["polarization"].sel(plane=it).values)) < 1e-9
    assert int(ds["polarization_masked_cells"].sel(plane=it)) == 0  # 3 sites out: neighbours still reach every cell


def test_broken_bond_is_flagged_without_the_moved_bit(rigid):
    b = rigid.copy()
    cages = rigid_cages(rigid, TI, O, 2.4, A)
    j = int(cages.x_index[0, 0])
    b.positions[j] += 0.6 * cages.d_rigid[0, 0] / np.linalg.norm(cages.d_rigid[0, 0])  # 1.95 -> 2.55 Å
    r = b_site_offcentring(b, cages, O, 2.4, A)
    assert r.cage_flags[cages.b_index[0]] == CAGE_BROKEN
    assert np.count_nonzero(r.cage_flags > 0) == 1  # the other B of this O is now 1.35 Å away: still bonded


def test_bond_cutoff_checks(rigid):
    with pytest.raises(ValueError, match="bo_cutoff"):
        rigid_cages(rigid, TI, O, 1.9, A)
    L, lam = rigid.info["supercell_length"], rigid.info["moire_period"]
    for bad in (1.9, 4.5):
        with pytest.raises(ConfigError, match="strain.bo_cutoff"):
            check_settings({**CFG, "bo_cutoff": bad}, L, lam, A)
    check_settings(CFG, L, lam, A)
