"""MACE committee: loading interface, metrics, diverse selection, and committee disagreement off the data."""

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.io import write

from twistox.mlip.active_learning import select_diverse
from twistox.mlip.calculator import load_calculator
from twistox.mlip.metrics import error_metrics, predict
from twistox.mlip.training import TrainSettings, mace_args, train_committee
from twistox.supercell.builder import Perovskite
from twistox.dft.trainset import bulk_cell, rattle


def _lj_frames(n, rng, amp=0.06, strain=0.01):
    out = []
    for _ in range(n):
        at = bulk_cell(Perovskite(), (2, 1, 1))
        at.set_cell(at.cell * (1 + rng.uniform(-strain, strain)), scale_atoms=True)
        rattle(at, rng, amp)
        at.calc = LennardJones(sigma=2.0, epsilon=0.05, rc=5.0, smooth=True)
        at.info["REF_energy"] = at.get_potential_energy()
        at.arrays["REF_forces"] = at.get_forces()
        at.info["REF_stress"] = at.get_stress()
        at.info["config_type"] = "bulk"
        at.calc = None
        out.append(at)
    return out


def test_error_metrics_known_answers():
    rng = np.random.default_rng(0)
    frames = _lj_frames(3, rng)
    exact = {"energy": [a.info["REF_energy"] for a in frames], "forces": [a.arrays["REF_forces"] for a in frames]}
    m = error_metrics(frames, exact)
    assert m["energy_mae_meV_per_atom"] == 0 and m["forces_mae_meV_per_A"] == 0 and m["forces_r2"] == 1.0
    shifted = {"energy": [e + 0.01 * len(a) for e, a in zip(exact["energy"], frames)],
               "forces": [f + 0.002 for f in exact["forces"]]}
    m = error_metrics(frames, shifted)
    assert m["energy_mae_meV_per_atom"] == pytest.approx(10.0)  # 10 meV/atom offset
    assert m["forces_mae_meV_per_A"] == pytest.approx(2.0) and m["forces_rmse_meV_per_A"] == pytest.approx(2.0)
    assert m["forces_r2"] < 1.0


def test_select_diverse_prefers_uncertain_and_different():
    # cluster A (near 0) holds the 3 most uncertain frames; cluster B (near 10) is less uncertain
    desc = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [5.0]])
    unc = np.array([1.0, 0.95, 0.9, 0.8, 0.7, 0.01])
    sel = select_diverse(unc, desc, 2, pool_factor=3)
    assert sel[0] == 0 and sel[1] in (3, 4)  # not the near-duplicate 1
    assert select_diverse(unc, desc, 0) == []
    assert sorted(select_diverse(unc, desc, 6, pool_factor=1)) == list(range(6))


def test_load_calculator_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="allowed: first, mean"):
        load_calculator([tmp_path / "x.model"], mode="median")
    with pytest.raises(FileNotFoundError):
        load_calculator([tmp_path / "missing.model"])
    with pytest.raises(ValueError, match="float64, float32"):
        load_calculator([tmp_path / "x.model"], default_dtype="float16")


def test_mace_args_warm_restart_and_stress():
    s = TrainSettings(stress_weight=1.0)
    a = mace_args(s, "m", "t.extxyz", __import__("pathlib").Path("/tmp/w"), 7, "cpu", 40, True)
    assert "--restart_latest" in a and a[a.index("--seed") + 1] == "7" and a[a.index("--max_num_epochs") + 1] == "40"
    assert a[a.index("--loss") + 1] == "stress"
    assert "--pair_repulsion" in a  # ZBL core repulsion by default (schema mlip.pair_repulsion)
    assert "--pair_repulsion" not in mace_args(TrainSettings(pair_repulsion=False), "m", "t.extxyz",
                                                __import__("pathlib").Path("/tmp/w"), 7, "cpu", 40, False)


@pytest.mark.slow
def test_committee_disagrees_more_far_from_training_data(tmp_path):
    """Train a tiny 2-model committee on near-equilibrium frames (LJ labels stand in for DFT);
    the per-atom force std must be larger on strongly distorted frames than on training frames."""
    rng = np.random.default_rng(0)
    train = _lj_frames(16, rng)
    write(tmp_path / "train.extxyz", train, format="extxyz")
    s = TrainSettings(committee_size=2, num_channels=8, num_interactions=1, correlation=2, max_epochs=15,
                      batch_size=4, valid_fraction=0.15)
    paths = train_committee(tmp_path / "train.extxyz", tmp_path / "c", s, seed=3, workers=2)
    assert all(p.exists() for p in paths)

    # models load with plain mace-torch, as DESIGN promises
    from mace.calculators import MACECalculator

    plain = MACECalculator(model_paths=[str(paths[0])], device="cpu", default_dtype="float64")
    first = load_calculator(paths, mode="first", device="cpu")
    mean = load_calculator(paths, mode="mean", device="cpu")
    at = train[0].copy()
    at.calc = plain
    f_plain = at.get_forces()
    at.calc = first
    assert np.allclose(at.get_forces(), f_plain)
    at.calc = mean
    f_mean = at.get_forces()
    comm = mean.results["forces_comm"]
    assert comm.shape == (2, len(at), 3) and np.allclose(f_mean, comm.mean(0))
    std = mean.results["force_std"]
    assert std.shape == (len(at),)
    assert np.allclose(std, np.sqrt(((comm - comm.mean(0)) ** 2).sum(2).mean(0)))

    # ZBL core repulsion (default mlip.pair_repulsion): two O atoms pushed to 0.6 Å, far closer than any
    # training frame, cost tens of eV instead of whatever the learned part extrapolates to
    assert getattr(first.models[0], "pair_repulsion", False)
    sq = train[0].copy()
    o = [i for i, s_ in enumerate(sq.get_chemical_symbols()) if s_ == "O"]
    d = sq.get_distances(o[0], o[1:], mic=True)
    j = o[1 + int(np.argmin(d))]
    v = sq.get_distance(o[0], j, mic=True, vector=True)
    sq.positions[j] = sq.positions[o[0]] + v / np.linalg.norm(v) * 0.6
    sq.calc = first
    at.calc = first
    assert sq.get_potential_energy() - at.get_potential_energy() > 10.0

    far = _lj_frames(6, np.random.default_rng(1), amp=0.35, strain=0.08)
    s_train = np.mean([u.mean() for u in predict(mean, train[:6])["force_std"]])
    s_far = np.mean([u.mean() for u in predict(mean, far)["force_std"]])
    print(f"force std: training frames {s_train:.4f}, far frames {s_far:.4f} eV/Å")
    assert s_far > 2.0 * s_train, (s_far, s_train)
