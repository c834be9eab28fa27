"""Every check before any job (issue 14, items 1-2): a config file stands alone (schema defaults,
never the toy file), `twistox config` prints the effective config, and every bad value -- types,
ranges, unknown keys, impossible combinations, unreachable angles, unknown elements, bad
experimental files -- is stopped at workflow start by `twistox.checks.check_all` with one
message naming the key and what is allowed. Most cases run through check_all directly (fast);
a sample of them also through a real `snakemake -n`."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, TOY_CONFIG, dry_run_jobs, run_snakemake
from twistox.checks import CHECKS, check_all, load_config
from twistox.core.config import ConfigError, validate_config

TOY = yaml.safe_load(TOY_CONFIG.read_text())
SAMPLE = "theta36.87_m3n1"  # the toy's Sigma5 sample
TWISTOX = Path(sys.executable).with_name("twistox")


def _set(cfg: dict, dotted: str, value) -> None:
    node = cfg
    *head, last = dotted.split(".")
    for k in head:
        node = node.setdefault(k, {}) if isinstance(node, dict) else node[int(k)]
    node[last] = value


def _experiment(tmp: Path, **entry) -> dict:
    return {"analysis": {"experiment": [{"path": str(tmp / "com.npy"), "sample": SAMPLE, "pixel_size": 0.5, **entry}]}}


def _com() -> np.ndarray:
    y, x = np.mgrid[0:16, 0:16].astype(float)
    return np.stack([-(y - 7.3), x - 8.1])


def _files(tmp: Path) -> None:
    np.save(tmp / "com.npy", _com())
    np.save(tmp / "image.npy", _com()[0])
    (tmp / "com.tif").write_bytes(b"II*\0")
    h5 = tmp / "scan.h5"
    import h5py

    with h5py.File(h5, "w") as f:
        f.create_dataset("frames", data=np.random.default_rng(0).random((8, 8, 9, 9)))
    (tmp / "trunc.h5").write_bytes(h5.read_bytes()[:600])


# (id, {dotted key: value} or callable(tmp) -> dict merged into the config, key named, allowed-fragment)
BAD = [
    # types
    ("type-seed", {"seed": "abc"}, "seed", "type integer"),
    ("type-angles", {"twist.angles_deg": "ten"}, "twist.angles_deg", "allowed"),
    ("type-a", {"systems.STO.a": "x"}, "systems.STO.a", "type number"),
    ("type-grid", {"relax.translation_grid": 2.5}, "relax.translation_grid", "allowed"),
    ("type-energy", {"stem.energy_kev": [300]}, "stem.energy_kev", "allowed"),
    ("enum-device", {"device": "gpu"}, "device", "'auto', 'cpu', 'cuda'"),
    ("dft-label-seed-missing", {"dft.label_seed": ["no/such/label/cache"]}, "dft.label_seed", "allowed"),
    # ranges
    ("range-angle-0", {"twist.angles_deg": [0]}, "twist.angles_deg[0]", "0"),
    ("range-angle-95", {"twist.angles_deg": [95]}, "twist.angles_deg[0]", "90"),
    ("range-cells", {"systems.STO.bottom_cells": 0}, "systems.STO.bottom_cells", ">= 1"),
    ("range-vacuum", {"systems.STO.vacuum": -1.0}, "systems.STO.vacuum", ">= 0"),
    ("range-grid-spacing", {"strain.grid_spacing": -0.1}, "strain.grid_spacing", "allowed"),
    ("range-scan", {"stem.planview.scan_sampling": 0}, "stem.planview.scan_sampling", "allowed"),
    ("range-committee", {"mlip.committee_size": 0}, "mlip.committee_size", "allowed"),
    ("range-mem", {"resources.relax": {"mem_mb": 0}}, "resources.relax.mem_mb", ">= 1"),
    # unknown keys
    ("unknown-top", {"twsit": {}}, "<top level>", "'twsit' was unexpected); allowed keys: analysis"),
    ("unknown-relax", {"relax.fmaxx": 0.1}, "relax", "allowed keys"),
    ("unknown-detector", {"stem.planview.detector.outer_mrd": 90}, "stem.planview.detector", "allowed keys"),
    ("unknown-system-key", {"systems.STO.Asite": "Sr"}, "systems.STO", "allowed keys"),
    ("unknown-resource", {"resources.supercell": {"memory_gb": 4}}, "resources.supercell", "mem_mb"),
    # impossible combinations
    ("md-discard", {"relax.md.discard_ps": 0.2}, "relax.md.discard_ps", "allowed"),
    ("fourier-vs-grid", {"strain.fourier_order": 30}, "strain.grid_spacing", "allowed"),
    ("pf-nz-odd", {"phasefield.nz": 15}, "phasefield.nz", "even"),
    ("pf-amplitude", {"phasefield.initial_amplitude": 1e-3}, "phasefield.initial_amplitude", "< 1e-4"),
    ("pf-unstable", {"phasefield.material.c12": 4.0e11}, "phasefield.material", "c11>|c12|"),
    ("stem-range-vs-outer", {"stem.planview.ranges.haadf": [60, 150]}, "stem.planview.ranges.haadf", "outer"),
    ("stem-detector-order", {"stem.cross_section.detector_mrad": [100, 50]}, "stem.cross_section.detector_mrad",
     "allowed"),
    ("stem-bf-disc", {"stem.fourd.max_angle_mrad": 0.5}, "stem.fourd.max_angle_mrad", "semiangle"),
    ("stem-duplicates", {"stem.structures": ["relaxed", "relaxed"]}, "stem.structures", "allowed"),
    ("termination", {"systems.STO.interface": "SrO-PbO2"}, "systems.STO.interface", "allowed"),
    # unreachable angles
    ("reach-planview", {"stem.planview.detector.outer_mrad": 250.0, "stem.planview.ranges.haadf": [60, 250]},
     "stem.planview.potential_sampling", "allowed: stem.planview.potential_sampling <="),
    ("reach-cross", {"stem.cross_section.detector_mrad": [50, 200]}, "stem.cross_section.potential_sampling",
     "allowed"),
    ("reach-4d", {"stem.fourd.max_angle_mrad": 60.0}, "stem.fourd.potential_sampling", "allowed"),
    ("twist-sigma", {"twist.angles_deg": [5.0]}, "twist.max_sigma", "allowed"),
    # unknown elements / calculators
    ("element-A", {"systems.STO.A": "Xx"}, "systems.STO.A", "allowed"),
    ("element-B", {"systems.STO.B": "Tx"}, "systems.STO.B", "allowed"),
    ("element-X", {"systems.STO.X": "Q"}, "systems.STO.X", "allowed"),
    ("calculator", {"dft.calculator": "castep"}, "dft.calculator", "allowed"),
    # experimental files
    ("exp-missing", lambda t: _experiment(t, path=str(t / "nope.npy")), "analysis.experiment[0].path", "not found"),
    ("exp-format", lambda t: _experiment(t, path=str(t / "com.tif")), "analysis.experiment[0].path", "allowed"),
    ("exp-sample", lambda t: _experiment(t, sample="theta5.00_m23n1"), "analysis.experiment[0].sample", "allowed"),
    ("exp-system", lambda t: _experiment(t, system="BTO"), "analysis.experiment[0].system", "allowed"),
    ("exp-rank", lambda t: _experiment(t, path=str(t / "image.npy")), "analysis.experiment[0].path", "must be 3D"),
    ("exp-truncated", lambda t: _experiment(t, path=str(t / "trunc.h5"), kind="4dstem", k_sampling_mrad=1.0),
     "analysis.experiment[0].path", "cannot be read"),
    ("exp-uncalibrated", lambda t: _experiment(t, pixel_size=None), "analysis.experiment[0].pixel_size", "set config key"),
    ("exp-4d-uncalibrated", lambda t: _experiment(t, path=str(t / "scan.h5"), kind="4dstem"),
     "analysis.experiment[0].k_sampling_mrad", "set config key"),
]


def _bad_config(case, tmp: Path) -> dict:
    _files(tmp)
    cfg = copy.deepcopy(TOY)
    _, change, _, _ = case
    if callable(change):
        for section, value in change(tmp).items():
            cfg.setdefault(section, {}).update(value)
    else:
        for k, v in change.items():
            _set(cfg, k, v)
    return cfg


def test_at_least_30_distinct_bad_values():
    assert len({c[0] for c in BAD}) == len(BAD) >= 30


def test_toy_config_passes_every_check():
    cfg = check_all(copy.deepcopy(TOY))
    assert cfg["results"] == "results"
    assert {n for n, _ in CHECKS} >= {"schema", "strain", "phasefield", "stem", "experiment"}


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_value_is_one_clear_error(case, tmp_path):
    cfg = _bad_config(case, tmp_path)
    with pytest.raises(ConfigError) as exc:
        check_all(cfg)
    msg = str(exc.value)
    _, _, key, allowed = case
    assert f"config key '{key}" in msg, msg
    assert allowed in msg, msg
    assert "\n" not in msg.strip(), "one message, one line"


# a sample of the cases, through the real workflow entry point: stopped by `snakemake -n`, nothing run
SNAKEMAKE_CASES = ["type-seed", "unknown-detector", "fourier-vs-grid", "reach-4d", "element-A", "exp-rank"]


@pytest.mark.parametrize("name", SNAKEMAKE_CASES)
def test_snakemake_dry_run_stops_bad_value(name, tmp_path):
    case = next(c for c in BAD if c[0] == name)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(_bad_config(case, tmp_path)))
    p = run_snakemake("-n", "--configfile", f, workdir=tmp_path / "w", check=False)
    text = p.stdout + p.stderr
    assert p.returncode != 0
    assert "invalid configuration" in text and f"config key '{case[2]}" in text, text[-2000:]
    assert not dry_run_jobs(text) and not (tmp_path / "w" / "results").exists()


def test_every_sample_of_a_sweep_is_checked():
    """strain.fourier_order fits the Sigma13 cell but not the smaller Sigma5 one: the sweep is stopped,
    naming the sample, although the first angle alone would pass."""
    cfg = copy.deepcopy(TOY)
    cfg["twist"]["angles_deg"] = [22.62, 36.87]
    cfg["strain"]["grid_spacing"] = 0.5
    cfg["strain"]["fourier_order"] = 10  # Sigma13: L = 14.08 Å -> 29 points > 21; Sigma5: L = 8.73 Å -> 18 < 21
    with pytest.raises(ConfigError, match=r"strain.grid_spacing.*sample STO/theta36.87_m3n1"):
        check_all(cfg)
    cfg["twist"]["angles_deg"] = [22.62]
    check_all(cfg)


# ------------------------------------------------------------------------------ a config file stands alone

MINIMAL = {"systems": {"STO": {}}, "twist": {"angles_deg": [12.68]}}  # no max_sigma: schema 300 (toy: 30)


def _schema_defaults() -> dict:
    return validate_config(copy.deepcopy(MINIMAL))


def test_load_config_does_not_merge_the_toy_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(MINIMAL))
    cfg = check_all(load_config([f]))
    ref = _schema_defaults()
    # keys the file omits take the schema default, not the toy value
    for dotted, toy_value in (("twist.max_sigma", 30), ("stem.cross_section.vacuum", 3.0),
                              ("dft.configs.md_steps", 30), ("relax.md.total_ps", 0.1)):
        got, want = cfg, ref
        for k in dotted.split("."):
            got, want = got[k], want[k]
        assert got == want != toy_value, dotted
    assert cfg == ref
    # no file: the toy; --config overrides on top, parsed as snakemake parses them
    toy = load_config([], ["seed=7", "twist={'angles_deg': [22.62]}"])
    assert toy["seed"] == 7 and toy["systems"] == TOY["systems"]
    validate_config(toy)  # nested --config values arrive as strings (as in snakemake) and are coerced here
    assert toy["twist"] == {**TOY["twist"], "angles_deg": [22.62]}  # nested values merge, as in snakemake


def test_snakemake_configfile_stands_alone(tmp_path):
    """12.68 deg is Sigma41: found with the schema's max_sigma 300, refused with the toy's 30."""
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(MINIMAL))
    p = run_snakemake("-n", "--configfile", f, workdir=tmp_path / "w")
    samples = {j.wildcards.get("sample") for j in dry_run_jobs(p.stdout + p.stderr)} - {None}
    assert samples == {"theta12.68_m9n1"}
    # the same file merged over the toy (the old behaviour) would have been refused:
    merged = copy.deepcopy(TOY)
    merged["twist"] = {**merged["twist"], **MINIMAL["twist"]}
    with pytest.raises(ConfigError, match="twist.max_sigma"):
        check_all(merged)


def test_twistox_config_cli(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(MINIMAL))
    p = subprocess.run([str(TWISTOX), "config", "--configfile", str(f), "--config", "seed=5"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    ref = _schema_defaults()
    ref["seed"] = 5
    assert yaml.safe_load(p.stdout) == ref
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**MINIMAL, "relax": {"md": {"total_ps": 1.0, "discard_ps": 2.0}}}))
    p = subprocess.run([str(TWISTOX), "config", "--configfile", str(bad)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and not p.stdout
    assert re.search(r"config key 'relax.md.discard_ps'.*allowed", p.stderr), p.stderr


def test_known_keys_names_the_section_and_allowed_keys():
    from dataclasses import dataclass

    from twistox.core.config import known_keys

    @dataclass(frozen=True)
    class S:
        frames: int = 0
        fmax: float = 0.05

    assert known_keys("a.b", {"frames": 2}, S) == {"frames": 2}
    assert known_keys("a.b", None, S) == {}
    with pytest.raises(ConfigError, match=r"a\.b: unknown key\(s\) \['frame'\]; allowed: \['fmax', 'frames'\]"):
        known_keys("a.b", {"frame": 2}, S)
