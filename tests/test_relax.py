"""Batched FIRE, checkpoint/resume, Langevin MD averaging, batched MACE evaluation."""

import numpy as np
import pytest
from ase.calculators.morse import MorsePotential
from ase.cluster import Icosahedron

from twistox.core.checkpoint import Checkpoint
from twistox.core.md import AseEvaluator, kinetic_temperature
from twistox.relax.evaluators import MaceBatchEvaluator
from twistox.relax.fire import fire_relax
from twistox.relax.md import langevin_md
from twistox.relax.scan import translate_top_layer, translation_grid


def morse_batch(n=3, seed=0):
    atoms = Icosahedron("Cu", 2)
    atoms.center(vacuum=5.0)
    rng = np.random.default_rng(seed)
    pos = np.stack([atoms.positions + rng.normal(scale=0.15, size=atoms.positions.shape) for _ in range(n)])
    return atoms, AseEvaluator(atoms, MorsePotential(epsilon=0.5, r0=2.5, rho0=6.0)), pos


def test_fire_lowers_energy_and_reaches_fmax():
    atoms, ev, pos = morse_batch()
    r = fire_relax(ev, pos, fmax=1e-3, max_steps=2000, maxstep=0.1)
    assert r.converged.all() and (r.fmax < 1e-3).all()
    assert (r.energies < r.initial_energies - 0.1).all()
    # the reported forces are those of the returned positions
    e, f = ev.evaluate(r.positions, range(3))
    assert np.allclose(e, r.energies) and (np.linalg.norm(f, axis=2).max(1) < 1e-3).all()


def test_batch_is_independent_of_batch_size():
    atoms, ev, pos = morse_batch()
    a = fire_relax(ev, pos, fmax=1e-2, max_steps=500, batch_size=3)
    b = fire_relax(ev, pos, fmax=1e-2, max_steps=500, batch_size=1)
    single = fire_relax(ev, pos[1:2], fmax=1e-2, max_steps=500)
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.steps, b.steps)
    assert np.array_equal(a.positions[1], single.positions[0])


def test_fire_step_is_capped_per_atom():
    atoms, ev, pos = morse_batch(1)
    seen = []
    prev = [pos[0].copy()]

    def cb(step, x):
        seen.append(np.linalg.norm(x[0] - prev[0], axis=1).max())
        prev[0] = x[0].copy()

    fire_relax(ev, pos, fmax=1e-3, max_steps=50, maxstep=0.02, callback=cb)
    assert max(seen) <= 0.02 + 1e-12


def test_killed_relaxation_resumes(tmp_path):
    atoms, ev, pos = morse_batch(2)
    full = fire_relax(ev, pos, fmax=1e-3, max_steps=2000)

    class Killed(Exception):
        pass

    def kill(step, x):
        if step == 40:
            raise Killed

    ck = Checkpoint(tmp_path, key="k1", interval_s=0.0)
    with pytest.raises(Killed):
        fire_relax(ev, pos, fmax=1e-3, max_steps=2000, checkpoint=ck, callback=kill)
    n0 = ev.n_calls
    res = fire_relax(ev, pos, fmax=1e-3, max_steps=2000, checkpoint=Checkpoint(tmp_path, key="k1", interval_s=0.0))
    assert np.array_equal(res.positions, full.positions)
    assert ev.n_calls - n0 < full.steps.sum() - 60  # did not start from zero
    # another key (other input or settings) ignores the file
    assert Checkpoint(tmp_path, key="other").load("fire") is None
    # a finished phase is not recomputed
    n1 = ev.n_calls
    again = fire_relax(ev, pos, fmax=1e-3, max_steps=2000, checkpoint=Checkpoint(tmp_path, key="k1"))
    assert ev.n_calls == n1 and np.array_equal(again.positions, full.positions)


def test_relaxation_stopped_at_max_steps_continues_as_if_uninterrupted(tmp_path):
    """The final checkpoint holds the forces of the last positions (evaluated, counted in ``steps``, not yet
    used): a rerun with more steps must use them, not evaluate and count them again."""
    atoms, ev, pos = morse_batch(2)
    full = fire_relax(ev, pos, fmax=1e-6, max_steps=30)
    part = fire_relax(ev, pos, fmax=1e-6, max_steps=12, checkpoint=Checkpoint(tmp_path, key="k", interval_s=1e9))
    assert (part.steps == 12).all() and not np.allclose(part.positions, full.positions)
    n0 = ev.n_calls
    res = fire_relax(ev, pos, fmax=1e-6, max_steps=30, checkpoint=Checkpoint(tmp_path, key="k", interval_s=1e9))
    assert ev.n_calls - n0 == 2 * 18
    assert np.array_equal(res.steps, full.steps) and np.array_equal(res.positions, full.positions)


class Harmonic:
    """Independent 3D harmonic wells at x0 in a periodic box (minimum image), k in eV/Å^2."""

    def __init__(self, x0, k, L):
        self.x0, self.k, self.L = x0, k, L

    def evaluate(self, positions, ids):
        d = positions - self.x0
        d -= self.L * np.round(d / self.L)
        return 0.5 * self.k * (d**2).sum(axis=(1, 2)), -self.k * d


class KilledHarmonic(Harmonic):
    """:class:`Harmonic` that raises KeyboardInterrupt at its ``kill_at``-th call (a job killed mid-MD)."""

    def __init__(self, x0, k, L, kill_at: int):
        super().__init__(x0, k, L)
        self.kill_at, self.calls = kill_at, 0

    def evaluate(self, positions, ids):
        self.calls += 1
        if self.calls == self.kill_at:
            raise KeyboardInterrupt
        return super().evaluate(positions, ids)


def test_langevin_temperature_and_unwrapped_average():
    L = 10.0
    rng = np.random.default_rng(1)
    n = 64
    x0 = rng.uniform(0, L, size=(n, 3))
    x0[0] = [0.0, 0.0, 0.0]  # a well on the cell corner: a wrapped average would put it near L/2
    ev = Harmonic(x0, k=2.0, L=L)
    masses = np.full(n, 16.0)
    r = langevin_md(ev, x0.copy(), masses, 300.0, timestep_fs=1.0, n_steps=4000, n_discard=500,
                    friction_per_fs=0.05, sample_every=1, rng=np.random.default_rng(2))
    T = r.temperature[500:].mean()
    assert T == pytest.approx(300.0, rel=0.05)
    # equipartition of the potential energy too: <E_pot> = 3/2 N kT
    assert r.potential_energy[500:].mean() == pytest.approx(1.5 * n * 8.617333e-5 * 300, rel=0.07)
    # thermal rms displacement sqrt(kT/k) = 0.11 Å; time average is much closer to the well
    assert np.abs(r.mean_positions - x0).max() < 0.05
    assert r.n_averaged == 3500


def test_kinetic_temperature_units():
    from ase import units
    m = np.full(1000, 12.0)
    v = np.random.default_rng(0).normal(size=(1000, 3)) * np.sqrt(units.kB * 500.0 / 12.0)
    assert kinetic_temperature(v, m, 0) == pytest.approx(500.0, rel=0.05)


def test_md_resume(tmp_path):
    L = 8.0
    x0 = np.random.default_rng(0).uniform(0, L, size=(10, 3))
    ev = Harmonic(x0, 1.0, L)
    kw = dict(masses=np.full(10, 10.0), temperature_K=300.0, timestep_fs=1.0, n_steps=200, n_discard=50)
    full = langevin_md(ev, x0, rng=np.random.default_rng(5), **kw)

    ck = Checkpoint(tmp_path, "md", interval_s=0.0)
    with pytest.raises(KeyboardInterrupt):
        langevin_md(KilledHarmonic(x0, 1.0, L, kill_at=120), x0, rng=np.random.default_rng(5), checkpoint=ck, **kw)
    res = langevin_md(ev, x0, rng=np.random.default_rng(5), checkpoint=Checkpoint(tmp_path, "md", 0.0), **kw)
    assert np.allclose(res.mean_positions, full.mean_positions, atol=1e-12)


def test_md_block_averages_of_the_recorded_trajectory():
    """positions_blocks (issue 12 item 10): the trajectory recorded through ``observe`` (every step) gives the
    block averages directly: frames of steps start < s <= n_steps, centre-of-mass drift removed, in equal
    contiguous blocks; the 23-step window in 5 blocks is trimmed by 23 mod 5 = 3 steps at its start."""
    L = 8.0
    x0 = np.random.default_rng(0).uniform(0, L, size=(10, 3))
    masses = np.linspace(1.0, 30.0, 10)
    frames = []

    def record(x):
        frames.append(x)
        return (float(x.sum()),)

    r = langevin_md(Harmonic(x0, 1.0, L), x0, masses, 300.0, 1.0, n_steps=30, n_discard=7, friction_per_fs=0.05,
                    rng=np.random.default_rng(3), n_blocks=5, observe=record, observe_every=1)
    X = np.stack(frames)  # (30, N, 3), steps 1..30
    m = masses[:, None]
    com = (m * X).sum(1) / m.sum()
    Y = X - (com - (m * x0).sum(0) / m.sum())[:, None, :]
    ref = Y[10:].reshape(5, 4, 10, 3).mean(axis=1)  # steps 11..30
    assert r.n_averaged == 20 and r.block_positions.shape == (5, 10, 3)
    assert np.allclose(r.block_positions, ref, rtol=0, atol=1e-12)
    assert np.allclose(r.mean_positions, Y[10:].mean(0), rtol=0, atol=1e-12)
    assert np.abs(r.block_positions.mean(0) - r.mean_positions).max() < 1e-12
    assert np.array_equal(r.observed_time_fs, np.arange(1.0, 31.0)) and r.observed.shape == (30, 1)
    # the blocks differ (thermal noise), so their spread is a real error bar, not zero
    assert r.block_positions.std(0).max() > 1e-3
    with pytest.raises(ValueError, match="n_blocks"):
        langevin_md(Harmonic(x0, 1.0, L), x0, masses, 300.0, 1.0, n_steps=30, n_discard=27, n_blocks=4)


def test_md_resume_with_blocks_and_observer_is_bit_identical(tmp_path):
    L = 8.0
    x0 = np.random.default_rng(0).uniform(0, L, size=(10, 3))
    kw = dict(masses=np.full(10, 10.0), temperature_K=300.0, timestep_fs=1.0, n_steps=200, n_discard=50, n_blocks=4,
              observe=lambda x: (float(np.abs(x).max()), float(x.mean())), observe_every=15)
    full = langevin_md(Harmonic(x0, 1.0, L), x0, rng=np.random.default_rng(5), **kw)

    with pytest.raises(KeyboardInterrupt):
        langevin_md(KilledHarmonic(x0, 1.0, L, kill_at=120), x0, rng=np.random.default_rng(5),
                    checkpoint=Checkpoint(tmp_path, "md", interval_s=0.0), **kw)
    res = langevin_md(Harmonic(x0, 1.0, L), x0, rng=np.random.default_rng(5),
                      checkpoint=Checkpoint(tmp_path, "md", 0.0), **kw)
    for name in ("mean_positions", "block_positions", "observed_time_fs", "observed", "final_positions"):
        assert np.array_equal(getattr(res, name), getattr(full, name)), name
    assert res.observed.shape == (13, 2)


def test_translation_by_a_lattice_vector_is_identity():
    from twistox.supercell.lattice import nearest_csl
    from twistox.supercell.builder import BilayerSpec, build_bilayer

    atoms = build_bilayer(nearest_csl(22.62, 30), BilayerSpec(bottom_cells=1, top_cells=1))
    tx, ty = translation_grid(3)
    assert np.allclose(tx, [0, 1 / 3, 2 / 3])
    p1 = translate_top_layer(atoms, (1.0, 0.0))
    key = lambda p: np.round(np.mod(p, [atoms.cell[0, 0], atoms.cell[1, 1], 1e9]), 6)  # noqa: E731
    assert set(map(tuple, key(p1))) == set(map(tuple, key(atoms.positions)))
    p2 = translate_top_layer(atoms, (0.5, 0.0))
    top = atoms.arrays["layer"] == 1
    assert np.allclose(p2[~top], atoms.positions[~top])
    d = p2[top] - atoms.positions[top]
    d[:, :2] -= atoms.cell[0, 0] * np.round(d[:, :2] / atoms.cell[0, 0])
    assert np.allclose(np.linalg.norm(d, axis=1), 3.905 / 2)
    with pytest.raises(ValueError, match="translation_grid"):
        translation_grid(0)


def tiny_mace(path, r_max=4.0, zs=(8, 22, 38), seed=0):
    """A random-weight MACE model (tests only: the physics is meaningless, the plumbing is not)."""
    import mace  # noqa: F401  (mace configures torch.load for e3nn's constants)
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    torch.set_default_dtype(torch.float64)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=r_max, num_bessel=4, num_polynomial_cutoff=5, max_ell=1, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=len(zs), hidden_irreps=o3.Irreps("8x0e"),
        MLP_irreps=o3.Irreps("4x0e"), atomic_energies=np.array([-5.0, -8.0, -3.0]), avg_num_neighbors=20.0,
        atomic_numbers=list(zs), correlation=2, gate=torch.nn.functional.silu, pair_repulsion=True,
        atomic_inter_scale=1.0, atomic_inter_shift=0.0)
    torch.save(model, path)
    return path


def test_batched_mace_matches_the_ase_calculator(tmp_path):
    pytest.importorskip("mace")
    from mace.calculators import MACECalculator

    from twistox.supercell.lattice import nearest_csl
    from twistox.supercell.builder import BilayerSpec, build_bilayer

    path = tiny_mace(tmp_path / "tiny.model")
    calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
    atoms = build_bilayer(nearest_csl(36.87, 30), BilayerSpec(bottom_cells=1, top_cells=1))
    ev = MaceBatchEvaluator.from_calculator(calc, atoms, skin=1.0)
    rng = np.random.default_rng(0)
    pos = np.stack([atoms.positions + rng.normal(scale=0.1, size=atoms.positions.shape) for _ in range(3)])
    pos[2, :, :2] += atoms.cell[0, 0] * 1.5  # unwrapped positions outside the cell
    for trial in range(2):  # second pass reuses the skin neighbour lists
        E, F = ev.evaluate(pos, [0, 1, 2])
        for b in range(3):
            ref = atoms.copy()
            ref.positions = pos[b]
            ref.calc = calc
            assert E[b] == pytest.approx(ref.get_potential_energy(), abs=1e-9)
            assert np.abs(F[b] - ref.get_forces()).max() < 1e-9
        pos = pos + rng.normal(scale=0.1, size=pos.shape)
    assert ev.n_builds == 3
    r = fire_relax(ev, pos[:2], fmax=0.1, max_steps=200, maxstep=0.1)
    assert (r.energies < r.initial_energies).all() and r.converged.all()


def test_relax_bilayer_end_to_end(tmp_path):
    """Scan -> refine -> MD with a cheap pair potential; relaxed.zarr names per DESIGN.md."""
    from ase.calculators.lj import LennardJones

    from twistox.core.io import read_dataset, structure_dataset, write_dataset
    from twistox.supercell.lattice import nearest_csl
    from twistox.relax.stage import relax_bilayer, relaxed_dataset
    from twistox.supercell.builder import BilayerSpec, build_bilayer

    atoms = build_bilayer(nearest_csl(36.87, 30), BilayerSpec(bottom_cells=1, top_cells=1))
    calc = LennardJones(sigma=1.6, epsilon=0.02, rc=4.0, smooth=True)
    cfg = {"translation_grid": 2, "scan_fmax": 0.05, "scan_max_steps": 40, "fmax": 0.02, "max_steps": 200,
           "maxstep": 0.1, "batch_size": 3, "neighbour_skin": 0.5, "checkpoint_interval_s": 0.0,
           "md": {"enabled": True, "temperature_K": 300.0, "timestep_fs": 1.0, "total_ps": 0.03, "discard_ps": 0.01,
                  "friction_per_ps": 10.0, "sample_every": 5, "blocks": 5,
                  "equilibration_friction_per_ps": None},
           "committee_std": {"enabled": True, "md_every": 2, "warn_eV_per_A": 0.2},
           "contact_guard": {"enabled": False}}  # LJ stand-in pulls Sr pairs to 1.9 Å: the guard would stop it
    out = relax_bilayer(atoms, calc, cfg, np.random.default_rng(0), checkpoint_dir=tmp_path / "ck",
                        checkpoint_key="t")
    assert out.scan_energy.shape == (2, 2)
    assert out.energy_relaxed <= np.nanmin(out.scan_energy) + 1e-9
    assert out.energy_relaxed < np.nanmin(out.scan_energy_rigid)
    assert out.converged and out.fmax_relaxed < 0.02
    assert out.md.n_averaged == 20
    base = structure_dataset(atoms).attrs
    ds = relaxed_dataset(atoms, out, dict(base))
    write_dataset(ds, tmp_path / "relaxed.zarr", stage="relax")
    ds = read_dataset(tmp_path / "relaxed.zarr")
    for name in ("positions", "positions_rigid", "numbers", "layer", "plane", "plane_kind", "cell",
                 "translation_energy", "displacement"):
        assert name in ds and "units" in ds[name].attrs, name
    assert ds["translation_energy"].dims == ("tx", "ty")
    for k in ("m", "n", "sigma", "theta_deg", "a", "moire_period", "supercell_length", "interface_planes"):
        assert ds.attrs[k] == base[k]
    L = atoms.cell[0, 0]
    assert (ds["positions"].values[:, :2] >= 0).all() and (ds["positions"].values[:, :2] < L).all()
    d = ds["positions"].values - ds["positions_rigid"].values
    d[:, :2] -= L * np.round(d[:, :2] / L)
    assert np.allclose(ds["displacement"].values, d)


def test_split_relax_package_reproduces_the_pre_split_numbers():
    """Issue 15 'nothing else changes': scan -> FIRE -> BAOAB MD on a fixed LJ bilayer gives the numbers of the
    pre-split twistox.relax.relaxation (commit cb987a8; checked bit-identical side by side, values pinned here)."""
    from ase.calculators.lj import LennardJones

    from twistox.relax.stage import relax_bilayer
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    atoms = build_bilayer(nearest_csl(36.87, 30), BilayerSpec(bottom_cells=1, top_cells=1))
    cfg = {"translation_grid": 2, "scan_fmax": 0.05, "scan_max_steps": 40, "fmax": 0.02, "max_steps": 200,
           "maxstep": 0.1, "batch_size": 3, "neighbour_skin": 0.5, "checkpoint_interval_s": 0.0,
           "md": {"enabled": True, "temperature_K": 300.0, "timestep_fs": 1.0, "total_ps": 0.03, "discard_ps": 0.01,
                  "friction_per_ps": 10.0, "sample_every": 5, "blocks": 5,
                  "equilibration_friction_per_ps": None},
           "committee_std": {"enabled": True, "md_every": 2, "warn_eV_per_A": 0.2},
           "contact_guard": {"enabled": False}}  # LJ stand-in pulls Sr pairs to 1.9 Å: the guard would stop it
    out = relax_bilayer(atoms, LennardJones(sigma=1.6, epsilon=0.02, rc=4.0, smooth=True), cfg,
                        np.random.default_rng(0))
    assert out.energy_relaxed == pytest.approx(-3.9868581063990134, rel=1e-12)
    assert out.scan_energy.sum() == pytest.approx(-6.155766715172524, rel=1e-12)
    assert out.md.potential_energy[-1] == pytest.approx(-3.4332589533388087, rel=1e-10)
    assert out.positions.sum() == pytest.approx(807.5426549197492, rel=1e-12)


def test_one_md_integrator_serves_relax_and_active_learning():
    """The committee MD of active learning runs the relax stage's BAOAB integrator: with the same seed, forces
    and settings, its snapshots are the positions of twistox.relax.md.langevin_md's trajectory."""
    from ase.calculators.lj import LennardJones

    from twistox.core.md import AseEvaluator, LangevinBAOAB
    from twistox.mlip.active_learning import committee_md

    atoms = Icosahedron("Cu", 2)
    atoms.center(vacuum=5.0)
    atoms.pbc = True

    class WithStd(LennardJones):
        def calculate(self, *a, **k):
            super().calculate(*a, **k)
            self.results["force_std"] = np.zeros(len(self.atoms))

    snaps, unc = committee_md(WithStd(sigma=2.3, epsilon=0.1, rc=6.0, smooth=True), atoms, 300.0, 20, 1.0, 5,
                              np.random.default_rng(7), friction_per_fs=0.01)
    ev = AseEvaluator(atoms, LennardJones(sigma=2.3, epsilon=0.1, rc=6.0, smooth=True))
    integ = LangevinBAOAB(ev, atoms.get_masses(), 300.0, 1.0, 0.01, np.random.default_rng(7))
    x = atoms.positions.copy()
    v = integ.initial_velocities(x)
    e, f = integ.forces(x)
    for s in range(20):
        e, f = integ.step(x, v, f)
        if (s + 1) % 5 == 0:
            assert np.array_equal(snaps[s // 5].positions, x)
    assert len(snaps) == 4 and unc == [0.0] * 4


def test_stage_run_relaxes_a_supercell_with_mace_models_and_resumes_from_its_checkpoints(tmp_path):
    """twistox.relax.stage.run (what scripts/relax.py calls): supercell.zarr contents + model files + the
    validated config -> relaxed.zarr contents; its checkpoints are keyed to the model file's bytes."""
    pytest.importorskip("mace")
    from twistox.core.checkpoint import Checkpoint
    from twistox.core.config import with_schema_defaults
    from twistox.core.io import structure_dataset
    from twistox.relax import stage
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    model = tiny_mace(tmp_path / "tiny.model")
    atoms = build_bilayer(nearest_csl(36.87, 30), BilayerSpec(bottom_cells=1, top_cells=1))
    relax = with_schema_defaults("relax", {"committee_mode": "first", "translation_grid": 1, "scan_max_steps": 3,
                                           "max_steps": 3, "checkpoint_interval_s": 0.0, "md": {"enabled": False},
                                           "lattice_constant": "config"})  # random weights: no cubic E(V) minimum
    config = {"relax": relax, "device": "cpu"}
    ck = tmp_path / "ck"
    ds, final = stage.run(structure_dataset(atoms), [model], config, np.random.default_rng(0), 1, checkpoint_dir=ck)
    assert ds["positions"].shape == (len(atoms), 3) and len(final) == len(atoms)
    assert np.isfinite(ds.attrs["energy_relaxed"]) and ds.attrs["md_ran"] is False
    key = stage.relax_checkpoint_key(atoms, relax, 1, [model])
    assert Checkpoint(ck, key).load("refine") is not None
    model.write_bytes(model.read_bytes() + b"\0")  # another model file: the checkpoints no longer apply
    assert stage.relax_checkpoint_key(atoms, relax, 1, [model]) != key


def test_equilibration_friction_thermalises_a_run_started_at_the_minimum():
    """Started at the minimum with Maxwell-Boltzmann velocities, harmonic wells equipartition to T/2 at once;
    a 1/ps thermostat refills them as 1 - exp(-γt)/2 in energy, so a window right after a 1 ps discard averages
    a run ~8 % too cold. A 20/ps friction during the discard only puts the window at T (known answer: 300 K)."""
    L, n = 20.0, 400
    x0 = np.random.default_rng(3).uniform(0, L, size=(n, 3))
    masses = np.full(n, 16.0)
    kw = dict(timestep_fs=2.0, n_steps=1500, n_discard=500, friction_per_fs=0.001, sample_every=1)
    cold = langevin_md(Harmonic(x0, 2.0, L), x0.copy(), masses, 300.0, rng=np.random.default_rng(4), **kw)
    warm = langevin_md(Harmonic(x0, 2.0, L), x0.copy(), masses, 300.0, rng=np.random.default_rng(4),
                       equilibration_friction_per_fs=0.02, **kw)
    t_cold, t_warm = cold.temperature[500:].mean(), warm.temperature[500:].mean()
    assert t_cold < 0.95 * 300.0                 # theory: 300 - 150 (e^-1 - e^-3) / 2 = 276 K
    assert t_warm == pytest.approx(300.0, rel=0.03)
    # the production dynamics are the same thermostat: only the discarded steps differ
    assert cold.n_averaged == warm.n_averaged == 1000
