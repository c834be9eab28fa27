"""Labels along the committee's own relaxations (twistox.mlip.relaxpaths, issue 12): the end point of a
known minimum, the picked path steps, the config section and its wiring into an AL iteration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.calculators.calculator import Calculator, all_changes

from twistox.core.config import ConfigError, validate_config
from twistox.dft.twisted import fire_path
from twistox.mlip.active_learning import iteration_candidates
from twistox.mlip.relaxpaths import RELAX_TYPE, RelaxPathSettings, label_check, pick_steps, relax_path_candidates
from twistox.mlip.stage import relax_path_starts
from twistox.mlip.subsets import select

from test_mlip_al_carve import FakeMeanCommittee, _setup

ROOT = Path(__file__).resolve().parents[1]


class Harmonic(Calculator):
    """E = k/2 |x - x0|²: the minimum is x0; 'committee std' = |x - x0| per atom (eV/Å), zero there."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, x0, k=2.0):
        super().__init__()
        self.x0, self.k = np.asarray(x0, float), k

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = atoms.positions - self.x0
        self.results = {"energy": 0.5 * self.k * float((d ** 2).sum()), "forces": -self.k * d,
                        "force_std": np.linalg.norm(d, axis=1)}


def _sigma5():
    cfg = validate_config(yaml.safe_load((ROOT / "config" / "network.yaml").read_text()))
    return cfg, next(iter(cfg["systems"]))


def test_pick_steps_end_point_first_then_spread():
    assert pick_steps(11, 1) == [10]
    assert pick_steps(11, 3) == [10, 9, 1]
    assert pick_steps(11, 2) == [10, 1]
    assert pick_steps(3, 5) == [2, 1]          # never more than the path holds, never the start
    assert pick_steps(1, 3) == [] and pick_steps(11, 0) == []


def test_end_point_is_the_potentials_minimum():
    cfg, system = _sigma5()
    start = relax_path_starts(cfg, system)[0]
    rng = np.random.default_rng(0)
    x0 = start.positions + rng.normal(0.0, 0.3, start.positions.shape)
    calc = Harmonic(x0)
    s = RelaxPathSettings(frames=2, steps=400, maxstep=0.1, fmax=1e-3)
    frames = relax_path_candidates(calc, [start], s)
    assert len(frames) == 2 and all(f.info["config_type"] == RELAX_TYPE for f in frames)
    end, mid = frames
    assert end.info["relax_converged"] and end.info["relax_step"] == end.info["relax_length"] < 400
    # converged below fmax = k |x - x0| -> within fmax / k of the known minimum
    assert np.abs(end.positions - x0).max() < 1e-3 / 2.0 + 1e-9
    assert end.info["relax_max_force"] < 1e-3 and end.info["uncertainty"] < 1e-3
    assert 1 <= mid.info["relax_step"] < end.info["relax_step"] and mid.info["uncertainty"] > end.info["uncertainty"]
    # same path as an independent call of the minimiser; the start's arrays and info survive
    path = fire_path(start, calc, 400, 0.1, 1e-3)
    np.testing.assert_allclose(mid.positions, path[mid.info["relax_step"]])
    np.testing.assert_array_equal(end.arrays["layer"], start.arrays["layer"])
    assert end.info["sigma"] == 5 and end.info["translation"] == start.info["translation"]
    assert start.calc is None and not np.allclose(start.positions, end.positions)  # the start is not moved
    assert select([end, mid], "twisted") == [0, 1]  # they join the metrics' twisted block


def test_unconverged_path_says_so():
    cfg, system = _sigma5()
    start = relax_path_starts(cfg, system)[0]
    frames = relax_path_candidates(Harmonic(start.positions + 0.5), [start], RelaxPathSettings(frames=1, steps=3))
    assert frames[0].info["relax_step"] == 3 and not frames[0].info["relax_converged"]
    assert relax_path_candidates(Harmonic(start.positions), [start], RelaxPathSettings(frames=0)) == []


def test_settings_validated_and_starts_from_config():
    with pytest.raises(ConfigError, match="relax_paths: unknown key"):
        RelaxPathSettings.from_config({"frame": 1})
    with pytest.raises(ConfigError, match="relax_paths.*allowed: frames >= 0"):
        RelaxPathSettings.from_config({"frames": -1})
    with pytest.raises(ConfigError, match="maxstep"):
        RelaxPathSettings.from_config({"frames": 1, "maxstep": 0.0})
    assert RelaxPathSettings.from_config(None) == RelaxPathSettings() and not RelaxPathSettings().enabled
    cfg, system = _sigma5()
    starts = relax_path_starts(cfg, system)
    tw = cfg["dft"]["configs"]["twisted"]
    assert len(starts) == len(tw["sigmas"]) * len(tw["translations"]) == 3
    assert [s.info["translation"] for s in starts] == [list(map(float, t)) for t in tw["translations"]]
    assert all(len(s) == 50 and s.info["sigma"] == 5 for s in starts)
    cfg["mlip"]["active_learning"]["relax_paths"] = {"frames": 0}
    assert relax_path_starts(cfg, system) == []
    with pytest.raises(ConfigError, match="relax_paths"):
        validate_config({**cfg, "mlip": {**cfg["mlip"], "active_learning": {"relax_paths": {"frames": "one"}}}})


def test_iteration_adds_relaxation_frames_after_md_and_carved():
    tgt, calc, start, al, _, _ = _setup()
    cfg, system = _sigma5()
    starts = relax_path_starts(cfg, system)[:2]
    new, cands, unc, chosen, n_carved = iteration_candidates(calc, [start], [], al, None, np.random.default_rng(0), 2,
                                                             relax_starts=starts,
                                                             relax=RelaxPathSettings(frames=1, steps=2, fmax=1e-12))
    assert len(chosen) == 1 and n_carved == 0 and len(new) == 3
    assert [f.info["config_type"] for f in new[1:]] == [RELAX_TYPE] * 2
    assert [f.info["frame_id"] for f in new] == [200000, 200001, 200002]
    assert all(f.info["split"] == "train" and f.info["al_iteration"] == 2 for f in new)
    none, *_ = iteration_candidates(calc, [start], [], al, None, np.random.default_rng(0), 1, relax_starts=starts,
                                    relax=None)
    assert len(none) == 1


def test_start_already_at_the_minimum_adds_nothing():
    """A path of zero steps has nothing new to label: the rigid start is in the DFT set already."""
    cfg, system = _sigma5()
    start = relax_path_starts(cfg, system)[0]
    assert relax_path_candidates(Harmonic(start.positions), [start], RelaxPathSettings(frames=2)) == []


def test_label_check_reports_what_dft_says_at_the_end_point():
    """Known labels: DFT energy 0.5 eV below the committee's, one atom with |F| = 2 eV/Å."""
    cfg, system = _sigma5()
    start = relax_path_starts(cfg, system)[0]
    end = relax_path_candidates(Harmonic(start.positions + 0.2), [start], RelaxPathSettings(frames=1, fmax=1e-3))[0]
    lab = end.copy()
    lab.info["REF_energy"] = end.info["committee_energy"] - 0.5
    f = np.zeros((len(lab), 3))
    f[7] = [0.0, 1.2, 1.6]
    lab.arrays["REF_forces"] = f
    other = lab.copy()
    other.info["config_type"] = "twisted_carved"
    (c,) = label_check([lab, other])
    assert c["dft_max_force_eV_per_A"] == pytest.approx(2.0)
    assert c["energy_error_meV_per_atom"] == pytest.approx(500.0 / len(lab))  # committee above DFT: positive
    assert c["relax_converged"] and c["sigma"] == 5 and c["committee_max_force_eV_per_A"] < 1e-3


def test_label_check_of_cached_frames_is_plain_json(tmp_path):
    """Labels come back from the cache as extxyz (numpy scalars and arrays in info): metrics.json must
    still serialise them."""
    import json

    from ase.io import read, write

    cfg, system = _sigma5()
    start = relax_path_starts(cfg, system)[1]
    end = relax_path_candidates(Harmonic(start.positions + 0.1), [start], RelaxPathSettings(frames=1))[0]
    end.info["REF_energy"] = end.info["committee_energy"]
    end.arrays["REF_forces"] = np.zeros((len(end), 3))
    write(tmp_path / "cached.extxyz", end, format="extxyz")
    (c,) = label_check([read(tmp_path / "cached.extxyz", format="extxyz")])
    assert json.loads(json.dumps(c)) == c
    assert c["translation"] == [0.5, 0.5] and c["sigma"] == 5 and c["energy_error_meV_per_atom"] == pytest.approx(0)
