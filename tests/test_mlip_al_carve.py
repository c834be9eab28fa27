"""Carving wired into active learning (issue 12 item 2): an AL iteration with ``carve`` on adds cells carved
around the most uncertain atoms of the target supercell, with provenance; with it off, none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from twistox.core.config import ConfigError, validate_config
from twistox.dft.trainset import bulk_cell
from twistox.mlip import active_learning as al_mod
from twistox.mlip.active_learning import ALSettings, iteration_candidates
from twistox.mlip.carved import CarveSettings
from twistox.mlip.stage import carve_targets
from twistox.mlip.subsets import select
from twistox.mlip.training import TrainSettings
from twistox.supercell.builder import BilayerSpec, Perovskite, build_bilayer
from twistox.supercell.lattice import nearest_csl

from test_mlip_carved import FakeCommittee

ROOT = Path(__file__).resolve().parents[1]


class FakeMeanCommittee(FakeCommittee):
    """FakeCommittee (LJ forces, 'force std' peaked at a known hot spot) with the descriptor interface of
    the MACE committee mean: per-atom (x, y, z) as 'features' is enough for the diversity selection."""

    def get_descriptors(self, atoms, invariants_only=True):
        return np.asarray(atoms.positions, float)


def _setup(hot_frac=(0.3, 0.6)):
    tgt = build_bilayer(nearest_csl(12.68), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=8.0))  # Sigma41
    tgt.info["sample"] = "Sigma41"
    L = tgt.cell[0, 0]
    hot = np.array(hot_frac) * L
    start = bulk_cell(Perovskite(), (1, 1, 1))
    start.info["config_type"] = "bulk"
    al = ALSettings(temperatures_K=(300.0,), md_steps=4, sample_every=2, frames_per_iteration=1, pool_factor=1)
    return tgt, FakeMeanCommittee(hot, L), start, al, hot, L


def test_iteration_with_carve_adds_carved_frames_with_provenance():
    tgt, calc, start, al, hot, L = _setup()
    carve = CarveSettings(frames=2, sigma=5, relax_steps=0)
    new, cands, unc, chosen, n_carved = iteration_candidates(calc, [start], [tgt], al, carve,
                                                             np.random.default_rng(0), it=2)
    assert len(chosen) == 1 and n_carved == 2 and len(new) == 3
    md, carved = new[0], new[1:]
    assert md.info["config_type"] == "al_bulk"
    assert [c.info["frame_id"] for c in new] == [200000, 200001, 200002]  # unique, after the MD frame
    assert all(c.info["split"] == "train" and c.info["al_iteration"] == 2 for c in new)
    # carved frames are twisted environments: they join the metrics' twisted subset, MD frames do not
    assert select(new, "twisted") == [1, 2]
    assert all(c.info["config_type"] == "twisted_carved" for c in carved)
    # provenance: target name and centre atom; relax_steps 0 keeps the rigid target, so the recorded centre
    # position is exactly that atom's, and the first centre is the atom nearest the hot spot (largest std)
    d = tgt.positions[:, :2] - hot
    d -= L * np.round(d / L)
    nearest = int(np.argmin(np.linalg.norm(d, axis=1)))
    assert carved[0].info["carve_target"] == "Sigma41"
    assert carved[0].info["carve_center"] == nearest
    for c in carved:
        np.testing.assert_allclose(c.info["carve_center_position"], tgt.positions[c.info["carve_center"]], atol=1e-9)
        assert c.info["source_sigma"] == 41 and c.info["carve_sigma"] == 5
    assert carved[0].info["carve_force_std"] >= carved[1].info["carve_force_std"]


def test_iteration_with_carve_off_adds_none():
    tgt, calc, start, al, _, _ = _setup()
    for carve in (CarveSettings(), CarveSettings(frames=0, sigma=5), None):
        new, _, _, chosen, n_carved = iteration_candidates(calc, [start], [tgt], al, carve,
                                                           np.random.default_rng(0), it=1)
        assert n_carved == 0 and len(new) == len(chosen) == 1
        assert select(new, "twisted") == []


def test_active_learning_labels_and_counts_carved_frames(tmp_path, monkeypatch):
    """The whole AL loop (training and evaluation stubbed): carved cells and committee-relaxation frames
    reach the labeller, the added frames and the iteration record (``carved_*``, ``relax_path_*``)."""
    tgt, calc, start, al, _, _ = _setup()
    seen = []

    class Labeller:
        record = {"calculator": "fake", "is_dft": False}

        def label(self, frames, workers=1):
            seen.extend(frames)
            return [{"status": "ok"} for _ in frames]

    def fake_collect(frames, lab):
        out = []
        for f in frames:
            g = f.copy()
            g.info["REF_energy"] = 0.0
            g.arrays["REF_forces"] = np.zeros((len(g), 3))
            out.append(g)
        return out, []

    ev = {"forces_mae_meV_per_A": 0.0, "forces_r2": 1.0, "energy_mae_meV_per_atom": 0.0}
    monkeypatch.setattr(al_mod, "load_calculator", lambda paths, mode, device: calc)
    monkeypatch.setattr(al_mod, "collect", fake_collect)
    monkeypatch.setattr(al_mod, "evaluate_committee", lambda paths, test, device: dict(ev))
    monkeypatch.setattr(al_mod, "train_committee", lambda f, w, s, seed, **kw: [Path(w) / "member_0" / "mace.model"])
    s = TrainSettings(committee_size=1)
    from twistox.mlip.relaxpaths import RelaxPathSettings
    relax_start = build_bilayer(nearest_csl(36.87), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=8.0))  # Sigma5
    paths, history, added = al_mod.active_learning([], [], [start], tmp_path, s, al, Labeller(), 0,
                                                   targets=[tgt], carve=CarveSettings(frames=2, sigma=5, relax_steps=1),
                                                   relax_starts=[relax_start],
                                                   relax=RelaxPathSettings(frames=2, steps=3, fmax=1e-12))
    assert len(seen) == 5 and len(added) == 5
    assert history[1]["carved_candidates"] == 2 and history[1]["carved_added"] == 2
    assert history[1]["relax_path_candidates"] == 2 and history[1]["relax_path_added"] == 2
    assert [a.info["relax_step"] for a in added[3:]] == [3, 1]  # end point, then the earliest step
    assert [c["dft_max_force_eV_per_A"] for c in history[1]["relax_path_check"]] == [0.0, 0.0]  # the fake labels
    assert {a.info["carve_target"] for a in added if "carve_target" in a.info} == {"Sigma41"}
    assert (tmp_path / "train_iter1.extxyz").exists()


def test_carve_settings_validated_and_targets_from_config():
    with pytest.raises(ConfigError, match="carve.sigma"):
        CarveSettings.from_config({"frames": 1, "sigma": 3})
    with pytest.raises(ConfigError, match="unknown key"):
        CarveSettings.from_config({"frame": 1})
    assert CarveSettings.from_config(None) == CarveSettings() and not CarveSettings().enabled
    cfg = validate_config(yaml.safe_load((ROOT / "config" / "network.yaml").read_text()))
    cfg["mlip"]["active_learning"]["carve"]["frames"] = 2  # network.yaml ships it off (cost); a cluster turns it on
    assert CarveSettings.from_config(cfg["mlip"]["active_learning"]["carve"]).enabled
    system = next(iter(cfg["systems"]))
    targets = carve_targets(cfg, system)
    assert [t.info["sample"] for t in targets] == ["theta6.73_m17n1"]
    assert targets[0].info["sigma"] == 145 and abs(targets[0].info["theta_deg"] - 6.7329) < 1e-3
    cfg["mlip"]["active_learning"]["carve"] = {}
    assert carve_targets(cfg, system) == []
    with pytest.raises(ConfigError, match="bad"):
        validate_config({**cfg, "mlip": {**cfg["mlip"], "active_learning": {"carve": {"bad": 1}}}})
