"""Resumable, frame-by-frame DFT labelling with a per-frame cache.

Labels: ``REF_energy`` (eV), ``REF_forces`` (eV/Å), ``REF_stress`` (eV/Å^3, Voigt xx yy zz yz xz xy,
ASE sign) where the calculator provides stress. Every frame is written to its own file in a
cache directory as soon as it is done (atomic rename), keyed by frame id + a
:func:`~twistox.core.hashing.settings_hash` of the geometry and the calculator settings, so a
killed job resumes with only the missing frames.

Failures (column ``failure`` of ``labels.csv``, see :func:`classify_failure`):

- ``scf_failed``: the SCF did not converge (or gave non-finite results). Permanent: cached
  as ``<key>.failed.json``, never retried, never in a training set.
- ``transient``: out of memory, launcher error, missing code/licence, killed, any other
  calculator error. Reported in ``<key>.transient.json`` but *not* cached: the frame is
  retried (``retries`` times in the same run, and on every resume).
"""

from __future__ import annotations

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
from ase.calculators.calculator import Calculator
from ase.io import read, write

from twistox.core.checkpoint import atomic_write_text
from twistox.core.hashing import settings_hash
from twistox.dft.calculators import calculator_record, kpoints, make_calculator


def _plain(v):
    """numpy scalars and 1-D arrays as Python scalars and lists (anything else unchanged)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.ndim == 1:
        return v.tolist()
    return v


def frame_key(atoms: Atoms, record: dict) -> str:
    """'{frame_id:05d}_{hash}': hash of geometry (0.1 mÅ) and calculator settings."""
    h = settings_hash(atoms.positions, np.asarray(atoms.cell), atoms.numbers.astype(np.int64),
                      np.asarray(atoms.pbc), record, decimals=4, length=12)
    return f"{int(atoms.info.get('frame_id', 0)):05d}_{h}"



def _is_scf_failure(exc: BaseException) -> bool:
    return type(exc).__name__ in ("KohnShamConvergenceError", "ConvergenceError", "SCFError") or \
        "converge" in str(exc).lower()


FAILURES = ("scf_failed", "transient")  # labels.csv column ``failure``: permanent vs retried on resume


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """(reason kind, failure class) of a calculator exception.

    ``scf_failed`` (permanent, cached): the calculation itself gave no usable answer -- SCF not
    converged, or non-finite energy/forces. ``transient`` (not cached, retried on resume):
    anything about the machine rather than the frame -- out of memory, a launcher/MPI error,
    a missing code or licence, a process killed by a signal, any other calculator error.
    """
    name = type(exc).__name__
    msg = str(exc).lower()
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or "out of memory" in msg:
        return "out_of_memory", "transient"
    if "killed" in msg or "signal" in msg:
        return "killed", "transient"
    if _is_scf_failure(exc):
        return "scf_not_converged", "scf_failed"
    if isinstance(exc, FloatingPointError):
        return "non_finite", "scf_failed"
    if isinstance(exc, subprocess.SubprocessError) or name == "CalculationFailed" or "mpirun" in msg or "srun" in msg:
        return "launcher_error", "transient"
    if isinstance(exc, (ImportError, OSError)) or name in ("EnvironmentError", "CalculatorSetupError") or "licen" in msg:
        return "code_unavailable", "transient"
    return "calculator_error", "transient"


def _failure_status(status: dict, exc: BaseException, t0: float) -> dict:
    kind, failure = classify_failure(exc)
    detail = str(exc).strip()[:300] or "no message"
    status.update(status="failed" if failure == "scf_failed" else "transient", failure=failure,
                  reason=f"{kind}: {type(exc).__name__}: {detail}", wall_s=time.time() - t0)
    return status


def name_of(calc) -> str:
    return getattr(calc, "name", type(calc).__name__).lower()


def frame_status(atoms: Atoms) -> dict:
    """The identifying part of a frame's status record."""
    return {"frame_id": int(atoms.info.get("frame_id", -1)), "config_type": atoms.info.get("config_type", ""),
            "split": atoms.info.get("split", ""), "n_atoms": len(atoms)}


def _has_dipole_layer(calc) -> bool:
    """True when the calculator's Poisson solver carries a dipole layer (GPAW ``dipolelayer``)."""
    par = getattr(calc, "parameters", None)
    par = par.todict() if hasattr(par, "todict") else dict(par or {})
    ps = par.get("poissonsolver") or {}
    return isinstance(ps, dict) and bool(ps.get("dipolelayer"))


def label_one(atoms: Atoms, calc: Calculator, record: dict) -> tuple[Atoms | None, dict]:
    """Run one calculation. Returns (labelled frame or None, status dict with reason and wall time)."""
    t0 = time.time()
    work = atoms.copy()
    work.info.clear()
    orig_pbc = atoms.pbc.copy()
    # plane-wave codes need 3D periodicity (vacuum separates slab images along z); a dipole layer
    # along z needs the opposite, an open z boundary
    work.pbc = [True, True, not _has_dipole_layer(calc)]
    work.calc = calc
    status = frame_status(atoms)
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
        return None, _failure_status(status, exc, t0)
    out = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=orig_pbc)
    for k in ("layer",):
        if k in atoms.arrays:
            out.set_array(k, atoms.arrays[k])
    # frames reach the workers through extxyz, which reads ints and lists back as numpy types: keep them
    info = {k: _plain(v) for k, v in atoms.info.items()}
    out.info.update({k: v for k, v in info.items() if isinstance(v, (int, float, str, bool, list))})
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
    status.update(status="ok", failure="", reason="", wall_s=time.time() - t0, energy_eV=e,
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
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("twistox.dft.labeller"))
    seed_dirs: tuple = ()  # read-only label caches consulted before any calculation (dft.label_seed)
    seed_tolerance: float = 1e-3  # Å: largest position/cell difference for a seed label to count

    def __post_init__(self):
        self.cache_dir = Path(self.cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.record = calculator_record(self.name, self.settings)
        self._seeds: list[tuple[Path, Atoms]] | None = None

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
        t0 = time.time()
        try:
            calc = self._factory(atoms, wdir, wdir / "calc.txt")
        except Exception as exc:  # noqa: BLE001 - e.g. a code or licence missing on this node
            out, status = None, _failure_status(frame_status(atoms), exc, t0)
        else:
            out, status = label_one(atoms, calc, self.record)
        status["key"] = k
        if out is None:
            # permanent failures are cached; transient ones are only reported (retried next time)
            name = f"{k}.failed.json" if status["failure"] == "scf_failed" else f"{k}.transient.json"
            atomic_write_text(self.cache_dir / name, json.dumps(status))
        else:
            tmp = self.cache_dir / f".{k}.{uuid.uuid4().hex[:8]}.extxyz"
            write(tmp, out, format="extxyz")
            atomic_write_text(self.cache_dir / f"{k}.json", json.dumps(status))
            os.replace(tmp, self.cache_dir / f"{k}.extxyz")
        if out is not None or status["failure"] == "scf_failed":
            (self.cache_dir / f"{k}.transient.json").unlink(missing_ok=True)
        if out is not None and not self.settings.get("keep_work", False):
            shutil.rmtree(wdir, ignore_errors=True)  # failed frames keep their calculator log
        return status

    def status(self, atoms: Atoms) -> dict:
        k = self.key(atoms)
        failed = self.cache_dir / f"{k}.failed.json"
        if failed.exists():
            return json.loads(failed.read_text())
        meta = self.cache_dir / f"{k}.json"
        if meta.exists() and (self.cache_dir / f"{k}.extxyz").exists():
            return json.loads(meta.read_text())
        transient = self.cache_dir / f"{k}.transient.json"
        if transient.exists():
            return json.loads(transient.read_text())
        return {"status": "pending", "failure": "", "key": k}

    def result(self, atoms: Atoms) -> Atoms | None:
        f = self.cache_dir / f"{self.key(atoms)}.extxyz"
        return read(f, format="extxyz") if f.exists() else None

    def _seed_frames(self) -> list[tuple[Path, Atoms]]:
        """Every successful label in ``seed_dirs`` made with this calculator record (read once)."""
        if self._seeds is None:
            rec = json.dumps(self.record, sort_keys=True)
            self._seeds = []
            for d in map(Path, self.seed_dirs):
                if not d.is_dir():
                    raise FileNotFoundError(f"dft.label_seed: {str(d)!r} is not a directory; allowed: existing label "
                                            "cache directories (e.g. data/label_seed/network)")
                for f in sorted(d.glob("*.extxyz")):
                    if f.name.startswith("."):
                        continue
                    at = read(f, format="extxyz")
                    if at.info.get("calc_settings") == rec:
                        self._seeds.append((f, at))
        return self._seeds

    def seed_match(self, atoms: Atoms) -> Path | None:
        """The seed label of this frame: same frame id, species, pbc and calculator record; cell and
        positions (minimum image) within ``seed_tolerance`` Å. None when there is none."""
        fid = int(atoms.info.get("frame_id", 0))
        for f, s in self._seed_frames():
            # the frame id is the cache file's key prefix (labels made before 2026-11-30 lack it in info)
            if (int(f.name.split("_")[0]) != fid or len(s) != len(atoms)
                    or not np.array_equal(s.numbers, atoms.numbers) or not np.array_equal(s.pbc, atoms.pbc)
                    or np.abs(np.asarray(s.cell) - np.asarray(atoms.cell)).max() > self.seed_tolerance):
                continue
            d = atoms.positions - s.positions
            frac = np.linalg.solve(np.asarray(atoms.cell).T, d.T).T
            frac[:, atoms.pbc] -= np.round(frac[:, atoms.pbc])
            if np.abs(frac @ np.asarray(atoms.cell)).max() <= self.seed_tolerance:
                return f
        return None

    def seed(self, frames: list[Atoms]) -> int:
        """Copy the seed labels of frames not yet in the cache into it; returns how many were copied.

        The seed's own geometry is kept with its labels (it differs from the requested frame by at
        most ``seed_tolerance``), so energies and forces always belong to the stored positions. Info
        keys of the requested frame that the seed lacks (provenance a later code version adds, e.g. the
        Σ, translation and committee energy of an active-learning candidate) are added; the seed's own
        keys, labels among them, win."""
        if not self.seed_dirs:
            return 0
        n = 0
        for at in frames:
            if self.done(at):
                continue
            f = self.seed_match(at)
            if f is None:
                continue
            k = self.key(at)
            meta = f.with_suffix(".json")
            status = json.loads(meta.read_text()) if meta.exists() else {**frame_status(at), "status": "ok",
                                                                         "failure": "", "reason": "", "wall_s": 0.0}
            status.update(key=k, seeded_from=str(f))
            tmp = self.cache_dir / f".{k}.{uuid.uuid4().hex[:8]}.extxyz"
            labelled = read(f, format="extxyz")
            extra = {key: v for key, v in ((key, _plain(v)) for key, v in at.info.items())
                     if key not in labelled.info and isinstance(v, (int, float, str, bool, list))}
            if extra:
                labelled.info.update(extra)
                write(tmp, labelled, format="extxyz")
                status["info_added_from_frame"] = sorted(extra)
            else:
                shutil.copyfile(f, tmp)
            atomic_write_text(self.cache_dir / f"{k}.json", json.dumps(status))
            os.replace(tmp, self.cache_dir / f"{k}.extxyz")
            n += 1
        self.log.info("%d of %d frames taken from the label seed (%s)", n, len(frames),
                      ", ".join(map(str, self.seed_dirs)))
        return n

    def label(self, frames: list[Atoms], workers: int = 1, retries: int = 0) -> list[dict]:
        """Label every frame not yet in the cache; ``workers`` > 1 runs that many processes.

        Frames that failed for a transient reason are tried again up to ``retries`` times in
        this call (and again in any later call: they are never cached as failed). Labels found in
        ``seed_dirs`` are copied in first and never recomputed.
        """
        self.seed(frames)
        for attempt in range(int(retries) + 1):
            todo = [a for a in frames if not self.done(a)]
            if not todo:
                break
            if attempt:
                self.log.info("retrying %d frame(s) that failed for a transient reason (retry %d of %d)",
                              len(todo), attempt, retries)
            self._label_todo(frames, todo, workers)
        return [self.status(a) for a in frames]

    def _label_todo(self, frames: list[Atoms], todo: list[Atoms], workers: int) -> None:
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

    def _label_parallel(self, todo: list[Atoms], workers: int) -> None:
        """Worker processes claim frames from a shared list (exclusive claim files); costly frames first."""
        run = uuid.uuid4().hex[:8]
        tasks = self.cache_dir / f".tasks-{run}.extxyz"
        order = sorted(todo, key=lambda a: -len(a) * np.prod(kpoints(a, float(self.settings.get("kpt_density", 1.0)))))
        write(tasks, order, format="extxyz")
        spec = self.cache_dir / f".tasks-{run}.json"
        spec.write_text(json.dumps({"name": self.name, "settings": self.settings, "run": run}))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        procs = [subprocess.Popen([sys.executable, "-m", "twistox.dft.labeller", str(self.cache_dir), str(tasks), str(spec)],
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
