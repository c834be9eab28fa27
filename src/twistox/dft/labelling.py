"""DFT labelling: an ASE-calculator factory and a resumable, frame-by-frame labeller.

Calculators (``config["dft"]["calculator"]``):

- ``gpaw`` (default, open source, runs here): LDA + U (U on the d shell of the elements in
  ``hubbard_u``, the paper's 5.3 eV on Ti -> ``setups={'Ti': ':d,5.3'}``), PW or LCAO mode.
- ``vasp``, ``espresso``: the same physics for users who have those codes (ASE calculators).
- ``chgnet``: pretrained universal potential shipped inside its PyPI package; fast
  exploration only. Its labels are flagged ``is_dft = False`` in every frame and in provenance.

Labels: ``REF_energy`` (eV), ``REF_forces`` (eV/Å), ``REF_stress`` (eV/Å^3, Voigt xx yy zz yz xz xy,
ASE sign) where the calculator provides stress. Every frame is written to its own file in a
cache directory as soon as it is done (atomic rename), keyed by frame id + a hash of the
geometry and the calculator settings, so a killed job resumes with only the missing frames.
A frame whose SCF does not converge (or whose calculator fails) is recorded as failed, with
the reason, and never enters a training set.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, kptdensity2monkhorstpack
from ase.io import read, write

from twistox.core.config import ConfigError

RY_EV = 13.605693122994  # eV per Rydberg (QE 6.x reads Hubbard_U in Ry)

CALCULATORS: dict[str, dict] = {
    "gpaw": {"is_dft": True, "module": "gpaw",
             "install": "pip install gpaw gpaw-data (needs libxc-dev libfftw3-dev; see envs/install_gpaw.sh)"},
    "vasp": {"is_dft": True, "module": None,
             "install": "VASP is licensed software: install it, then set ASE_VASP_COMMAND (or VASP_COMMAND) "
                        "and VASP_PP_PATH (PAW potentials)"},
    "espresso": {"is_dft": True, "module": None,
                 "install": "apt-get install quantum-espresso (pw.x) or set ASE_ESPRESSO_COMMAND, and give "
                            "dft.espresso.pseudopotentials + dft.espresso.pseudo_dir with UPF files for every element"},
    "chgnet": {"is_dft": False, "module": "chgnet", "install": "pip install chgnet (weights ship in the package)"},
}


class CalculatorUnavailable(ConfigError):
    """The requested calculator is unknown or its code is not installed here."""


def check_calculator(name: str, settings: dict | None = None, key: str = "dft.calculator") -> None:
    """Raise CalculatorUnavailable (one message: key, allowed values, how to install) if ``name`` cannot run."""
    settings = settings or {}
    if name not in CALCULATORS:
        raise CalculatorUnavailable(f"config key '{key}': unknown calculator {name!r}; allowed: "
                                    + ", ".join(repr(c) for c in CALCULATORS))
    info = CALCULATORS[name]
    missing = None
    if info["module"] and importlib.util.find_spec(info["module"]) is None:
        missing = f"Python package '{info['module']}' is not installed"
    elif name == "gpaw" and importlib.util.find_spec("gpaw_data") is None and not os.environ.get("GPAW_SETUP_PATH"):
        missing = "GPAW's PAW setups are missing (no gpaw-data package, GPAW_SETUP_PATH unset)"
    elif name == "vasp":
        if not any(os.environ.get(v) for v in ("ASE_VASP_COMMAND", "VASP_COMMAND", "VASP_SCRIPT")):
            missing = "no VASP command (ASE_VASP_COMMAND / VASP_COMMAND / VASP_SCRIPT unset)"
        elif not os.environ.get("VASP_PP_PATH"):
            missing = "VASP_PP_PATH (PAW potentials) is unset"
    elif name == "espresso":
        qe = settings.get("espresso", {})
        cmd = qe.get("command") or os.environ.get("ASE_ESPRESSO_COMMAND") or "pw.x"
        pdir = qe.get("pseudo_dir") or os.environ.get("ESPRESSO_PSEUDO")
        if shutil.which(cmd.split()[0]) is None:
            missing = f"Quantum ESPRESSO command {cmd.split()[0]!r} not found"
        elif not qe.get("pseudopotentials") or not pdir:
            missing = "no pseudopotentials configured (dft.espresso.pseudopotentials, dft.espresso.pseudo_dir)"
        else:
            absent = [f for f in qe["pseudopotentials"].values() if not (Path(pdir) / f).exists()]
            if absent:
                missing = f"pseudopotential files not found in {pdir}: {absent}"
    if missing:
        raise CalculatorUnavailable(f"config key '{key}': calculator {name!r} cannot run here: {missing}. "
                                    f"To install: {info['install']}; or choose another of "
                                    + ", ".join(repr(c) for c in CALCULATORS))


def kpoints(atoms: Atoms, density: float) -> tuple[int, int, int]:
    """Monkhorst-Pack grid with >= ``density`` points per Å^-1 along periodic axes (1 along non-periodic)."""
    return tuple(int(k) for k in kptdensity2monkhorstpack(atoms, kptdensity=density, even=False))


def gpaw_setups(hubbard_u: dict[str, float]) -> dict[str, str]:
    """GPAW setups string for +U on the d shell: {'Ti': 5.3} -> {'Ti': ':d,5.3'}."""
    return {el: f":d,{float(u):g}" for el, u in hubbard_u.items() if float(u) != 0.0}


def make_calculator(name: str, settings: dict, atoms: Atoms | None, directory: str | os.PathLike | None = None,
                    txt: str | os.PathLike | None = None) -> Calculator:
    """ASE calculator for one frame (k-points depend on its cell). Settings = config['dft'].

    Raises CalculatorUnavailable for unknown names and codes that are not installed.
    """
    check_calculator(name, settings)
    kd = float(settings.get("kpt_density", 1.0))
    if atoms is None and CALCULATORS[name]["is_dft"]:
        raise ValueError(f"{name}: the frame (atoms) is needed to choose k-points")
    kpts = kpoints(atoms, kd) if atoms is not None else (1, 1, 1)
    u = settings.get("hubbard_u", {"Ti": 5.3})
    xc = settings.get("xc", "LDA")
    if name == "gpaw":
        from gpaw import GPAW, PW, FermiDirac

        g = settings.get("gpaw", {})
        scf = settings.get("scf", {})
        mode = g.get("mode", "pw")
        kw = dict(xc=xc, setups=gpaw_setups(u), kpts=kpts, txt=str(txt) if txt else None,
                  occupations=FermiDirac(float(settings.get("smearing_eV", 0.1))),
                  maxiter=int(scf.get("max_iterations", 80)),
                  convergence={"energy": float(scf.get("energy_tol", 5e-4)),
                               "density": float(scf.get("density_tol", 1e-3)),
                               "eigenstates": float(scf.get("eigenstates_tol", 4e-8))},
                  symmetry="off" if g.get("symmetry_off", False) else {})
        if mode == "pw":
            return GPAW(mode=PW(float(settings.get("ecut_eV", 300.0))), **kw)
        return GPAW(mode="lcao", basis=g.get("basis", "dzp"), h=float(g.get("h", 0.2)), **kw)
    if name == "vasp":
        from ase.calculators.vasp import Vasp

        ldau = {el: {"L": 2, "U": float(v), "J": 0.0} for el, v in u.items()}
        for el in set(atoms.get_chemical_symbols()) - set(ldau):
            ldau[el] = {"L": -1, "U": 0.0, "J": 0.0}
        scf = settings.get("scf", {})
        return Vasp(directory=str(directory or "."), xc=xc, encut=float(settings.get("ecut_eV", 500.0)),
                    kpts=kpts, ismear=0, sigma=float(settings.get("smearing_eV", 0.1)),
                    # EDIFF is a total energy (eV): scale the per-electron-ish GPAW tolerance by atoms
                    ediff=float(scf.get("energy_tol", 5e-4)) * len(atoms), nelm=int(scf.get("max_iterations", 80)),
                    ldau=bool(u), ldautype=2, ldau_luj=ldau, lmaxmix=4, isif=2, ibrion=-1, nsw=0, lwave=False,
                    lcharg=False, **settings.get("vasp", {}).get("extra", {}))
    if name == "espresso":
        from ase.calculators.espresso import Espresso, EspressoProfile

        qe = settings.get("espresso", {})
        order = list(dict.fromkeys(atoms.get_chemical_symbols()))  # QE species index = first appearance
        system = {"ecutwfc": float(settings.get("ecut_eV", 500.0)) / RY_EV, "occupations": "smearing",
                  "degauss": float(settings.get("smearing_eV", 0.1)) / RY_EV, "input_dft": xc.lower()}
        if u:
            system["lda_plus_u"] = True
            for el, val in u.items():
                if el in order:
                    system[f"Hubbard_U({order.index(el) + 1})"] = float(val) / RY_EV
        cmd = qe.get("command") or os.environ.get("ASE_ESPRESSO_COMMAND") or "pw.x"
        profile = EspressoProfile(command=cmd, pseudo_dir=qe["pseudo_dir"])
        return Espresso(profile=profile, directory=str(directory or "."), kpts=kpts,
                        pseudopotentials=qe["pseudopotentials"], tstress=True, tprnfor=True,
                        input_data={"system": system,
                                    "electrons": {"electron_maxstep": int(settings.get("scf", {}).get("max_iterations", 80))}})
    if name == "chgnet":
        from chgnet.model.dynamics import CHGNetCalculator

        from twistox.core.runtime import torch_device

        return CHGNetCalculator(use_device=torch_device(settings.get("device", "auto")), stress_weight=1 / 160.21766208)
    raise AssertionError(name)  # check_calculator rejected it already


def calculator_record(name: str, settings: dict) -> dict:
    """The settings that define the labels (stored in every frame and in the cache key)."""
    keep = ("xc", "hubbard_u", "ecut_eV", "kpt_density", "smearing_eV", "scf", name)
    rec = {"calculator": name, "is_dft": CALCULATORS.get(name, {}).get("is_dft", False)}
    rec.update({k: settings[k] for k in keep if k in settings})
    return rec


def frame_key(atoms: Atoms, record: dict) -> str:
    """'{frame_id:05d}_{hash}': hash of geometry (0.1 mÅ) and calculator settings."""
    h = hashlib.sha1()
    h.update(np.round(atoms.positions, 4).tobytes())
    h.update(np.round(np.asarray(atoms.cell), 4).tobytes())
    h.update(atoms.numbers.astype(np.int64).tobytes())
    h.update(np.asarray(atoms.pbc).tobytes())
    h.update(json.dumps(record, sort_keys=True).encode())
    return f"{int(atoms.info.get('frame_id', 0)):05d}_{h.hexdigest()[:12]}"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _is_scf_failure(exc: BaseException) -> bool:
    return type(exc).__name__ in ("KohnShamConvergenceError", "ConvergenceError", "SCFError") or \
        "converge" in str(exc).lower()


def name_of(calc) -> str:
    return getattr(calc, "name", type(calc).__name__).lower()


def label_one(atoms: Atoms, calc: Calculator, record: dict) -> tuple[Atoms | None, dict]:
    """Run one calculation. Returns (labelled frame or None, status dict with reason and wall time)."""
    t0 = time.time()
    work = atoms.copy()
    work.info.clear()
    orig_pbc = atoms.pbc.copy()
    # plane-wave codes need 3D periodicity: vacuum separates slab images along z
    work.pbc = True
    work.calc = calc
    status = {"frame_id": int(atoms.info.get("frame_id", -1)), "config_type": atoms.info.get("config_type", ""),
              "split": atoms.info.get("split", ""), "n_atoms": len(atoms)}
    try:
        e = float(work.get_potential_energy())
        f = np.asarray(work.get_forces(), float)
        stress = None
        if "stress" in getattr(calc, "implemented_properties", ()):
            try:
                stress = np.asarray(work.get_stress(voigt=True), float)
            except Exception:  # noqa: BLE001 - LCAO and some codes have no stress; label without it
                stress = None
        if not (np.isfinite(e) and np.isfinite(f).all()):
            raise FloatingPointError("non-finite energy or forces")
        if name_of(calc) == "vasp" and getattr(calc, "converged", True) is False:
            # ASE's Vasp returns the last (unconverged) energy without raising
            raise RuntimeError("SCF not converged within NELM (OUTCAR)")
    except Exception as exc:  # noqa: BLE001 - any calculator failure is recorded, not raised
        kind = "scf_not_converged" if _is_scf_failure(exc) else "calculator_error"
        detail = str(exc).strip()[:300] or "no message"
        status.update(status="failed", reason=f"{kind}: {type(exc).__name__}: {detail}",
                      wall_s=time.time() - t0)
        return None, status
    out = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=orig_pbc)
    for k in ("layer",):
        if k in atoms.arrays:
            out.set_array(k, atoms.arrays[k])
    out.info.update({k: v for k, v in atoms.info.items() if isinstance(v, (int, float, str, bool, list))})
    out.info["REF_energy"] = e
    out.arrays["REF_forces"] = f
    if stress is not None:
        out.info["REF_stress"] = stress
    out.info["calculator"] = record["calculator"]
    out.info["is_dft"] = bool(record["is_dft"])
    out.info["calc_settings"] = json.dumps(record, sort_keys=True)
    n_scf = None
    if hasattr(calc, "get_number_of_iterations"):
        try:
            n_scf = calc.get_number_of_iterations()
        except Exception:  # noqa: BLE001
            n_scf = None
    status.update(status="ok", reason="", wall_s=time.time() - t0, energy_eV=e,
                  fmax_eV_per_A=float(np.linalg.norm(f, axis=1).max()), n_scf=n_scf)
    out.info["label_time_s"] = status["wall_s"]
    return out, status


@dataclass
class Labeller:
    """Resumable labeller writing one file per frame into ``cache_dir``.

    ``calc_factory(atoms, directory, txt)`` returns an ASE calculator; by default the
    factory ``make_calculator(name, settings, ...)``.
    """

    cache_dir: Path
    name: str = "gpaw"
    settings: dict = field(default_factory=dict)
    calc_factory: Callable | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("twistox.dft.labelling"))

    def __post_init__(self):
        self.cache_dir = Path(self.cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.record = calculator_record(self.name, self.settings)

    def _factory(self, atoms, directory, txt):
        if self.calc_factory is not None:
            return self.calc_factory(atoms, directory, txt)
        return make_calculator(self.name, self.settings, atoms, directory=directory, txt=txt)

    def key(self, atoms: Atoms) -> str:
        return frame_key(atoms, self.record)

    def done(self, atoms: Atoms) -> bool:
        k = self.key(atoms)
        return (self.cache_dir / f"{k}.extxyz").exists() or (self.cache_dir / f"{k}.failed.json").exists()

    def label_frame(self, atoms: Atoms) -> dict:
        """Label one frame unless cached; write its file atomically; return its status."""
        k = self.key(atoms)
        if self.done(atoms):
            return self.status(atoms)
        wdir = self.cache_dir / f"{k}.work"
        wdir.mkdir(exist_ok=True)
        calc = self._factory(atoms, wdir, wdir / "calc.txt")
        out, status = label_one(atoms, calc, self.record)
        status["key"] = k
        if out is None:
            _atomic_write_text(self.cache_dir / f"{k}.failed.json", json.dumps(status))
        else:
            tmp = self.cache_dir / f".{k}.{uuid.uuid4().hex[:8]}.extxyz"
            write(tmp, out, format="extxyz")
            _atomic_write_text(self.cache_dir / f"{k}.json", json.dumps(status))
            os.replace(tmp, self.cache_dir / f"{k}.extxyz")
        if out is not None and not self.settings.get("keep_work", False):
            shutil.rmtree(wdir, ignore_errors=True)  # failed frames keep their calculator log
        return status

    def status(self, atoms: Atoms) -> dict:
        k = self.key(atoms)
        failed = self.cache_dir / f"{k}.failed.json"
        if failed.exists():
            return json.loads(failed.read_text())
        meta = self.cache_dir / f"{k}.json"
        if meta.exists():
            return json.loads(meta.read_text())
        return {"status": "pending", "key": k}

    def result(self, atoms: Atoms) -> Atoms | None:
        f = self.cache_dir / f"{self.key(atoms)}.extxyz"
        return read(f, format="extxyz") if f.exists() else None

    def label(self, frames: list[Atoms], workers: int = 1) -> list[dict]:
        """Label every frame not yet in the cache; ``workers`` > 1 runs that many processes."""
        todo = [a for a in frames if not self.done(a)]
        self.log.info("labelling %d frames with %s (%d already done, %d to do, %d worker(s))", len(frames), self.name,
                      len(frames) - len(todo), len(todo), workers)
        t0 = time.time()
        if workers > 1 and len(todo) > 1 and self.calc_factory is None:
            self._label_parallel(todo, workers)
        else:
            for i, at in enumerate(todo):
                st = self.label_frame(at)
                self.log.info("frame %d/%d id=%s %s (%d atoms): %s in %.1f s %s", i + 1, len(todo), st.get("frame_id"),
                              st.get("config_type"), st.get("n_atoms", 0), st["status"], st.get("wall_s", 0.0),
                              st.get("reason", ""))
        self.log.info("labelled %d frames in %.1f s", len(todo), time.time() - t0)
        return [self.status(a) for a in frames]

    def _label_parallel(self, todo: list[Atoms], workers: int) -> None:
        """Worker processes claim frames from a shared list (exclusive claim files); costly frames first."""
        run = uuid.uuid4().hex[:8]
        tasks = self.cache_dir / f".tasks-{run}.extxyz"
        order = sorted(todo, key=lambda a: -len(a) * np.prod(kpoints(a, float(self.settings.get("kpt_density", 1.0)))))
        write(tasks, order, format="extxyz")
        spec = self.cache_dir / f".tasks-{run}.json"
        spec.write_text(json.dumps({"name": self.name, "settings": self.settings, "run": run}))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        procs = [subprocess.Popen([sys.executable, "-m", "twistox.dft.labelling", str(self.cache_dir), str(tasks), str(spec)],
                                  env=env) for _ in range(workers)]
        t0 = time.time()
        try:
            n_done = 0
            while any(p.poll() is None for p in procs):
                time.sleep(1.0)
                n = sum(self.done(a) for a in todo)
                if n != n_done:
                    n_done = n
                    self.log.info("%d/%d frames labelled (%.0f s)", n, len(todo), time.time() - t0)
            bad = [p.returncode for p in procs if p.returncode != 0]
            if bad:
                raise RuntimeError(f"labelling worker(s) exited with {bad}; see the rule log")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for f in self.cache_dir.glob(f"*.{run}.claim"):
                f.unlink(missing_ok=True)
            tasks.unlink(missing_ok=True)
            spec.unlink(missing_ok=True)
        for at in todo:
            st = self.status(at)
            self.log.info("frame id=%s %s (%d atoms): %s in %.1f s %s", st.get("frame_id"), st.get("config_type"),
                          st.get("n_atoms", 0), st["status"], st.get("wall_s", 0.0), st.get("reason", ""))


def _worker_main(cache_dir: str, tasks: str, spec: str) -> None:
    """Worker process: claim and label frames until none is left."""
    s = json.loads(Path(spec).read_text())
    lab = Labeller(Path(cache_dir), s["name"], s["settings"])
    for at in read(tasks, index=":", format="extxyz"):
        if lab.done(at):
            continue
        claim = Path(cache_dir) / f"{lab.key(at)}.{s['run']}.claim"
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        lab.label_frame(at)


def collect(frames: list[Atoms], labeller: Labeller) -> tuple[list[Atoms], list[dict]]:
    """(labelled frames that succeeded, status of every frame) in input order."""
    good, statuses = [], []
    for at in frames:
        st = labeller.status(at)
        statuses.append(st)
        if st["status"] == "ok":
            r = labeller.result(at)
            if r is not None:
                good.append(r)
    return good, statuses


if __name__ == "__main__":
    _worker_main(*sys.argv[1:4])


def summary_figure(good: list[Atoms], statuses: list[dict]):
    """Two panels: energy per atom vs max force per frame by config type; labelling time per frame."""
    from twistox.core.plots import plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    kinds = sorted({a.info.get("config_type", "") for a in good})
    for k in kinds:
        sel = [a for a in good if a.info.get("config_type") == k]
        fmax = [np.linalg.norm(a.arrays["REF_forces"], axis=1).max() for a in sel]
        epa = [a.info["REF_energy"] / len(a) for a in sel]
        a1.scatter(fmax, epa, label=f"{k} ({len(sel)})", s=25)
    a1.set_xlabel("max |F| per frame (eV/Å)")
    a1.set_ylabel("energy per atom (eV)")
    a1.set_title("DFT labels")
    a1.legend(fontsize=8)
    ok = [s for s in statuses if s["status"] == "ok"]
    bad = [s for s in statuses if s["status"] != "ok"]
    a2.scatter([s["n_atoms"] for s in ok], [s["wall_s"] for s in ok], c="tab:green", label=f"ok ({len(ok)})")
    if bad:
        a2.scatter([s["n_atoms"] for s in bad], [s.get("wall_s", 0) for s in bad], c="tab:red", marker="x",
                   label=f"failed ({len(bad)})")
    a2.set_xlabel("atoms per frame")
    a2.set_ylabel("labelling time (s, one core)")
    a2.set_title("cost per frame")
    a2.legend(fontsize=8)
    fig.tight_layout()
    return fig
