"""Cost prediction (twistox.plan), phase-field memory check, STEM scan tiling (issue 17 items 3-5)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from twistox.core.config import ConfigError
from twistox.phasefield.memory import BASE_MB, BYTES_PER_POINT, check_phasefield_memory, phasefield_memory_mb
from twistox.stem.tiling import SAFETY, iter_tiles, scan_tiles_for_budget, stem_memory_mb

ROOT = Path(__file__).resolve().parents[1]


# --- phase-field memory ------------------------------------------------------------------------

def test_phasefield_memory_linear_in_grid_points():
    small, big = phasefield_memory_mb(32, 32), phasefield_memory_mb(64, 32)
    # 4x the points -> 4x the grid part, same base
    assert (big - BASE_MB) == pytest.approx(4 * (small - BASE_MB))
    assert small > BASE_MB


def test_phasefield_grid_refused_before_it_starts_naming_the_key():
    # 256^2 x 128 = 8.4 M points at ~4 kB each is ~40 GB: cannot fit 8 GB
    with pytest.raises(ConfigError, match=r"resources\.phasefield\.mem_mb") as e:
        check_phasefield_memory(256, 128, 8000)
    assert "256²×128" in str(e.value)
    # the same grid fits a budget just above the prediction; None = no limit
    need = phasefield_memory_mb(256, 128)
    assert check_phasefield_memory(256, 128, need + 1) == pytest.approx(need)
    assert check_phasefield_memory(256, 128, None) == pytest.approx(need)


def test_phasefield_bytes_per_point_matches_measured_fit():
    """The constant in phasefield/memory.py is the slope measured by benchmarks/bench_scaling.py."""
    fits = json.loads((ROOT / "benchmarks" / "results" / "scaling_fits.json").read_text())
    measured = fits["phasefield"]["memory_mb"]["c1"] * 2**20
    assert BYTES_PER_POINT == pytest.approx(measured, rel=0.35)


# --- STEM scan tiles ---------------------------------------------------------------------------

def test_scan_tiles_fit_budget_and_cover_scan_once():
    scan, grid, det = (128, 128), (1280, 1280), 200 * 200
    for budget in (3000, 8000, 20000):
        t = scan_tiles_for_budget(scan, grid, 100, det, budget, batch=8)
        assert t.peak_mb <= budget
        hits = np.zeros(scan, int)
        for ys, xs in iter_tiles(t):
            hits[ys, xs] += 1
        assert (hits == 1).all()
    t_small = scan_tiles_for_budget(scan, grid, 100, det, 3000, batch=8)
    t_big = scan_tiles_for_budget(scan, grid, 100, det, 20000, batch=8)
    assert t_small.tile[0] * t_small.tile[1] < t_big.tile[0] * t_big.tile[1]
    assert t_small.n_tiles > t_big.n_tiles
    # everything at once when the budget holds the whole scan
    whole = stem_memory_mb(grid, 100, scan[0] * scan[1], det, batch=8)
    assert scan_tiles_for_budget(scan, grid, 100, det, whole / SAFETY + 1, batch=8).n_tiles == 1  # tiles plan for SAFETY x budget


def test_stem_memory_model_reproduces_measured_peaks():
    """Peak RSS measured by benchmarks/bench_stem_memory.py (4D tile, 288² grid, 15 slices, 82,944 px)."""
    for probes, measured in ((16, 399), (256, 525), (1024, 1010)):
        assert stem_memory_mb((288, 288), 15, probes, 82944, batch=8) == pytest.approx(measured, rel=0.1)


def test_tile_scans_reproduce_the_full_scan_positions():
    from twistox.stem.multislice import grid_scan
    from twistox.stem.tiling import tile_scan

    full = grid_scan((0.0, 0.0), (10.0, 7.0), 0.5)  # 20 x 14 positions, abTEM order (x, y)
    ref = np.asarray(full.get_positions())  # (nx, ny, 2)
    budget = (stem_memory_mb((64, 64), 4, 0, 10_000, batch=1) + 2.0) / SAFETY  # room for ~26 of 280 probes
    t = scan_tiles_for_budget((14, 20), (64, 64), 4, 10_000, budget, batch=1)  # [y, x] scan; small budget -> tiles
    assert t.n_tiles > 1
    got = np.full_like(ref, np.nan)
    for ys, xs in iter_tiles(t):
        got[xs, ys] = np.asarray(tile_scan(full, ys, xs).get_positions())
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_scan_tiles_refuse_budget_below_potential():
    with pytest.raises(ConfigError, match=r"resources\.stem_4d\.mem_mb"):
        scan_tiles_for_budget((128, 128), (2160, 2160), 100, 1000, 1500)


# --- plan --------------------------------------------------------------------------------------

def _fits(tmp_path: Path) -> Path:
    """Synthetic fits with known laws: relax 1e-4 s * N, phase field 1e-6 s * N per step."""
    pts = [{"size": 1, "t_step_s": 1, "peak_mb": 1}]
    d = {"relax": {"time": {"c0": 0.0, "c1": 1e-4}, "memory_mb": {"c0": 500.0, "c1": 0.1},
                   "model_ratio": {"32ch_L0": 1.0, "16ch_L0": 0.5, "64ch_L1": 6.0}, "points": pts},
         "phasefield": {"time": {"c0": 0.0, "c1": 1e-6}, "memory_mb": {"c0": 700, "c1": 0.004},
                        "steps": {"a": 10.0, "b": 0.0}, "setup_s": {"c0": 0.0, "c1": 0.0}, "points": pts},
         "stem": {"time": {"c0": 0.0, "c1": 1e-9}, "memory_mb": {"c0": 900, "c1": 0.0}, "points": pts},
         "provenance": {"script": "synthetic"}}
    p = tmp_path / "fits.json"
    p.write_text(json.dumps(d))
    return p


def test_plan_relax_matches_hand_count(tmp_path):
    from twistox.checks import load_config
    from twistox.core.config import resolve_samples, validate_config
    from twistox.plan import STARTUP_S, _speed, load_fits, relax_cost
    from twistox.supercell.builder import expected_atom_count
    from twistox.supercell.stage import bilayer_spec

    cfg = validate_config(load_config([ROOT / "config" / "paper.yaml"]))
    fits = load_fits(_fits(tmp_path), gpu_path=tmp_path / "none.json")
    system, by = next(iter(resolve_samples(cfg).items()))
    csl = next(iter(by.values()))
    j = relax_cost(cfg, system, csl, fits)
    r, m, md = cfg["relax"], cfg["mlip"], cfg["relax"]["md"]
    n = expected_atom_count(csl, bilayer_spec(cfg, system))
    calls = r["translation_grid"] ** 2 * r["scan_max_steps"] + r["max_steps"] + round(1000 * md["total_ps"] / md["timestep_fs"])
    k = m["committee_size"] if r["committee_mode"] == "mean" else 1
    ratio = 6.0 * (0.5 if r["dtype"] == "float32" else 1.0)  # paper: 64 ch, L1
    assert (m["num_channels"], m["max_L"]) == (64, 1)
    expect_s = STARTUP_S + calls * k * ratio * (0.0 + 1e-4 * n) / _speed(j.threads)
    assert j.cpu_min == pytest.approx(expect_s / 60)
    assert j.gpu_min is None  # no GPU check recorded -> no GPU claim


def test_plan_phasefield_uses_memory_module_and_grid(tmp_path):
    from twistox.checks import load_config
    from twistox.core.config import resolve_samples, validate_config
    from twistox.phasefield.stage import build_grid
    from twistox.plan import load_fits, phasefield_cost

    cfg = validate_config(load_config([ROOT / "config" / "paper.yaml"]))
    fits = load_fits(_fits(tmp_path), gpu_path=tmp_path / "none.json")
    csl = next(iter(next(iter(resolve_samples(cfg).values())).values()))
    j = phasefield_cost(cfg, csl, fits)
    g = build_grid(cfg["phasefield"], csl.supercell_length(cfg["systems"]["STO"]["a"]), 6)
    assert j.cpu_mem_mb == pytest.approx(phasefield_memory_mb(g.n, g.nz))
    assert f"{g.n}²×{g.nz}" in j.size


def test_plan_cli_paper_config_prints_every_sample_and_resources(capsys):
    from twistox.plan import main

    assert main([str(ROOT / "config" / "paper.yaml")]) == 0
    out = capsys.readouterr().out
    table, block = out.split("# suggested resources")
    for name in ("theta4.98_m23n1", "theta10.39_m11n1", "theta20.02_m17n3"):
        for rule in ("relax", "phasefield", "stem_haadf", "stem_4d"):
            assert any(line.startswith(rule) and name in line for line in table.splitlines()), (rule, name)
    res = yaml.safe_load(block.split("\n", 1)[1])["resources"]
    assert set(res) == {"relax", "phasefield", "stem_haadf", "stem_4d"}
    for r in res.values():
        assert r["mem_mb"] > 0 and r["runtime"] > 0 and math.isfinite(r["runtime"])


def test_plan_bad_config_one_error(tmp_path, capsys):
    from twistox.plan import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("twist: {angles_deg: [5.0], max_sigma: -3}\n")
    assert main([str(ROOT / "config" / "paper.yaml"), str(bad)]) == 2
    assert "max_sigma" in capsys.readouterr().err


def test_power_law_fit_recovers_exponent():
    spec = importlib.util.spec_from_file_location("bench_scaling", ROOT / "benchmarks" / "bench_scaling.py")
    bs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bs)
    x = np.array([1e2, 1e3, 1e4])
    a, b = bs.fit_power(x, 3e-5 * x ** 1.3)
    assert (a, b) == (pytest.approx(3e-5), pytest.approx(1.3))


def test_twistox_plan_subcommand(capsys):
    from twistox.cli import main

    assert main(["plan", "--configfile", str(ROOT / "config" / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "resources:" in out and "phasefield" in out
