"""Committee active learning: committee MD -> per-atom force disagreement -> most uncertain,
mutually diverse frames (farthest-point sampling in MACE descriptor space) -> label -> retrain.

Units: eV, Å, fs, K.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from twistox.core.md import AseEvaluator, LangevinBAOAB
from twistox.dft.labeller import collect
from twistox.dft.carve import CARVED_TYPE
from twistox.mlip.calculator import load_calculator
from twistox.mlip.carved import CarveSettings, carved_candidates
from twistox.mlip.metrics import evaluate_committee
from twistox.mlip.relaxpaths import RELAX_TYPE, RelaxPathSettings, label_check, relax_path_candidates
from twistox.mlip.training import TrainSettings, train_committee


@dataclass
class ALSettings:
    """Active-learning settings (see mlip.schema.yaml)."""

    iterations: int = 1
    temperatures_K: tuple[float, ...] = (300.0, 900.0)
    md_steps: int = 60
    timestep_fs: float = 1.0
    friction_per_ps: float = 2.0
    sample_every: int = 5
    frames_per_iteration: int = 3
    pool_factor: int = 3
    max_force_std: float = 3.0
    min_distance: float = 0.6
    cells: tuple[str, ...] = ("bulk", "bilayer")
    twisted_angles_deg: tuple[float, ...] = (36.87,)

    @classmethod
    def from_config(cls, d: dict) -> "ALSettings":
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("temperatures_K", "cells", "twisted_angles_deg"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)



def committee_md(calc: Calculator, start: Atoms, temperature_K: float, steps: int, timestep_fs: float,
                 sample_every: int, rng: np.random.Generator, max_force_std: float = 3.0,
                 min_distance: float = 0.6, friction_per_fs: float = 0.002) -> tuple[list[Atoms], list[float]]:
    """Langevin MD (:class:`twistox.core.md.LangevinBAOAB`, the relax stage's integrator) on the
    committee mean; snapshots every ``sample_every`` steps with their uncertainty (max per-atom
    force_std, eV/Å). Stops early where the committee diverges (max force_std > max_force_std)
    or atoms collide (< min_distance Å): such a frame is still returned (it is the most
    informative) but the trajectory ends. Positions are not wrapped (periodic cells)."""
    ev = AseEvaluator(Atoms(start.numbers, start.positions, cell=start.cell, pbc=start.pbc), calc)
    integ = LangevinBAOAB(ev, start.get_masses(), temperature_K, timestep_fs, friction_per_fs, rng)
    x = np.array(start.positions, float, copy=True)
    v = integ.initial_velocities(x)
    e, f = integ.forces(x)
    snaps, unc = [], []
    for _ in range(max(1, steps // sample_every)):
        for _ in range(sample_every):
            e, f = integ.step(x, v, f)
        u = float(calc.results["force_std"].max())  # results of the last force call, i.e. at x
        snap = Atoms(start.numbers, x.copy(), cell=start.cell.copy(), pbc=start.pbc)
        snap.info.update(md_temperature_K=float(temperature_K), uncertainty=u)
        snaps.append(snap)
        unc.append(u)
        d = ev.atoms.get_all_distances(mic=True)[np.triu_indices(len(x), 1)]
        if u > max_force_std or (len(d) and d.min() < min_distance):
            break
    return snaps, unc


def mean_descriptor(calc, atoms: Atoms) -> np.ndarray:
    """Structure fingerprint: per-element mean of MACE invariant node features (first model)."""
    a = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    d = calc.get_descriptors(a, invariants_only=True)
    d = d[0] if isinstance(d, list) else d
    parts = [d[a.numbers == z].mean(axis=0) for z in sorted(set(a.numbers.tolist()))]
    return np.concatenate(parts)


def select_diverse(uncertainty: np.ndarray, descriptors: np.ndarray, n: int, pool_factor: int = 3) -> list[int]:
    """Most uncertain, mutually diverse frames: take the ``pool_factor*n`` most uncertain, then
    farthest-point sampling in (standardised) descriptor space, starting from the most uncertain."""
    uncertainty = np.asarray(uncertainty, float)
    if n <= 0 or len(uncertainty) == 0:
        return []
    pool = np.argsort(-uncertainty)[: max(n, pool_factor * n)]
    X = np.asarray(descriptors, float)[pool]
    X = (X - X.mean(0)) / (X.std(0) + 1e-12)
    chosen = [0]
    dmin = np.linalg.norm(X - X[0], axis=1)
    while len(chosen) < min(n, len(pool)):
        # weight distance by uncertainty so that equally distant frames prefer the uncertain one
        score = dmin * (uncertainty[pool] / uncertainty[pool].max())
        score[chosen] = -1.0
        j = int(np.argmax(score))
        chosen.append(j)
        dmin = np.minimum(dmin, np.linalg.norm(X - X[j], axis=1))
    return [int(pool[j]) for j in chosen]


def iteration_candidates(calc, starts: list[Atoms], targets: list[Atoms], al: ALSettings,
                         carve: CarveSettings | None, rng: np.random.Generator, it: int,
                         log: logging.Logger | None = None, relax_starts: list[Atoms] | None = None,
                         relax: RelaxPathSettings | None = None
                         ) -> tuple[list[Atoms], list[Atoms], np.ndarray, list[int], int]:
    """The frames to label in AL iteration ``it`` (1-based).

    Committee-mean MD from every start cell at every temperature -> ``select_diverse`` picks
    ``frames_per_iteration`` snapshots (``config_type`` al_<start type>); then, when ``carve`` is on,
    :func:`twistox.mlip.carved.carved_candidates` adds ``carve.frames`` cells per target (``config_type``
    twisted_carved, so they join the ``twisted`` subset wherever they are evaluated); when ``relax`` is on,
    :func:`twistox.mlip.relaxpaths.relax_path_candidates` adds frames along the committee's own relaxation
    of each of ``relax_starts`` (``config_type`` twisted_alrelax). Every frame gets ``frame_id`` =
    100000 it + j (j counts MD, carved, then relaxation frames), ``split`` train, ``al_iteration``.
    ``calc``: committee mean with ``results['force_std']`` [eV/Å] and ``get_descriptors``.
    Returns (frames to label, MD candidates, their uncertainty [eV/Å], chosen indices, carved count).
    """
    log = log or logging.getLogger("twistox")
    cands, unc = [], []
    for start in starts:
        for T in al.temperatures_K:
            snaps, u = committee_md(calc, start, T, al.md_steps, al.timestep_fs, al.sample_every, rng,
                                    al.max_force_std, al.min_distance, al.friction_per_ps / 1000.0)
            for sn in snaps:
                sn.info["config_type"] = f"al_{start.info.get('config_type', 'md')}"
                if "layer" in start.arrays:
                    sn.set_array("layer", start.arrays["layer"])
            cands += snaps
            unc += u
            log.info("iteration %d: MD %s at %.0f K: %d snapshots, uncertainty mean %.3f max %.3f eV/Å", it,
                     start.info.get("config_type"), T, len(snaps), float(np.mean(u)), float(np.max(u)))
    unc_arr = np.array(unc)
    desc = np.array([mean_descriptor(calc, c) for c in cands])
    chosen = select_diverse(unc_arr, desc, al.frames_per_iteration, al.pool_factor)
    new = [cands[i] for i in chosen]
    carved = carved_candidates(calc, targets, carve) if carve is not None and carve.enabled and targets else []
    new += carved
    if relax is not None and relax.enabled and relax_starts:
        new += relax_path_candidates(calc, relax_starts, relax)
    for j, c in enumerate(new):
        c.info.update(frame_id=100000 * it + j, split="train", al_iteration=it)
    return new, cands, unc_arr, chosen, len(carved)


def active_learning(train: list[Atoms], test: list[Atoms], starts: list[Atoms], workdir: str | os.PathLike,
                    s: TrainSettings, al: ALSettings, labeller, seed: int, device: str = "cpu", workers: int = 1,
                    label_workers: int = 1, log: logging.Logger | None = None, targets: list[Atoms] | None = None,
                    carve: CarveSettings | None = None, relax_starts: list[Atoms] | None = None,
                    relax: RelaxPathSettings | None = None) -> tuple[list[Path], list[dict], list[Atoms]]:
    """Committee active learning starting from the trained committee in ``workdir/member_k``.

    Per iteration: committee-mean Langevin MD from every start cell at every temperature ->
    candidates with uncertainty = max per-atom force std (eV/Å) -> ``select_diverse``, plus cells
    carved around the most uncertain atoms of the ``targets`` (``carve``) and frames along the committee's
    relaxation of ``relax_starts`` (``relax``; :func:`iteration_candidates`) ->
    label with ``labeller`` (a ``twistox.dft.labeller.Labeller``; failed frames are dropped) -> warm
    retraining on train + all AL frames. The test set is never used for selection or training.
    Returns (model paths, per-iteration history, AL frames added).
    """
    from ase.io import write

    log = log or logging.getLogger("twistox")
    workdir = Path(workdir)
    rng = np.random.default_rng(seed)
    paths = [workdir / f"member_{k}" / "mace.model" for k in range(s.committee_size)]
    added: list[Atoms] = []
    history = [{"iteration": 0, "frames_added": 0, "n_train": len(train), **evaluate_committee(paths, test, device)}]
    log.info("iteration 0: n_train %d, test force MAE %.1f meV/Å, R2 %.3f, energy MAE %.2f meV/atom", len(train),
             history[0]["forces_mae_meV_per_A"], history[0]["forces_r2"], history[0]["energy_mae_meV_per_atom"])
    epochs = s.max_epochs
    for it in range(1, al.iterations + 1):
        t0 = time.time()
        calc = load_calculator(paths, mode="mean", device=device)
        new, cands, unc_arr, chosen, n_carved = iteration_candidates(calc, starts, targets or [], al, carve, rng, it,
                                                                     log, relax_starts, relax)
        t_md = time.time() - t0
        statuses = labeller.label(new, workers=label_workers)
        good, _ = collect(new, labeller)
        n_failed = sum(st["status"] != "ok" for st in statuses)
        added += good
        checks = label_check(good)
        for c in checks:
            err = c["energy_error_meV_per_atom"]
            log.info("iteration %d: committee relaxation frame of Sigma%s %s (step %s): DFT max |F| %.2f eV/Å "
                     "(committee %.2f), committee energy error %s meV/atom", it, c["sigma"], c["translation"],
                     c["relax_step"], c["dft_max_force_eV_per_A"], c["committee_max_force_eV_per_A"] or float("nan"),
                     "n/a" if err is None else f"{err:+.1f}")
        train_file = workdir / f"train_iter{it}.extxyz"
        write(train_file, train + added, format="extxyz")
        epochs += s.retrain_epochs
        t1 = time.time()
        paths = train_committee(train_file, workdir, s, seed, device=device, workers=workers, restart=True,
                                epochs=epochs, log=log)
        ev = evaluate_committee(paths, test, device)
        rec = {"iteration": it, "frames_added": len(good), "frames_failed": n_failed, "n_train": len(train) + len(added),
               "candidates": len(cands), "uncertainty_mean_eV_per_A": float(unc_arr.mean()),
               "uncertainty_max_eV_per_A": float(unc_arr.max()),
               "selected_uncertainty_eV_per_A": [float(unc_arr[i]) for i in chosen],
               "carved_candidates": n_carved,
               "carved_added": sum(str(a.info.get("config_type")) == CARVED_TYPE for a in good),
               "relax_path_candidates": sum(str(a.info.get("config_type")) == RELAX_TYPE for a in new),
               "relax_path_added": sum(str(a.info.get("config_type")) == RELAX_TYPE for a in good),
               "relax_path_check": checks,
               "md_select_s": t_md, "retrain_s": time.time() - t1, **ev}
        history.append(rec)
        log.info("iteration %d: %d candidates (uncertainty mean %.3f, max %.3f eV/Å), %d frames added, %d failed; "
                 "test force MAE %.1f meV/Å, R2 %.3f, energy MAE %.2f meV/atom; %.1f s", it, len(cands),
                 rec["uncertainty_mean_eV_per_A"], rec["uncertainty_max_eV_per_A"], len(good), n_failed,
                 ev["forces_mae_meV_per_A"], ev["forces_r2"], ev["energy_mae_meV_per_atom"], time.time() - t0)
    return paths, history, added
