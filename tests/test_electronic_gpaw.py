"""GPAW LCAO +U against known answers: bulk SrTiO3 (band gap and band-edge character against plane waves),
DOS normalisation, a 4-fold symmetric LDOS map, resume from the checkpoint. Each < ~2 min on one thread."""

import numpy as np
import pytest

# real GPAW SCFs (~2 min together on 2 cores): in `make test`, not in `make test-fast`
pytestmark = pytest.mark.slow

pytest.importorskip("gpaw")

from ase import Atoms  # noqa: E402

from twistox.electronic import calculation, stage  # noqa: E402
from twistox.electronic import dos as D  # noqa: E402
from twistox.electronic import regions as R  # noqa: E402

A = 3.905  # Å, SrTiO3


def _sto():
    return Atoms("SrTiO3", scaled_positions=[[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                 cell=[A] * 3, pbc=True)


@pytest.fixture(scope="module")
def bulk_settings():
    # Γ-centred 2×2×2: Γ, X, M, R, i.e. the VBM (R) and CBM (Γ) of SrTiO3; coarse grid for speed
    return stage.check_settings({"kpt_density": 1.2, "h": 0.25, "ldos_z_halfwidth": None})


@pytest.fixture(scope="module")
def bulk_lcao(bulk_settings, tmp_path_factory):
    atoms = _sto()
    groups = np.array([4, 4, 4, 4, 4], np.int8)
    ck = tmp_path_factory.mktemp("ck")
    res = calculation.run_lcao(atoms, bulk_settings, groups, len(R.GROUPS), None, checkpoint_dir=ck)
    res.checkpoint_dir = ck
    return res


def test_bulk_mulliken_weights_are_normalised(bulk_lcao):
    np.testing.assert_allclose(bulk_lcao.channel_weights.sum(-1), 1.0, atol=1e-8)
    np.testing.assert_allclose(bulk_lcao.group_weights.sum(-1), 1.0, atol=1e-8)
    assert bulk_lcao.n_electrons == 40                     # Sr 10, Ti 12, O 3×6 (GPAW valence)


def test_bulk_gap_and_edge_character_against_plane_waves(bulk_settings, bulk_lcao):
    eps, wk = bulk_lcao.eigenvalues, bulk_lcao.k_weights
    edges = D.band_edges(eps, bulk_lcao.n_electrons)
    ch = list(bulk_lcao.channels)
    vb = dict(zip(ch, D.edge_character(eps, wk, bulk_lcao.channel_weights, edges["vbm"])))
    cb = dict(zip(ch, D.edge_character(eps, wk, bulk_lcao.channel_weights, edges["cbm"])))
    pw = calculation.pw_band_edges(_sto(), bulk_settings, ecut=350.0, kpts=(2, 2, 2))
    print(f"LCAO gap {edges['gap']:.3f} eV, PW gap {pw['gap']:.3f} eV; VBM O-p {vb['O-p']:.3f} / "
          f"{pw['vbm_character']['O-p']:.3f}, CBM Ti-d {cb['Ti-d']:.3f} / {pw['cbm_character']['Ti-d']:.3f}")
    # indirect gap R -> Γ; LDA+U(4.3) in both: dzp LCAO within 0.35 eV of plane waves
    assert 1.5 < pw["gap"] < 3.5
    assert edges["gap"] == pytest.approx(pw["gap"], abs=0.35)
    # valence top O 2p, conduction bottom Ti 3d (t2g) in both bases
    assert vb["O-p"] > 0.85 and pw["vbm_character"]["O-p"] > 0.85
    assert cb["Ti-d"] > 0.75 and pw["cbm_character"]["Ti-d"] > 0.75


def test_bulk_dos_integrates_to_the_valence_electrons(bulk_lcao):
    edges = D.band_edges(bulk_lcao.eigenvalues, bulk_lcao.n_electrons)
    eps = bulk_lcao.eigenvalues - edges["vbm"]
    E = np.arange(eps.min() - 1.0, 4.0, 0.005)
    dos = D.gaussian_dos(eps, bulk_lcao.k_weights, E, 0.05)
    assert D.integrated_states(dos, E, 0.5 * edges["gap"]) == pytest.approx(bulk_lcao.n_electrons, abs=1e-3)
    # the window LDOS map holds the window's electrons, 2·Σ w_k·(states in the window) per cell, less the part
    # PAW keeps in the augmentation spheres: O 2p pseudo wave functions carry ~87 % of the norm (measured 0.873)
    n_win = 2 * np.sum(bulk_lcao.k_weights[:, None] * ((eps >= -0.3 - 1e-9) & (eps <= 1e-6)))
    area = A * A / bulk_lcao.ldos_map.size
    assert 0.8 * n_win < bulk_lcao.ldos_map.sum() * area < n_win


def test_checkpoint_resumes_without_scf(bulk_settings, bulk_lcao, monkeypatch):
    def no_scf(*a, **k):
        raise AssertionError("a resumed run must not start an SCF")

    assert not bulk_lcao.from_checkpoint
    monkeypatch.setattr(calculation, "make_calculator", no_scf)
    again = calculation.run_lcao(_sto(), bulk_settings, np.full(5, 4, np.int8), len(R.GROUPS), None,
                                 checkpoint_dir=bulk_lcao.checkpoint_dir)
    assert again.from_checkpoint
    np.testing.assert_array_equal(again.eigenvalues, bulk_lcao.eigenvalues)
    assert list(again.channels) == list(bulk_lcao.channels)
    # other settings -> other key: the stored result is not used
    with pytest.raises(AssertionError, match="SCF"):
        calculation.run_lcao(_sto(), {**bulk_settings, "hubbard_u": {"Ti": 5.3}}, np.full(5, 4, np.int8),
                             len(R.GROUPS), None, checkpoint_dir=bulk_lcao.checkpoint_dir)


def test_symmetric_supercell_gives_a_symmetric_ldos_map(tmp_path):
    """2×2×1 bulk supercell at Γ: the window LDOS integrated over z has the 4-fold axis and mirrors of the
    square cell (about the cell centre on the cell-centred grid)."""
    atoms = _sto().repeat((2, 2, 1))
    s = stage.check_settings({"kpt_density": 0.0, "h": 0.25, "ldos_z_halfwidth": None})
    n = 16
    L = 2 * A
    x = (np.arange(n) + 0.5) * L / n
    plane = np.where(atoms.positions[:, 2] < 1.0, 0, 1)
    code = np.zeros((n, n), np.int8)
    code[6:10, 6:10] = 2                                   # a symmetric 'node' patch at the cell centre
    groups = R.atom_groups(atoms.positions, plane, [1], code, x, x, L)
    ds = stage.compute(atoms, s, groups, code, True, x, x, None, checkpoint_dir=tmp_path / "ck")
    m = ds["ldos_window"].values
    assert m.max() > 0
    tol = 1e-3 * m.max()
    np.testing.assert_allclose(np.rot90(m), m, atol=tol)
    np.testing.assert_allclose(m[::-1, :], m, atol=tol)
    np.testing.assert_allclose(m.T, m, atol=tol)
    # the patch sits on the Sr column at the cell centre: the window states (O 2p, nonbonding at R/M) avoid the
    # empty Sr2+ site, so the patch is depleted, not enriched; the three regions share all of the map
    at = ds.attrs
    assert at["area_fraction_nodes"] == pytest.approx(16 / 256)
    assert at["ldos_fraction_nodes"] < 0.5 * at["area_fraction_nodes"]
    assert at["ldos_fraction_nodes"] + at["ldos_fraction_lines"] + at["ldos_fraction_domains"] == pytest.approx(1.0)
    assert at["ldos_fraction_nodes"] == pytest.approx(m[6:10, 6:10].sum() / m.sum())
    # PDOS groups sum to the DOS, the DOS integrates to the valence electrons
    np.testing.assert_allclose(ds["pdos_group"].sum("group"), ds["dos_total"], rtol=1e-8, atol=1e-10)
    assert ds.attrs["integrated_dos_to_midgap"] == pytest.approx(ds.attrs["n_electrons"], abs=0.02)
    from twistox.electronic import figures

    figures.plot_pdos(ds, str(tmp_path / "pdos.png"))
    figures.plot_ldos_map(ds, None, str(tmp_path / "ldos.png"))
    assert (tmp_path / "pdos.png").stat().st_size > 0
