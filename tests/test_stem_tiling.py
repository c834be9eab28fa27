"""Memory-bounded STEM scans (issue 17 item 4): the tile planner and tiled == one-piece results."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

from twistox.core.checkpoint import Checkpoint
from twistox.core.config import ConfigError, validate_config
from twistox.stem.fourd import com_map, fourd_maps, fourd_plan, run_fourd, simulate_patterns
from twistox.stem.multislice import ProbeSettings, build_potential, configure_abtem
from twistox.stem.planview import integrate_range, planview_plan, planview_radial, run_planview
from twistox.stem.sample import planview_sample, to_sample_frame
from twistox.stem.tiling import SAFETY, iter_tiles, scan_tiles_for_budget
from twistox.supercell.builder import BilayerSpec, build_bilayer
from twistox.supercell.lattice import nearest_csl

LOG = logging.getLogger("test")
FD = {"max_angle_mrad": None, "dose": None, "com_mask_factor": 1.5, "com_disc": "mean", "com_radius": "semiangle"}


@pytest.fixture(scope="module", autouse=True)
def _abtem_cpu():
    configure_abtem("cpu", "float32", 1)


@pytest.fixture(scope="module")
def sample():
    """Sigma5 bilayer, interface region only, tiled 2×2 as the 4D-STEM stage does."""
    atoms = build_bilayer(nearest_csl(36.87, 30), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=10.0))
    atoms.info["rigid_positions"] = atoms.positions.copy()
    return planview_sample(atoms, 0.0, 4.0, "top")


def probe(**kw) -> ProbeSettings:
    base = dict(energy=300e3, semiangle=4.0, potential_sampling=0.3, scan_sampling=1.5, slice_thickness=2.0,
                parametrization="lobato", supersampling=1)
    return ProbeSettings(**(base | kw))


def budget_for(plan, probes: int) -> float:
    """Budget [MB] whose planned share holds the fixed terms and ``probes`` probe positions."""
    return (plan.fixed_mb + (probes + 0.5) * plan.per_probe_mb) / SAFETY


# ------------------------------------------------------------------------------------ planner


@pytest.mark.parametrize("budget", [470.0, 600.0, 900.0, 1e5])
def test_planner_respects_budget_and_covers_scan(budget):
    scan = (37, 23)
    t = scan_tiles_for_budget(scan, (288, 288), 15, 82944, budget, batch=8)
    assert t.peak_mb <= SAFETY * budget + 1e-9
    hits = np.zeros(scan, int)
    for ys, xs in iter_tiles(t):
        hits[ys, xs] += 1
    assert (hits == 1).all()  # every probe position exactly once
    if t.tile[1] == scan[1] and t.tile[0] < scan[0]:  # whole rows, as many as fit: one more would not
        assert t.fixed_mb + (t.tile[0] + 1) * scan[1] * t.per_probe_mb > SAFETY * budget
    if t.tile[1] < scan[1]:  # blocks only when not even one whole row fits
        assert t.fixed_mb + scan[1] * t.per_probe_mb > SAFETY * budget
    assert (budget < 1e5) == (t.n_tiles > 1)


def test_planner_too_small_budget_names_the_key():
    with pytest.raises(ConfigError, match=r"resources\.stem_4d\.mem_mb.*allowed: resources\.stem_4d\.mem_mb >= "):
        scan_tiles_for_budget((10, 10), (2048, 2048), 100, 10**6, 500.0)
    with pytest.raises(ConfigError, match=r"stem\.mem_budget_mb"):
        scan_tiles_for_budget((10, 10), (2048, 2048), 100, 10**6, 500.0, key="stem.mem_budget_mb")
    assert scan_tiles_for_budget((10, 10), (2048, 2048), 100, 10**6, None).n_tiles == 1


# ------------------------------------------------------------------------------------ 4D-STEM


def test_fourd_tiled_equals_one_piece_and_full_patterns(sample):
    """COM of both modes streamed over 2×2-probe tiles == one piece == com_map on all patterns held."""
    s = probe()
    cell = sample.repeat((2, 2, 1))
    ext = (float(sample.cell[0, 0]), float(sample.cell[1, 1]))
    one_plan, _, _ = fourd_plan([cell], s, ext, FD, None)
    small = budget_for(one_plan, 4)
    plan, _, _ = fourd_plan([cell], s, ext, FD, small)
    assert plan.n_tiles > 4 and plan.peak_mb <= SAFETY * small
    one = fourd_maps([cell], s, ext, FD, 1, "top", None)
    tiled = fourd_maps([cell], s, ext, FD, 1, "top", small, log=LOG)
    pat = to_sample_frame(simulate_patterns(cell, s, ext, None), "top", ky_dim="ky")
    for mode in ("bright_field", "whole"):
        ref = com_map(pat, mode, FD, s.semiangle).values
        assert np.abs(ref).max() > 1e-3  # a real signal, not zeros
        np.testing.assert_allclose(tiled[f"com_{mode}"].values, one[f"com_{mode}"].values, rtol=0, atol=1e-6)
        np.testing.assert_allclose(tiled[f"com_{mode}"].values, ref, rtol=0, atol=1e-6 * np.abs(ref).max() + 1e-6)
    assert tiled["com_bright_field"].attrs["mask_radius_mrad"] == pytest.approx(1.5 * s.semiangle)


def test_fourd_tiled_with_phonons_noise_and_per_pattern_disc(sample):
    """Frozen-phonon sum, shot noise (one stream per probe) and per-pattern re-centred BF masks
    with a measured radius do not depend on the tiling."""
    s = probe()
    cell = sample.repeat((2, 2, 1))
    conf2 = cell.copy()
    conf2.positions += np.random.default_rng(3).normal(0, 0.08, conf2.positions.shape)
    ext = (float(sample.cell[0, 0]), float(sample.cell[1, 1]))
    fd = FD | {"dose": 1e5, "com_disc": "per_pattern", "com_radius": "measured"}
    one_plan, cached, _ = fourd_plan([cell, conf2], s, ext, fd, None)
    small = budget_for(one_plan, 6)
    one = fourd_maps([cell, conf2], s, ext, fd, 7, "bottom", None)
    tiled = fourd_maps([cell, conf2], s, ext, fd, 7, "bottom", small, log=LOG)
    for mode in ("bright_field", "whole"):
        np.testing.assert_allclose(tiled[f"com_{mode}"].values, one[f"com_{mode}"].values, rtol=0, atol=1e-6)
    other_seed = fourd_maps([cell, conf2], s, ext, fd, 8, "bottom", None)
    assert np.abs(other_seed["com_whole"].values - one["com_whole"].values).max() > 1e-4  # the noise is there


def stem_cfg(**over) -> dict:
    stem = {"structures": ["rigid"], "sample": {"thickness_nm": 0.0, "beam_entrance": "top"},
            "potential_supersampling": 1,
            "fourd": {"potential_sampling": 0.3, "scan_sampling": 2.0, "min_disc_radius_px": 1.5, "semiangle_mrad": 4.0},
            "planview": {"focus": ["surface"], "potential_sampling": 0.1, "scan_sampling": 1.0,
                         "detector": {"step_mrad": 4.0, "outer_mrad": 100.0},
                         "ranges": {"haadf": [60, 100], "laadf": [32, 100]}, "tiles": 1}}
    for k, v in over.items():
        stem[k] = stem[k] | v if isinstance(v, dict) and k in stem else v
    cfg = {"systems": {"STO": {}}, "twist": {"angles_deg": [36.87], "max_sigma": 30}, "stem": stem}
    return copy.deepcopy(validate_config(cfg)["stem"])


def test_run_fourd_streams_patterns_to_disk_and_refuses_tiny_budget(tmp_path):
    atoms = build_bilayer(nearest_csl(36.87, 30), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=10.0))
    atoms.info["rigid_positions"] = atoms.positions.copy()
    cfg = stem_cfg(fourd={"store_patterns": True})
    ref, ref_full = run_fourd({"rigid": atoms}, cfg, "cpu", 1, Checkpoint(None), LOG)
    from twistox.stem.multislice import probe_settings
    from twistox.stem.optics import fourd_tiling

    s = probe_settings(cfg, "fourd", "cpu")
    smp = planview_sample(atoms, 0.0, cfg["sample"]["vacuum"], "top")
    L = float(smp.cell[0, 0])
    one_plan_args = ([smp.repeat((fourd_tiling(L, 4.0, 300e3, 1.5),) * 2 + (1,))], s, (L, float(smp.cell[1, 1])),
                     cfg["fourd"])
    one_plan, _, _ = fourd_plan(*one_plan_args, None)
    assert one_plan.scan[0] * one_plan.scan[1] >= 9
    cfg_small = stem_cfg(fourd={"store_patterns": True}, mem_budget_mb=budget_for(one_plan, 3))
    assert fourd_plan(*one_plan_args, cfg_small["mem_budget_mb"])[0].n_tiles > 2
    ds, full = run_fourd({"rigid": atoms}, cfg_small, "cpu", 1, Checkpoint(tmp_path / "ck"), LOG)
    assert (tmp_path / "ck" / "fourd-rigid-patterns.zarr").exists()
    np.testing.assert_allclose(ds["com_raw"].values, ref["com_raw"].values, rtol=0, atol=1e-6)
    np.testing.assert_allclose(full["patterns"].values, ref_full["patterns"].values, rtol=0, atol=1e-7)
    assert full["patterns"].dims == ("y", "x", "ky", "kx") and full["patterns"].attrs["k_units"] == "mrad"
    # the stored patterns are the simulated ones in the sample frame: their COM is the stored COM
    np.testing.assert_allclose(com_map(full["patterns"].load(), "bright_field", cfg["fourd"], 4.0).values,
                               ds["com_raw"].values, rtol=0, atol=1e-6)
    # resumed: the checkpointed COM and its pattern store are reused
    again, full2 = run_fourd({"rigid": atoms}, cfg_small, "cpu", 1, Checkpoint(tmp_path / "ck"), LOG)
    np.testing.assert_array_equal(again["com_raw"].values, ds["com_raw"].values)
    with pytest.raises(ConfigError, match=r"stem\.mem_budget_mb"):
        run_fourd({"rigid": atoms}, stem_cfg(mem_budget_mb=100.0), "cpu", 1, Checkpoint(None), LOG)
    with pytest.raises(ConfigError, match=r"resources\.stem_4d\.mem_mb"):
        run_fourd({"rigid": atoms}, stem_cfg(), "cpu", 1, Checkpoint(None), LOG, mem_budget_mb=100.0)


# ------------------------------------------------------------------------------------ plan view


def test_planview_tiled_equals_one_piece(sample):
    s = probe(semiangle=20.0, potential_sampling=0.1, scan_sampling=1.0)
    pot = build_potential(sample, s)
    one_plan = planview_plan(sample, s, 100.0, 4.0, None, pot=pot)
    small = budget_for(one_plan, 5)
    plan = planview_plan(sample, s, 100.0, 4.0, small, pot=pot)
    assert plan.n_tiles > 4 and plan.peak_mb <= SAFETY * small
    one = planview_radial(sample, s, 0.0, 100.0, 4.0, pot=pot)
    tiled = planview_radial(sample, s, 0.0, 100.0, 4.0, pot=pot, budget_mb=small, log=LOG)
    assert tiled.shape == one.shape and np.allclose(tiled["x"], one["x"]) and np.allclose(tiled["y"], one["y"])
    haadf1, haadf2 = (integrate_range(r, 60, 100).values for r in (one, tiled))
    assert haadf1.std() > 0.05 * haadf1.mean()  # atomic contrast
    np.testing.assert_allclose(haadf2, haadf1, rtol=1e-5, atol=0)
    np.testing.assert_allclose(tiled.values, one.values, rtol=1e-5, atol=1e-8)


def test_run_planview_refuses_budget_before_work():
    atoms = build_bilayer(nearest_csl(36.87, 30), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=10.0))
    atoms.info["rigid_positions"] = atoms.positions.copy()
    with pytest.raises(ConfigError, match=r"resources\.stem_haadf\.mem_mb"):
        run_planview({"rigid": atoms}, stem_cfg(), "cpu", 1, Checkpoint(None), LOG, mem_budget_mb=50.0)
