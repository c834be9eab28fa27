"""Training configurations: counts, splits, homogeneous strain, registries, twisted cells, seeding."""

import numpy as np
import pytest

from twistox.supercell.builder import BilayerSpec, Perovskite
from twistox.dft.trainset import (TrainsetSettings, assign_split, bilayer_1x1, bulk_cell, generate, random_strain,
                              slab_1x1, start_cells)

MAT = Perovskite()
SPEC = BilayerSpec(material=MAT, interface="SrO-TiO2", bottom_cells=1, top_cells=1, interlayer_spacing=1.9525)


def _gen(seed=0, **kw):
    s = TrainsetSettings(**{"bulk": 6, "slab": 2, "bilayer_grid": 2, "md": 0, **kw})
    return generate(MAT, SPEC, s, np.random.default_rng(seed))


def test_counts_ids_and_stratified_split():
    frames = _gen(test_fraction=0.34)
    kinds = [f.info["config_type"] for f in frames]
    assert kinds.count("bulk") == 6 and kinds.count("slab") == 2 and kinds.count("bilayer") == 4
    assert [f.info["frame_id"] for f in frames] == list(range(len(frames)))
    for k in ("bulk", "slab", "bilayer"):
        sp = [f.info["split"] for f in frames if f.info["config_type"] == k]
        assert "train" in sp  # every kind is trained on
    assert sum(f.info["split"] == "test" for f in frames if f.info["config_type"] == "bulk") == 2


def test_same_seed_same_frames_other_seed_differs():
    a, b, c = _gen(1), _gen(1), _gen(2)
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
    assert not np.allclose(a[0].positions, c[0].positions)


def test_bulk_strain_is_homogeneous():
    rng = np.random.default_rng(3)
    eps = random_strain(rng, 0.03)
    assert np.allclose(eps, eps.T) and np.abs(eps).max() <= 0.03
    at = bulk_cell(MAT)
    frac = at.get_scaled_positions()
    at.set_cell(at.cell @ (np.eye(3) + eps), scale_atoms=True)
    # homogeneous strain: fractional coordinates unchanged, cell = a (1 + eps)
    assert np.allclose(at.get_scaled_positions(), frac)
    assert np.allclose(at.cell, MAT.a * (np.eye(3) + eps))
    assert at.get_volume() == pytest.approx(MAT.a**3 * np.linalg.det(np.eye(3) + eps))


def test_unstrained_unrattled_bulk_is_perovskite():
    at = bulk_cell(MAT)
    d = at.get_all_distances(mic=True)
    ti = [i for i, s in enumerate(at.get_chemical_symbols()) if s == "Ti"][0]
    o = [i for i, s in enumerate(at.get_chemical_symbols()) if s == "O"]
    assert np.allclose(d[ti, o], MAT.a / 2)  # Ti-O = a/2 (1.9525 Å)


def test_slab_terminations_and_stoichiometry():
    s1 = slab_1x1(MAT, 4, 0, 8.0)
    assert s1.get_chemical_formula(mode="metal") == "Sr2Ti2O6"
    z = s1.positions[:, 2]
    assert s1[int(np.argmin(z))].symbol == "Sr" and not s1.pbc[2]
    s2 = slab_1x1(MAT, 5, 1, 8.0)
    assert s2.get_chemical_formula(mode="metal") == "Sr2Ti3O8"  # TiO2 on both faces


def test_bilayer_registry_shift_and_spacing():
    a0 = bilayer_1x1(SPEC, (0.0, 0.0), 2.0)
    a1 = bilayer_1x1(SPEC, (0.5, 0.25), 2.0)
    top = a0.arrays["layer"] == 1
    assert a0.get_chemical_formula(mode="metal") == "Sr2Ti2O6"
    d = (a1.positions[top, :2] - a0.positions[top, :2]) / MAT.a
    d -= np.round(d - np.array([0.5, 0.25]))
    assert np.allclose(d, [0.5, 0.25])  # top layer moved by the shift, bottom layer fixed
    assert np.allclose(a1.positions[~top], a0.positions[~top])
    zb = a0.positions[~top, 2].max()
    zt = a0.positions[top, 2].min()
    assert zt - zb == pytest.approx(2.0)
    # "SrO-TiO2" = bottom layer's interface plane - top layer's interface plane
    assert {a0[i].symbol for i in np.where(np.isclose(a0.positions[:, 2], zb))[0]} == {"Sr", "O"}
    assert {a0[i].symbol for i in np.where(np.isclose(a0.positions[:, 2], zt))[0]} == {"Ti", "O"}


def test_twisted_sigma5_cells():
    frames = _gen(bulk=0, slab=0, bilayer_grid=0, twisted_angles_deg=(36.87,), twisted_grid=2, rattle=0.0)
    assert len(frames) == 4 and all(len(f) == 50 for f in frames)
    assert frames[0].info["sigma"] == 5
    assert np.allclose(frames[0].cell.lengths()[:2], MAT.a * np.sqrt(5))


def test_start_cells_kinds():
    s = TrainsetSettings()
    cells = start_cells(["bulk", "bilayer", "twisted"], MAT, SPEC, s, (36.87,))
    assert [c.info["config_type"] for c in cells] == ["bulk", "bilayer", "bilayer", "twisted"]
    with pytest.raises(ValueError, match="allowed"):
        start_cells(["graphene"], MAT, SPEC, s)


def test_single_frame_kind_is_always_train():
    frames = [bulk_cell(MAT)]
    frames[0].info["config_type"] = "bulk"
    assign_split(frames, 0.5, np.random.default_rng(0))
    assert frames[0].info["split"] == "train"


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.5, 0.5), (0.5, 0.0), (0.25, 0.25), (0.3, 0.7)])
def test_contact_spacing_is_the_smallest_clash_free_spacing(shift):
    from twistox.dft.trainset import LIKE, contact_spacing

    d_min = 1.9
    d = contact_spacing(SPEC, shift, d_min)
    assert d >= SPEC.interlayer_spacing

    def margin(spacing):
        at = bilayer_1x1(SPEC, shift, spacing)
        lay, an = at.arrays["layer"], np.array([s == "O" for s in at.get_chemical_symbols()])
        from ase.geometry import get_distances

        _, D = get_distances(at.positions, cell=at.cell, pbc=[True, True, False])
        m = np.inf
        for i in np.where(lay == 0)[0]:
            for j in np.where(lay == 1)[0]:
                m = min(m, D[i, j] - d_min * (LIKE if an[i] == an[j] else 1.0))
        return m

    assert margin(d) >= -1e-9  # no clash at the chosen spacing
    if d > SPEC.interlayer_spacing + 1e-9:
        assert margin(d) < 1e-6 and margin(d - 0.05) < 0  # and it is the smallest such spacing
    if shift == (0.0, 0.0):
        assert d == pytest.approx(SPEC.interlayer_spacing)  # AA = bulk continuation, Ti-O 1.95 Å
