"""Config validation: each bad input gives one clear error naming the key and the allowed values."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from twistox.core.config import ConfigError, resolve_samples, validate_config

ROOT = Path(__file__).resolve().parents[1]


def load(name="config.yaml"):
    with open(ROOT / "config" / name) as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_valid(name):
    cfg = validate_config(load(name))
    assert cfg["seed"] >= 0 and cfg["twist"]["angles_deg"]


def test_defaults_filled():
    cfg = validate_config({"systems": {"STO": {}}, "twist": {"angles_deg": [10]}})
    assert cfg["systems"]["STO"]["a"] == 3.905
    assert cfg["systems"]["STO"]["interface"] == "SrO-TiO2"
    assert cfg["twist"]["max_sigma"] == 300


def test_samples_resolved_and_named():
    cfg = validate_config(load("paper.yaml"))
    names = sorted(resolve_samples(cfg)["STO"])
    assert names == ["theta10.39_m11n1", "theta20.02_m17n3", "theta4.98_m23n1"]


def _bad(mutate):
    cfg = load()
    mutate(cfg)
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg)
    return str(exc.value)


@pytest.mark.parametrize("theta", [0, 90, 120, -5])
def test_angle_out_of_range(theta):
    msg = _bad(lambda c: c["twist"].__setitem__("angles_deg", [10, theta]))
    assert "twist.angles_deg[1]" in msg and ("90" in msg or "0" in msg)


def test_angle_nan():
    msg = _bad(lambda c: c["twist"].__setitem__("angles_deg", [float("nan")]))
    assert "twist.angles_deg[0]" in msg and "0 < theta < 90" in msg


def test_negative_thickness():
    msg = _bad(lambda c: c["systems"]["STO"].__setitem__("bottom_cells", -2))
    assert "systems.STO.bottom_cells" in msg and ">= 1" in msg


def test_unknown_termination():
    msg = _bad(lambda c: c["systems"]["STO"].__setitem__("interface", "SrO-PbO2"))
    assert "systems.STO.interface" in msg and "TiO2" in msg


def test_sigma_limit_too_small():
    def m(c):
        c["twist"]["angles_deg"] = [5.0]
        c["twist"]["max_sigma"] = 50
        c["twist"]["max_error_deg"] = 0.5

    msg = _bad(m)
    assert "twist.max_sigma" in msg and "allowed: max_sigma >= 221" in msg  # (21,1): 5.45 deg


def test_unknown_key():
    msg = _bad(lambda c: c.__setitem__("twsit", {}))
    assert "twsit" in msg and "allowed keys" in msg


def test_cli_rejects_bad_config_before_any_job(tmp_path):
    cfg = load()
    cfg["twist"]["angles_deg"] = [0.0]
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(f), "--directory",
                          str(tmp_path), "-s", str(ROOT / "Snakefile")], capture_output=True, text=True)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "twist.angles_deg[0]" in text
    assert not (tmp_path / "results").exists()


def test_yaml11_exponent_strings_are_numbers():
    cfg = yaml.safe_load("systems: {STO: {vacuum: 1e1}}\ntwist: {angles_deg: [2.262e1]}\n")
    assert isinstance(cfg["systems"]["STO"]["vacuum"], str)  # PyYAML's YAML 1.1 reading
    validate_config(cfg)
    assert cfg["systems"]["STO"]["vacuum"] == 10.0 and cfg["twist"]["angles_deg"] == [22.62]


def test_numeric_strings_coerced_only_where_numbers_are_wanted():
    cfg = load()
    cfg["twist"]["angles_deg"] = ["10.0"]  # as nested `snakemake --config` values arrive
    cfg["twist"]["max_sigma"] = "100"
    cfg["systems"]["STO"]["interface"] = "100"  # a string field stays a string (and is then rejected)
    with pytest.raises(ConfigError, match="systems.STO.interface"):
        validate_config(cfg)
    assert cfg["twist"]["angles_deg"] == [10.0] and cfg["twist"]["max_sigma"] == 100
