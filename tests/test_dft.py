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
from twistox.dft.calculators import CalculatorUnavailable, check_calculator, gpaw_setups, kpoints, make_calculator
from twistox.dft.labeller import Labeller, collect, label_one
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
from twistox.dft.labeller import Labeller
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


def test_label_seed_supplies_matching_frames_and_only_those(tmp_path):
    """dft.label_seed: a frame within the tolerance takes the seed's label (its own geometry kept with it);
    a frame moved by 0.01 Å, or labelled with other settings, is computed."""
    from ase.io import read, write

    write(tmp_path / "configs.extxyz", _frames(3))
    frames = read(tmp_path / "configs.extxyz", ":")  # as the pipeline reads them (numpy ints in info)
    Labeller(tmp_path / "seed", "gpaw", {"ecut_eV": 300}, calc_factory=lambda a, d, t: LennardJones()).label(frames)
    calls = []

    def factory(at, d, t):
        calls.append(at.info["frame_id"])
        return LennardJones()

    moved = [a.copy() for a in frames]
    moved[0].positions[0] += [5e-4, 0.0, 0.0]  # within 1e-3 Å: the same frame
    moved[1].positions[2] += [0.0, 0.01, 0.0]  # a different frame
    lab = Labeller(tmp_path / "run", "gpaw", {"ecut_eV": 300}, calc_factory=factory, seed_dirs=(tmp_path / "seed",))
    st = lab.label(moved)
    assert sorted(calls) == [1] and all(s["status"] == "ok" for s in st)
    assert "seeded_from" in lab.status(moved[0]) and "seeded_from" not in lab.status(moved[1])
    got = lab.result(moved[0])
    ref = LennardJones().get_potential_energy(frames[0].copy())  # the seed's geometry and energy, kept together
    assert np.allclose(got.positions, frames[0].positions) and got.info["REF_energy"] == pytest.approx(ref)
    # provenance the seed lacks (a candidate's sigma, translation, committee energy) comes from the frame;
    # the seed's own keys win
    fresh = [a.copy() for a in frames]
    fresh[2].info.update(sigma=np.int64(5), translation=np.array([0.5, 0.0]), committee_energy=-1.5, REF_energy=9.0)
    lab3 = Labeller(tmp_path / "run4", "gpaw", {"ecut_eV": 300}, calc_factory=factory, seed_dirs=(tmp_path / "seed",))
    assert lab3.seed(fresh) == 3
    got = lab3.result(fresh[2])
    assert got.info["sigma"] == 5 and list(got.info["translation"]) == [0.5, 0.0]
    assert got.info["committee_energy"] == -1.5
    assert got.info["REF_energy"] == pytest.approx(LennardJones().get_potential_energy(frames[2].copy()))
    assert lab3.status(fresh[2])["info_added_from_frame"] == ["committee_energy", "sigma", "translation"]
    other = Labeller(tmp_path / "run2", "gpaw", {"ecut_eV": 500}, calc_factory=factory, seed_dirs=(tmp_path / "seed",))
    assert other.seed(frames) == 0
    with pytest.raises(FileNotFoundError, match="dft.label_seed"):
        Labeller(tmp_path / "run3", "gpaw", {}, seed_dirs=(tmp_path / "nowhere",)).seed(frames)


def test_transient_failures_are_retried_and_scf_failures_are_permanent(tmp_path):
    """Issue 14 item 4: out of memory / launcher / missing code are not cached as failures; a resume retries them;
    labels.csv tells scf_failed (permanent) from transient."""
    import subprocess

    from twistox.dft.labeller import classify_failure
    from twistox.dft.stage import labels_table

    calls = {}

    def raising(exc):
        class Failing(LennardJones):
            def calculate(self, *a, **k):
                raise exc
        return Failing()

    errors = {1: MemoryError("cannot allocate 8 GiB"), 2: OSError("mpirun: launcher failed on node 3"),
              3: RuntimeError("SCF did not converge after 80 iterations")}

    def factory(at, d, t):
        i = at.info["frame_id"]
        calls[i] = calls.get(i, 0) + 1
        return raising(errors[i]) if i in errors else LennardJones()

    frames = _frames(4)
    lab = Labeller(tmp_path, "gpaw", {}, calc_factory=factory)
    st = lab.label(frames, retries=1)
    assert [s["status"] for s in st] == ["ok", "transient", "transient", "failed"]
    assert [s["failure"] for s in st] == ["", "transient", "transient", "scf_failed"]
    assert calls == {0: 1, 1: 2, 2: 2, 3: 1}  # transient ones retried once in the same run, SCF failure not
    table = labels_table(st).splitlines()
    assert table[0].split(",")[5] == "failure"
    assert [r.split(",")[5] for r in table[1:]] == ["", "transient", "transient", "scf_failed"]
    # resume on a healthy node: the transient frames are labelled, the SCF failure stays cached
    errors.pop(1)
    errors.pop(2)
    st = Labeller(tmp_path, "gpaw", {}, calc_factory=factory).label(frames)
    assert [s["status"] for s in st] == ["ok", "ok", "ok", "failed"]
    assert calls == {0: 1, 1: 3, 2: 3, 3: 1}
    good, _ = collect(frames, lab)
    assert [g.info["frame_id"] for g in good] == [0, 1, 2]
    # a calculator that cannot even be built (licence/code missing) is transient too
    assert classify_failure(FileNotFoundError("vasp_std: not found"))[1] == "transient"
    assert classify_failure(subprocess.CalledProcessError(137, "srun pw.x"))[1] == "transient"
    assert classify_failure(RuntimeError("CUDA out of memory"))[1] == "transient"
    assert classify_failure(FloatingPointError("non-finite energy or forces"))[1] == "scf_failed"


def test_transient_failures_stop_the_stage_unless_skipped(tmp_path, monkeypatch):
    from twistox.dft import stage

    frames = _frames(4)
    for i, f in enumerate(frames):
        f.info["split"] = "test" if i == 3 else "train"
    cfg = {"device": "cpu", "dft": {"calculator": "gpaw", "transient_retries": 0, "on_transient_failure": "fail"}}

    class Oom(LennardJones):
        def calculate(self, *a, **k):
            raise MemoryError("oom")

    real = stage.Labeller

    class Fake(real):
        def _factory(self, atoms, directory, txt):
            return Oom() if atoms.info["frame_id"] == 1 else LennardJones()

    monkeypatch.setattr(stage, "Labeller", Fake)
    monkeypatch.setattr(stage, "check_calculator", lambda *a, **k: None)
    with pytest.raises(stage.TransientLabelFailure, match="rerun to retry"):
        stage.run_label(frames, tmp_path / "c", cfg)
    cfg["dft"]["on_transient_failure"] = "skip"
    train, test, good, statuses = stage.run_label(frames, tmp_path / "c", cfg)
    assert [a.info["frame_id"] for a in train] == [0, 2] and len(test) == 1
    assert statuses[1]["failure"] == "transient"


def test_espresso_hubbard_u_is_written_in_ev(tmp_path, monkeypatch):
    """pw.x reads Hubbard_U in eV (INPUT_PW), ecutwfc/degauss in Ry: the input file must say U = 5.3 for Ti.
    The pre-split factory divided U by the Rydberg (0.39 eV), which this test rejects."""
    import io

    from ase.io.espresso import write_espresso_in

    from twistox.dft import calculators

    monkeypatch.setattr(calculators, "check_calculator", lambda *a, **k: None)
    at = bulk_cell(Perovskite())
    settings = {"calculator": "espresso", "hubbard_u": {"Ti": 5.3}, "ecut_eV": 500.0,
                "espresso": {"command": "pw.x", "pseudo_dir": str(tmp_path),
                             "pseudopotentials": {"Sr": "Sr.upf", "Ti": "Ti.upf", "O": "O.upf"}}}
    calc = calculators.make_calculator("espresso", settings, at, directory=tmp_path)
    system = calc.parameters["input_data"]["system"]
    ti = list(dict.fromkeys(at.get_chemical_symbols())).index("Ti") + 1
    assert system[f"Hubbard_U({ti})"] == pytest.approx(5.3)
    assert system["ecutwfc"] == pytest.approx(500.0 / 13.605693122994, rel=1e-10)
    buf = io.StringIO()
    write_espresso_in(buf, at, input_data=calc.parameters["input_data"],
                      pseudopotentials=settings["espresso"]["pseudopotentials"], kpts=(1, 1, 1))
    text = buf.getvalue().lower()
    species = [ln.split()[0] for ln in text.split("atomic_species")[1].strip().splitlines()[:3]]
    assert f"hubbard_u({species.index('ti') + 1})" in text
    line = [ln for ln in text.splitlines() if ln.strip().startswith(f"hubbard_u({species.index('ti') + 1})")][0]
    assert float(line.split("=")[1]) == pytest.approx(5.3)


def test_label_keeps_provenance_read_back_from_extxyz(tmp_path):
    """Frames reach the label workers through extxyz, which reads ints and lists as numpy types; the
    label keeps them (sigma, translation, frame_id, relax_step) as plain values."""
    from ase.io import read, write

    at = _frames(1)[0]
    at.info.update(sigma=5, translation=[0.5, 0.0], relax_step=57, config_type="twisted_alrelax")
    write(tmp_path / "task.extxyz", at, format="extxyz")
    back = read(tmp_path / "task.extxyz", format="extxyz")
    assert not isinstance(back.info["sigma"], int) or not isinstance(back.info["translation"], list)
    out, status = label_one(back, LennardJones(), {"calculator": "lj", "is_dft": False})
    assert status["status"] == "ok"
    assert out.info["sigma"] == 5 and isinstance(out.info["sigma"], int)
    assert out.info["translation"] == [0.5, 0.0] and out.info["relax_step"] == 57
    assert out.info["frame_id"] == at.info["frame_id"] and out.info["config_type"] == "twisted_alrelax"
    write(tmp_path / "label.extxyz", out, format="extxyz")  # and the label itself is writable
