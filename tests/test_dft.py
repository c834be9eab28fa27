"""DFT factory and labeller: clear errors, +U reaching GPAW, resumable labelling, failed frames excluded."""

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from twistox.core.config import ConfigError
from twistox.dft.labelling import (CalculatorUnavailable, Labeller, check_calculator, collect, gpaw_setups, kpoints,
                         label_one, make_calculator)
from twistox.supercell.builder import Perovskite
from twistox.dft.trainset import bulk_cell, rattle, slab_1x1

HAS_GPAW = importlib.util.find_spec("gpaw") is not None


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        at = rattle(bulk_cell(Perovskite()), rng, 0.05)
        at.info.update(frame_id=i, config_type="bulk", split="train")
        out.append(at)
    return out


def test_unknown_calculator_is_one_clear_error():
    with pytest.raises(ConfigError) as e:
        check_calculator("castep")
    msg = str(e.value)
    assert "dft.calculator" in msg and "'castep'" in msg
    for name in ("gpaw", "vasp", "espresso", "chgnet"):
        assert name in msg
    with pytest.raises(CalculatorUnavailable):
        make_calculator("castep", {}, bulk_cell(Perovskite()))


def test_missing_codes_say_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in ("gpaw", "chgnet") else real(n, *a))
    with pytest.raises(CalculatorUnavailable, match="pip install gpaw gpaw-data"):
        check_calculator("gpaw")
    with pytest.raises(CalculatorUnavailable, match="pip install chgnet"):
        make_calculator("chgnet", {}, None)
    for v in ("ASE_VASP_COMMAND", "VASP_COMMAND", "VASP_SCRIPT"):
        monkeypatch.delenv(v, raising=False)
    with pytest.raises(CalculatorUnavailable, match="ASE_VASP_COMMAND"):
        check_calculator("vasp")
    with pytest.raises(CalculatorUnavailable, match="pseudopotentials|not found"):
        check_calculator("espresso", {"espresso": {"command": "/bin/true"}})


def test_kpoints_follow_density_and_periodicity():
    mat = Perovskite()
    assert kpoints(bulk_cell(mat), 1.0) == (2, 2, 2)
    assert kpoints(bulk_cell(mat), 3.5) == (6, 6, 6)
    assert kpoints(slab_1x1(mat, 4, 0, 8.0), 1.0) == (2, 2, 1)  # no k-points along the vacuum


def test_gpaw_setups_string():
    assert gpaw_setups({"Ti": 5.3}) == {"Ti": ":d,5.3"}
    assert gpaw_setups({"Ti": 0.0}) == {}


@pytest.mark.skipif(not HAS_GPAW, reason="GPAW not installed")
def test_gpaw_plus_u_reaches_calculator_and_scf_failure_is_recorded(tmp_path):
    at = _frames(1)[0]
    settings = {"hubbard_u": {"Ti": 5.3}, "ecut_eV": 200.0, "kpt_density": 0.5, "scf": {"max_iterations": 2}}
    calc = make_calculator("gpaw", settings, at, txt=tmp_path / "gpaw.txt")
    par = calc.parameters
    get = (lambda k: getattr(par, k)) if hasattr(par, "setups") else par.__getitem__  # new / old GPAW API
    assert dict(get("setups")) == {"Ti": ":d,5.3"}
    assert "LDA" in str(get("xc"))
    out, status = label_one(at, calc, {"calculator": "gpaw", "is_dft": True})
    # 2 SCF iterations cannot converge: recorded as failed with the reason, no label
    assert out is None and status["status"] == "failed"
    assert status["reason"].startswith("scf_not_converged")
    txt = (tmp_path / "gpaw.txt").read_text()
    assert "Hubbard: {U: 5.3" in txt  # the +U is in the Ti setup GPAW actually built


def test_failed_frames_never_reach_the_training_set(tmp_path):
    class Broken(LennardJones):
        def calculate(self, *a, **k):
            raise RuntimeError("SCF did not converge after 80 iterations")

    frames = _frames(3)
    lab = Labeller(tmp_path, "gpaw", {},
                   calc_factory=lambda at, d, t: Broken() if at.info["frame_id"] == 1 else LennardJones())
    st = lab.label(frames)
    assert [s["status"] for s in st] == ["ok", "failed", "ok"]
    assert "scf_not_converged" in st[1]["reason"]
    good, statuses = collect(frames, lab)
    assert [g.info["frame_id"] for g in good] == [0, 2]
    assert "REF_energy" in good[0].info and good[0].arrays["REF_forces"].shape == (5, 3)
    # a failed frame is remembered, not retried on resume
    assert lab.label(frames)[1]["status"] == "failed"


_SLOW = """
import sys, time
sys.path.insert(0, {src!r})
import numpy as np
from ase.calculators.lj import LennardJones
from twistox.dft.labelling import Labeller
from twistox.supercell.builder import Perovskite
from twistox.dft.trainset import bulk_cell, rattle

class Slow(LennardJones):
    def calculate(self, *a, **k):
        time.sleep(0.7)
        super().calculate(*a, **k)

rng = np.random.default_rng(0)
frames = []
for i in range(8):
    at = rattle(bulk_cell(Perovskite()), rng, 0.05)
    at.info.update(frame_id=i, config_type="bulk", split="train")
    frames.append(at)
Labeller({cache!r}, "gpaw", {{}}, calc_factory=lambda at, d, t: Slow()).label(frames)
"""


def test_killed_labelling_job_resumes_with_only_the_rest(tmp_path):
    cache = tmp_path / "cache"
    src = str(Path(__file__).resolve().parents[1] / "src")
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(_SLOW.format(src=src, cache=str(cache))))
    p = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ, OMP_NUM_THREADS="1"))
    t0 = time.time()
    while time.time() - t0 < 60:
        if len(list(cache.glob("*.extxyz"))) >= 3:
            break
        time.sleep(0.1)
    p.kill()  # SIGKILL half-way: no chance to clean up
    p.wait()
    done_before = len(list(cache.glob("*.extxyz")))
    assert 3 <= done_before < 8

    calls = []

    def factory(at, d, t):
        calls.append(at.info["frame_id"])
        return LennardJones()

    frames = _frames(8)  # the same frames (same seed) -> same keys
    st = Labeller(cache, "gpaw", {}, calc_factory=factory).label(frames)
    assert len(calls) == 8 - done_before  # only the rest is labelled
    assert all(s["status"] == "ok" for s in st)
    assert not list(cache.glob(".*"))  # no half-written files left behind look like results
    good, _ = collect(frames, Labeller(cache, "gpaw", {}, calc_factory=factory))
    assert [g.info["frame_id"] for g in good] == list(range(8))


def test_changed_settings_do_not_reuse_labels(tmp_path):
    frames = _frames(2)
    Labeller(tmp_path, "gpaw", {"ecut_eV": 300}, calc_factory=lambda a, d, t: LennardJones()).label(frames)
    lab2 = Labeller(tmp_path, "gpaw", {"ecut_eV": 500}, calc_factory=lambda a, d, t: LennardJones())
    assert not any(lab2.done(a) for a in frames)
