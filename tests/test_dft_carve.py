"""Carved periodic cells (twistox.dft.carve) against known answers: the carved cell reproduces the
environment it was cut from; a carved cell of an untwisted bilayer is a perfect periodic crystal."""

from __future__ import annotations

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from twistox.dft.carve import carve_cell, carve_uncertain, most_uncertain, patch_vector
from twistox.dft.trainset import bilayer_1x1
from twistox.supercell.builder import BilayerSpec, Perovskite, build_bilayer
from twistox.supercell.lattice import nearest_csl, rotation2

MAT = Perovskite()


def _spec(**kw) -> BilayerSpec:
    return BilayerSpec(material=MAT, interface="SrO-TiO2", bottom_cells=1, top_cells=1, vacuum=8.0, **kw)


def _shell(atoms, i: int, r: float) -> np.ndarray:
    """Neighbour vectors of atom i within r [Å], sorted, with atomic numbers: (n, 4)."""
    ii, jj, D = neighbor_list("ijD", atoms, r)
    sel = ii == i
    rows = np.column_stack([D[sel], atoms.numbers[jj[sel]]])
    return rows[np.lexsort(np.round(rows, 6).T[::-1])]


def test_patch_vector():
    assert patch_vector(5) == (2, 1) and patch_vector(9) == (3, 0) and patch_vector(13) == (3, 2)
    assert patch_vector(17) == (4, 1)
    with pytest.raises(ValueError, match="sigma"):
        patch_vector(7)


@pytest.mark.parametrize("sigma", [5, 9, 13])
def test_carved_cell_reproduces_source_environment(sigma):
    src = build_bilayer(nearest_csl(12.68), _spec(translation=(0.3, 0.1)))  # Sigma41, 410 atoms
    assert src.info["sigma"] == 41
    rng = np.random.default_rng(1)
    src.positions += rng.normal(0, 0.05, src.positions.shape)  # no symmetry to hide errors
    src.set_pbc((True, True, False))
    for centre in (0, int(np.argmax(src.arrays["layer"])), 137):
        cut = carve_cell(src, centre, sigma=sigma)
        r = cut.info["exact_radius"] - 0.05
        assert r > 1.9  # covers at least the first B-O / A-O shells
        k = int(np.flatnonzero(cut.arrays["source_index"] == centre)[0])
        rot = np.eye(3)
        rot[:2, :2] = rotation2(cut.info["carve_rotation_deg"])
        ref = _shell(src, centre, r)
        ref[:, :3] = ref[:, :3] @ rot.T  # into the carved cell's axis-aligned frame
        ref = ref[np.lexsort(np.round(ref, 6).T[::-1])]
        got = _shell(cut, k, r)
        assert got.shape == ref.shape and len(got) > 3
        np.testing.assert_allclose(got, ref, atol=1e-6)
        assert cut.info["carve_center"] == centre and cut.info["source_sigma"] == 41
        assert np.allclose(np.asarray(cut.cell), np.diag([cut.cell[0, 0]] * 2 + [src.cell[2, 2]]))
        assert cut.cell[0, 0] == pytest.approx(MAT.a * np.sqrt(sigma))


@pytest.mark.parametrize("sigma", [5, 9])
def test_carved_untwisted_bilayer_is_perfect_crystal(sigma):
    unit = bilayer_1x1(_spec(), (0.5, 0.25))
    big = unit.repeat((6, 6, 1))
    cut = carve_cell(big, 3, sigma=sigma, a=MAT.a)
    assert len(cut) == sigma * len(unit) and cut.info["n_seam_removed"] == 0 and cut.info["stoichiometric"]
    # every atom (seam included) has the environment of its site in the infinite crystal
    src_idx = cut.arrays["source_index"]
    ic, dc = neighbor_list("id", cut, 6.0)
    ib, db = neighbor_list("id", big, 6.0)
    for k in range(len(cut)):
        np.testing.assert_allclose(np.sort(dc[ic == k]), np.sort(db[ib == src_idx[k]]), atol=1e-6)


def test_seam_contacts_removed_and_reported():
    src = build_bilayer(nearest_csl(12.68), _spec())
    cut = carve_cell(src, 5, sigma=9, min_distance=1.5)
    ii, jj, dd = neighbor_list("ijd", cut, 1.5)
    assert len(dd) == 0 or dd.min() >= 1.5 - 1e-9
    assert cut.info["composition"] == cut.get_chemical_formula()
    assert isinstance(cut.info["stoichiometric"], bool)
    # the provenance survives extxyz (the labeller's format)
    import io

    from ase.io import read, write

    buf = io.StringIO()
    write(buf, cut, format="extxyz")
    back = read(io.StringIO(buf.getvalue()), format="extxyz")
    assert back.info["carve_center"] == 5 and back.info["config_type"] == "twisted_carved"


def test_most_uncertain_separation_and_order():
    src = build_bilayer(nearest_csl(12.68), _spec())
    std = np.random.default_rng(0).random(len(src))
    picked = most_uncertain(std, src.positions, np.asarray(src.cell), 4, 6.0)
    assert picked[0] == int(np.argmax(std)) and len(picked) == 4
    cells = carve_uncertain(src, std, 2, sigma=5)
    assert [c.info["carve_center"] for c in cells] == picked[:2]
    assert all(c.info["config_type"] == "twisted_carved" for c in cells)


def test_bad_input():
    src = build_bilayer(nearest_csl(36.87), _spec())  # Sigma5, side 8.7 Å
    with pytest.raises(ValueError, match="sigma"):
        carve_cell(src, 0, sigma=9)
    with pytest.raises(ValueError, match="center"):
        carve_cell(src, len(src), sigma=4)


def test_target_sigma145_carves_stoichiometric_3x3_cells():
    """Sigma145 (6.73 deg, the network demo): 3 x 3-cell patches are stoichiometric (90 atoms = 2 x 9 SrTiO3
    ratio; the origin search finds one) and keep the centre's environment out to exact_radius."""
    src = build_bilayer(nearest_csl(6.73, 150), _spec())
    assert src.info["sigma"] == 145
    for centre in (0, 700, 1400):
        cut = carve_cell(src, centre, sigma=9)
        assert cut.info["stoichiometric"] and len(cut) == 90 and cut.get_chemical_formula() == "O54Sr18Ti18"
        k = int(np.flatnonzero(cut.arrays["source_index"] == centre)[0])
        r = cut.info["exact_radius"] - 0.05
        got = np.sort(np.linalg.norm(_shell(cut, k, r)[:, :3], axis=1))
        ref = np.sort(np.linalg.norm(_shell(src, centre, r)[:, :3], axis=1))
        np.testing.assert_allclose(got, ref, atol=1e-6)
