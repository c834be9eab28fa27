"""Committee force disagreement of the relax stage (issue 12 item 9) and MD block averages (item 10)."""

import logging

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

from twistox.relax.committee import Committee, force_std, frame_summary


class Offset(Calculator):
    """``base`` plus a constant force vector ``c`` (eV/Å) on every atom (energy - c·sum(x), consistent)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, base, c):
        super().__init__()
        self.base, self.c = base, np.asarray(c, float)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.base
        self.results = {"energy": a.get_potential_energy() - float(self.c @ a.positions.sum(0)),
                        "forces": a.get_forces() + self.c}


def lj():
    return LennardJones(sigma=1.6, epsilon=0.02, rc=4.0, smooth=True)


def bilayer():
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    return build_bilayer(nearest_csl(36.87, 30), BilayerSpec(bottom_cells=1, top_cells=1))


def test_force_std_known_answers():
    rng = np.random.default_rng(0)
    F = 10.0 * rng.normal(size=(7, 3))  # large common forces, as on a rigid interface
    # identical members: exactly zero for any K (deviations are taken from member 0)
    for k in (2, 3, 5):
        assert np.array_equal(force_std(np.repeat(F[None], k, axis=0)), np.zeros(7))
    c = np.array([0.3, -0.4, 1.2])  # |c| = 1.3 eV/Å
    # two members differing by c: each deviates by +-c/2 -> sigma = |c|/2 on every atom
    assert np.allclose(force_std(np.stack([F, F + c])), 0.65, rtol=0, atol=1e-12)
    # three members F, F + c, F + 2c: deviations -c, 0, c -> sigma = |c| sqrt(2/3)
    assert np.allclose(force_std(np.stack([F, F + c, F + 2 * c])), 1.3 * np.sqrt(2 / 3), rtol=0, atol=1e-12)
    # the definition: population std of the vector, squared deviations summed over x, y, z
    G = rng.normal(size=(4, 7, 3))
    ref = np.sqrt(((G - G.mean(0)) ** 2).sum(-1).mean(0))
    assert np.allclose(force_std(G), ref, rtol=1e-13, atol=0)
    # one member: undefined, NaN (never a fake zero)
    assert np.isnan(force_std(F[None])).all() and force_std(F[None]).shape == (7,)
    mx, p99 = frame_summary(np.arange(101.0))
    assert mx == 100.0 and p99 == pytest.approx(99.0)
    assert np.isnan(frame_summary(np.full(3, np.nan))).all()


def test_committee_of_ase_calculators():
    atoms = bilayer()
    x = atoms.positions + np.random.default_rng(1).normal(scale=0.05, size=atoms.positions.shape)
    same = Committee.from_calculators([lj(), lj(), lj()], atoms)
    assert np.array_equal(same.per_atom_std(x), np.zeros(len(atoms)))
    c = np.array([0.0, 0.6, -0.8])  # |c| = 1
    two = Committee.from_calculators([lj(), Offset(lj(), c)], atoms)
    assert np.allclose(two.per_atom_std(x), 0.5, rtol=0, atol=1e-12)
    one = Committee.from_calculators([lj()], atoms)
    assert np.isnan(one.per_atom_std(x)).all()


RELAX_CFG = {"translation_grid": 1, "scan_fmax": 0.05, "scan_max_steps": 20, "fmax": 0.02, "max_steps": 100,
             "maxstep": 0.1, "batch_size": 1, "neighbour_skin": 0.5, "checkpoint_interval_s": 0.0,
             "md": {"enabled": True, "temperature_K": 300.0, "timestep_fs": 1.0, "total_ps": 0.023,
                    "discard_ps": 0.005, "friction_per_ps": 10.0, "sample_every": 2, "blocks": 4,
                    "equilibration_friction_per_ps": 100.0},
             "committee_std": {"enabled": True, "md_every": 3, "warn_eV_per_A": 0.2},
             "contact_guard": {"enabled": False}}  # LJ stand-in pulls Sr pairs to 1.9 Å: the guard would stop it


def test_relax_stores_the_committee_std_and_warns(tmp_path, caplog):
    """Two members differing by a constant 1 eV/Å force: sigma = 0.5 eV/Å on every atom of the relaxed
    structure and of every sampled MD frame; above the 0.2 eV/Å threshold -> one WARNING each; the report
    row carries the numbers; positions_blocks average to positions."""
    from twistox.core.io import read_dataset, structure_dataset, write_dataset
    from twistox.relax.figures import plot_md
    from twistox.relax.stage import relax_bilayer, relaxed_dataset
    from twistox.report.stage import sample_row

    atoms = bilayer()
    committee = Committee.from_calculators([lj(), Offset(lj(), [0.0, 0.6, -0.8])], atoms)
    with caplog.at_level(logging.WARNING, logger="twistox"):
        out = relax_bilayer(atoms, lj(), RELAX_CFG, np.random.default_rng(0), committee=committee)
    warns = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warns) == 2 and all("0.500 eV/Å" in w and "0.200 eV/Å" in w and "extrapolat" in w for w in warns)
    ds = relaxed_dataset(atoms, out, dict(structure_dataset(atoms).attrs))
    d = tmp_path / "sample"
    write_dataset(structure_dataset(atoms), d / "supercell.zarr", stage="supercell")
    write_dataset(ds, d / "relaxed.zarr", stage="relax")
    ds = read_dataset(d / "relaxed.zarr")
    assert np.allclose(ds["committee_force_std"].values, 0.5, atol=1e-12)
    # 23 steps, observed every sample_every * md_every = 6 steps
    assert np.array_equal(ds["md_committee_time"].values, [6.0, 12.0, 18.0])
    assert np.allclose(ds["md_committee_std_max"].values, 0.5) and np.allclose(ds["md_committee_std_p99"].values, 0.5)
    for k in ("committee_std_max", "committee_std_p99", "md_committee_std_max", "md_committee_std_p99_max"):
        assert ds.attrs[k] == pytest.approx(0.5, abs=1e-12), k
    assert ds.attrs["committee_size"] == 2 and ds.attrs["committee_std_warn_eV_per_A"] == 0.2
    # window of 18 steps in 4 blocks of 4: 2 steps trimmed at its start
    assert ds["positions_blocks"].dims == ("block", "atom", "xyz") and ds.sizes["block"] == 4
    assert ds.attrs["md_frames_averaged"] == 16 and ds.attrs["md_blocks"] == 4
    assert np.abs(ds["positions_blocks"].values.mean(0) - ds["positions"].values).max() < 1e-12
    row = sample_row("STO", "sample", d)
    assert row["relax_committee_std_max_eV_per_A"] == pytest.approx(0.5)
    assert row["relax_committee_std_p99_eV_per_A"] == pytest.approx(0.5)
    assert row["relax_md_committee_std_max_eV_per_A"] == pytest.approx(0.5)
    plot_md(ds, tmp_path / "relax_md.png", RELAX_CFG["md"])
    assert (tmp_path / "relax_md.png").stat().st_size > 10_000


def test_one_model_gives_nan_not_zero(caplog):
    from twistox.core.io import structure_dataset
    from twistox.relax.stage import relax_bilayer, relaxed_dataset

    atoms = bilayer()
    with caplog.at_level(logging.WARNING, logger="twistox"):
        out = relax_bilayer(atoms, lj(), RELAX_CFG, np.random.default_rng(0),
                            committee=Committee.from_calculators([lj()], atoms))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    ds = relaxed_dataset(atoms, out, dict(structure_dataset(atoms).attrs))
    assert np.isnan(ds["committee_force_std"].values).all() and "md_committee_time" not in ds.coords
    assert np.isnan(ds.attrs["committee_std_max"]) and np.isnan(ds.attrs["md_committee_std_max"])
    assert "undefined" in ds.attrs["committee_std_status"] and ds.attrs["committee_size"] == 1
    # not evaluated at all: NaN attrs and a status saying so
    ds = relaxed_dataset(atoms, relax_bilayer(atoms, lj(), RELAX_CFG, np.random.default_rng(0)),
                         dict(structure_dataset(atoms).attrs))
    assert "committee_force_std" not in ds and np.isnan(ds.attrs["committee_std_p99"])
    assert "not evaluated" in ds.attrs["committee_std_status"]


def test_mace_committee_matches_the_calculator_force_std(tmp_path):
    """Batched per-member MACE evaluators: two copies of one model -> exactly 0; two different models ->
    the committee calculator's own force_std (twistox.mlip.calculator, mode mean)."""
    pytest.importorskip("mace")
    from test_relax import tiny_mace

    from twistox.mlip.calculator import load_calculator

    atoms = bilayer()
    x = atoms.positions + np.random.default_rng(2).normal(scale=0.05, size=atoms.positions.shape)
    x[:, :2] += atoms.cell[0, 0]  # unwrapped positions
    m0, m1 = tiny_mace(tmp_path / "a.model"), tiny_mace(tmp_path / "b.model", seed=1)
    same = Committee.from_models([m0, m0], atoms, "cpu", "float64", skin=0.5)
    assert np.array_equal(same.per_atom_std(x), np.zeros(len(atoms)))
    calc = load_calculator([m0, m1], mode="mean", device="cpu")
    diff = Committee.from_models([m0, m1], atoms, "cpu", "float64", skin=0.5, calc=calc)
    ref = atoms.copy()
    ref.positions = x
    ref.calc = calc
    ref.get_forces()
    s = diff.per_atom_std(x)
    assert s.max() > 1e-3 and np.allclose(s, calc.results["force_std"], rtol=1e-9, atol=1e-12)


def test_check_settings_blocks():
    from twistox.core.config import ConfigError, with_schema_defaults
    from twistox.relax.stage import check_settings

    cfg = with_schema_defaults("relax", {"md": {"total_ps": 0.01, "discard_ps": 0.005, "blocks": 5}})
    check_settings(cfg)  # 5 steps in 5 blocks: fine
    cfg["md"]["blocks"] = 6
    with pytest.raises(ConfigError, match=r"relax\.md\.blocks.*only 5 steps"):
        check_settings(cfg)
    with pytest.raises(ConfigError, match="relax.md.blocks"):
        with_schema_defaults("relax", {"md": {"blocks": 1}})
    assert with_schema_defaults("relax", {})["committee_std"] == {"enabled": True, "md_every": 5,
                                                                  "warn_eV_per_A": 0.2}


def test_stage_run_evaluates_the_whole_committee_with_committee_mode_first(tmp_path):
    """stage.run with committee_mode first (MD on model 0) still evaluates both model files: the relaxed
    structure's std equals the two-model calculator's force_std there, and the MD trace and blocks are stored."""
    pytest.importorskip("mace")
    from test_relax import tiny_mace

    from twistox.core.config import with_schema_defaults
    from twistox.core.io import structure_dataset
    from twistox.mlip.calculator import load_calculator
    from twistox.relax import stage

    models = [tiny_mace(tmp_path / "a.model"), tiny_mace(tmp_path / "b.model", seed=1)]
    atoms = bilayer()
    relax = with_schema_defaults("relax", {
        "committee_mode": "first", "translation_grid": 1, "scan_max_steps": 2, "max_steps": 2,
        "checkpoint_interval_s": 0.0, "lattice_constant": "config",
        "md": {"total_ps": 0.012, "discard_ps": 0.004, "sample_every": 2, "blocks": 2},
        "committee_std": {"md_every": 2}})
    ds, _ = stage.run(structure_dataset(atoms), models, {"relax": relax, "device": "cpu"}, np.random.default_rng(0), 1)
    ref = atoms.copy()
    ref.positions = ds["positions_relaxed"].values
    ref.calc = load_calculator(models, mode="mean", device="cpu")
    ref.get_forces()
    assert np.allclose(ds["committee_force_std"].values, ref.calc.results["force_std"], rtol=1e-9, atol=1e-12)
    assert ds.attrs["committee_std_max"] == pytest.approx(ref.calc.results["force_std_max"], rel=1e-9)
    assert np.array_equal(ds["md_committee_time"].values, [4.0, 8.0, 12.0])
    assert (ds["md_committee_std_max"].values >= ds["md_committee_std_p99"].values).all()
    assert ds.attrs["md_committee_std_max"] == ds["md_committee_std_max"].values.max() > 0
    assert ds.sizes["block"] == 2 and ds.attrs["md_frames_averaged"] == 8


def test_relax_killed_in_md_resumes_bit_identically(tmp_path, caplog):
    """A relaxation killed mid-MD resumes from its checkpoint to the very same positions, positions_blocks and
    committee trace as an uninterrupted run (the library-level twin of test_resume's relax case)."""
    from twistox.relax.stage import relax_bilayer

    class Counting(LennardJones):
        calls, kill_at = 0, None

        def calculate(self, *a, **k):
            Counting.calls += 1
            if Counting.calls == Counting.kill_at:
                raise KeyboardInterrupt
            super().calculate(*a, **k)

    atoms = bilayer()
    members = lambda: [lj(), Offset(lj(), [0.1, 0.0, 0.0]), LennardJones(sigma=1.62, epsilon=0.02, rc=4.0,  # noqa: E731
                                                                         smooth=True)]
    kw = dict(sigma=1.6, epsilon=0.02, rc=4.0, smooth=True)
    full = relax_bilayer(atoms, Counting(**kw), RELAX_CFG, np.random.default_rng(0), checkpoint_dir=tmp_path / "a",
                         checkpoint_key="k", committee=Committee.from_calculators(members(), atoms))
    Counting.calls, Counting.kill_at = 0, Counting.calls - 8  # 8 force calls before the end of the MD
    with pytest.raises(KeyboardInterrupt):
        relax_bilayer(atoms, Counting(**kw), RELAX_CFG, np.random.default_rng(0), checkpoint_dir=tmp_path / "b",
                      checkpoint_key="k", committee=Committee.from_calculators(members(), atoms))
    Counting.kill_at = None
    with caplog.at_level(logging.INFO, logger="twistox"):
        res = relax_bilayer(atoms, Counting(**kw), RELAX_CFG, np.random.default_rng(0), checkpoint_dir=tmp_path / "b",
                            checkpoint_key="k", committee=Committee.from_calculators(members(), atoms))
    assert "md: resumed from checkpoint at step 14 of 23" in caplog.text
    assert np.array_equal(res.positions, full.positions)
    assert np.array_equal(res.md.block_positions, full.md.block_positions)
    for name in ("per_atom", "md_time_fs", "md_max", "md_p99"):
        assert np.array_equal(getattr(res.committee, name), getattr(full.committee, name)), name
    assert len(full.committee.md_max) == 3 and (full.committee.md_max > 0).all()
