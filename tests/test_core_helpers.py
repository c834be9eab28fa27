"""core/: the one checkpoint class, settings hash, device picker and rule-script helper."""

import logging
import types

import numpy as np
import pytest

from twistox.core.checkpoint import Checkpoint, atomic_write_text
from twistox.core.device import array_device, torch_device
from twistox.core.hashing import settings_hash
from twistox.core.runner import stage_script, stage_seed


def test_settings_hash_is_order_free_for_dicts_and_sensitive_to_values():
    assert settings_hash({"a": 1, "b": 2}) == settings_hash({"b": 2, "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})
    x = np.arange(6.0).reshape(2, 3)
    assert settings_hash(x) != settings_hash(x.reshape(3, 2))  # shape is part of the key
    assert settings_hash("ab", "c") != settings_hash("a", "bc")
    assert settings_hash(x + 1e-7, decimals=4) == settings_hash(x, decimals=4)
    assert settings_hash(x + 1e-7) != settings_hash(x)
    assert len(settings_hash(1, length=12)) == 12


@pytest.mark.parametrize("fmt", ["npz", "pt"])
def test_checkpoint_roundtrip_key_and_atomicity(tmp_path, fmt):
    torch = pytest.importorskip("torch")
    ck = Checkpoint(tmp_path, key="k1", fmt=fmt)
    arr = torch.arange(4.0) if fmt == "pt" else np.arange(4.0)
    ck.save("phase", x=arr, step=7, hist=[{"F": 1.5}], rng={"state": 3})
    got = ck.load("phase")
    assert np.array_equal(np.asarray(got["x"]), np.arange(4.0))
    assert got["step"] == 7 and got["hist"] == [{"F": 1.5}] and got["rng"] == {"state": 3}
    assert Checkpoint(tmp_path, key="other", fmt=fmt).load("phase") is None  # stale key ignored
    assert ck.load("phase", key="other") is None
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temporaries left
    ck.path("phase").write_bytes(b"truncated")  # a damaged file means "start over", not a crash
    assert ck.load("phase") is None
    assert Checkpoint(None, "k").load("phase") is None  # disabled
    with pytest.raises(ValueError, match="checkpoint name"):
        ck.save("../escape", x=np.zeros(1))


def test_checkpoint_dataset_is_computed_once_per_key(tmp_path):
    import xarray as xr

    n = []

    def compute():
        n.append(1)
        return xr.Dataset({"a": ("x", np.arange(3.0))})

    ck = Checkpoint(tmp_path, key="s1")
    ck.dataset("part", compute)
    ds = ck.dataset("part", compute)
    assert len(n) == 1 and np.array_equal(ds["a"].values, [0, 1, 2])
    ck.dataset("part", compute, key="s2")
    assert len(n) == 2


def test_atomic_write_text(tmp_path):
    p = atomic_write_text(tmp_path / "a" / "m.json", "{}")
    assert p.read_text() == "{}" and [f.name for f in p.parent.iterdir()] == ["m.json"]


def test_device_picker_rejects_unknown_values_and_respects_cpu():
    assert torch_device("cpu") == "cpu" and array_device("cpu") == "cpu"
    for f in (torch_device, array_device):
        with pytest.raises(ValueError, match="device: 'gpu' is not allowed; allowed: auto, cpu, cuda"):
            f("gpu")


def test_stage_script_seeds_logs_and_reraises(tmp_path):
    sm = types.SimpleNamespace(log=[str(tmp_path / "r.log")], threads=1, config={"seed": 5},
                               wildcards=types.SimpleNamespace(sample="S5"))
    with stage_script(sm, "demo", seed_wildcard="sample") as run:
        assert run.seed == stage_seed(5, "S5") != 5
        a = run.rng.random()
    assert a == np.random.default_rng(stage_seed(5, "S5")).random()
    with pytest.raises(KeyError):
        with stage_script(sm, "demo"):
            raise KeyError("boom")
    logging.getLogger("twistox").handlers.clear()
    assert "demo failed" in (tmp_path / "r.log").read_text()
