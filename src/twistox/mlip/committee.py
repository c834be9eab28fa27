"""MACE interatomic potential: committee training (mace-torch), evaluation, active learning, loading.

- ``load_calculator(model_paths, mode="first"|"mean")``: the one entry point later stages use.
  ``mode="mean"`` returns the committee mean energy/forces/stress and exposes the committee
  force disagreement in ``calc.results["force_std"]`` (per atom, eV/Å):
  ``sqrt(mean_k |F_k,i - mean_k F_k,i|^2)``; ``calc.results["forces_comm"]`` holds every member's
  forces (K, N, 3) and ``calc.results["force_std_max"]`` the largest per-atom value.
- ``train_committee``: K MACE models with different seeds via mace-torch's ``run_train``
  (each member in its own process, ``workers`` at a time), optionally warm-started from the
  previous checkpoint (active-learning retraining).
- Active learning: committee MD -> per-atom force disagreement -> most uncertain, mutually
  diverse frames (farthest-point sampling in MACE descriptor space) -> label -> retrain.

Units: eV, Å, fs, K; errors reported in meV/atom and meV/Å.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

MODES = ("first", "mean")


# ----------------------------------------------------------------------------- loading
def _mace_calculator_class():
    from mace.calculators import MACECalculator

    class CommitteeMACECalculator(MACECalculator):
        """MACECalculator (committee mean) that also reports the per-atom force disagreement."""

        def calculate(self, atoms=None, properties=None, system_changes=None):
            from ase.calculators.calculator import all_changes

            super().calculate(atoms, properties, system_changes if system_changes is not None else all_changes)
            fc = self.results.get("forces_comm")
            if fc is None:  # one model: no disagreement
                std = np.zeros(len(self.atoms))
            else:
                dev = fc - fc.mean(axis=0, keepdims=True)
                std = np.sqrt((dev**2).sum(axis=2).mean(axis=0))
            self.results["force_std"] = std
            self.results["force_std_max"] = float(std.max()) if len(std) else 0.0

    return CommitteeMACECalculator


def load_calculator(model_paths: list[str | os.PathLike], mode: str = "first", device: str = "auto",
                    default_dtype: str = "float64") -> Calculator:
    """ASE calculator from trained MACE model files.

    mode "first": the first model only (fastest). mode "mean": committee mean of all models;
    ``calc.results["force_std"]`` (N,) eV/Å is the per-atom committee force disagreement.
    device: "auto" (GPU when present), "cpu" or "cuda". default_dtype: "float64" or "float32".
    """
    from twistox.core.runtime import torch_device

    if mode not in MODES:
        raise ValueError(f"mode: {mode!r} is not allowed; allowed: {', '.join(MODES)}")
    if default_dtype not in ("float64", "float32"):
        raise ValueError(f"default_dtype: {default_dtype!r} is not allowed; allowed: float64, float32")
    paths = [str(p) for p in (model_paths if isinstance(model_paths, (list, tuple)) else [model_paths])]
    if not paths:
        raise ValueError("model_paths: empty; give at least one MACE .model file")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"MACE model file(s) not found: {missing}")
    if mode == "first":
        paths = paths[:1]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cls = _mace_calculator_class()
        return cls(model_paths=paths, device=torch_device(device), default_dtype=default_dtype)


# ----------------------------------------------------------------------------- training
@dataclass
class TrainSettings:
    """MACE hyperparameters (mace_run_train names) and committee/training settings."""

    committee_size: int = 3
    num_channels: int = 16
    max_L: int = 0
    r_max: float = 5.0
    num_interactions: int = 2
    correlation: int = 2
    num_radial_basis: int = 8
    max_epochs: int = 60
    retrain_epochs: int = 30
    batch_size: int = 4
    lr: float = 0.01
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    stress_weight: float = 0.0
    valid_fraction: float = 0.1
    ema_decay: float = 0.99
    default_dtype: str = "float64"
    extra_args: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, d: dict) -> "TrainSettings":
        keys = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in keys}
        if "extra_args" in kw:
            kw["extra_args"] = tuple(kw["extra_args"])
        return cls(**kw)


def mace_args(s: TrainSettings, name: str, train_file: Path, workdir: Path, seed: int, device: str,
              max_epochs: int, restart: bool) -> list[str]:
    """Command-line arguments of mace-torch's run_train for one committee member."""
    args = [
        "--name", name, "--train_file", str(train_file), "--valid_fraction", str(s.valid_fraction),
        "--energy_key", "REF_energy", "--forces_key", "REF_forces", "--stress_key", "REF_stress",
        "--E0s", "average", "--model", "MACE", "--num_channels", str(s.num_channels), "--max_L", str(s.max_L),
        "--r_max", str(s.r_max), "--num_interactions", str(s.num_interactions), "--correlation", str(s.correlation),
        "--num_radial_basis", str(s.num_radial_basis), "--max_num_epochs", str(max_epochs),
        "--batch_size", str(s.batch_size), "--valid_batch_size", str(max(1, s.batch_size)), "--lr", str(s.lr),
        "--energy_weight", str(s.energy_weight), "--forces_weight", str(s.forces_weight),
        "--stress_weight", str(s.stress_weight), "--default_dtype", s.default_dtype, "--device", device,
        "--seed", str(seed), "--eval_interval", "1",
        "--results_dir", str(workdir / "results"), "--checkpoints_dir", str(workdir / "checkpoints"),
        "--model_dir", str(workdir), "--log_dir", str(workdir / "logs"), "--error_table", "PerAtomRMSE",
    ]
    if s.ema_decay > 0:  # weight averaging: steadier models from few, noisy epochs
        args += ["--ema", "--ema_decay", str(s.ema_decay)]
    if s.stress_weight > 0:
        args += ["--loss", "stress", "--compute_stress", "True"]
    if restart:
        args += ["--restart_latest"]
    return args + list(s.extra_args)


def train_committee(train_file: str | os.PathLike, out_dir: str | os.PathLike, s: TrainSettings, seed: int,
                    device: str = "cpu", workers: int = 1, restart: bool = False, epochs: int | None = None,
                    log: logging.Logger | None = None) -> list[Path]:
    """Train (or, with restart, continue training) the K committee members; return their .model paths.

    Member k uses seed + k and lives in ``out_dir/member_{k}``; ``epochs`` is the *total*
    epoch count (for a warm restart: previous total + retrain epochs).
    """
    log = log or logging.getLogger("twistox.mlip.committee")
    out_dir = Path(out_dir)
    epochs = epochs or s.max_epochs
    threads = max(1, int(os.environ.get("OMP_NUM_THREADS", "1")) // max(1, workers))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.setdefault("MALLOC_MMAP_MAX_", "0")
    env.setdefault("MALLOC_TRIM_THRESHOLD_", "100000000000")
    pending = list(range(s.committee_size))
    running: list[tuple[int, subprocess.Popen, float, object]] = []
    t0 = time.time()
    while pending or running:
        while pending and len(running) < max(1, workers):
            k = pending.pop(0)
            wd = out_dir / f"member_{k}"
            wd.mkdir(parents=True, exist_ok=True)
            args = mace_args(s, "mace", Path(train_file), wd, seed + k, device, epochs,
                             restart and (wd / "checkpoints").exists())
            fh = open(wd / "train.log", "a")
            p = subprocess.Popen([sys.executable, "-m", "mace.cli.run_train", *args], env=env, stdout=fh,
                                 stderr=subprocess.STDOUT)
            running.append((k, p, time.time(), fh))
            log.info("member %d: training started (seed %d, %d epochs total%s)", k, seed + k, epochs,
                     ", warm restart" if restart else "")
        time.sleep(0.5)
        for item in list(running):
            k, p, tk, fh = item
            if p.poll() is None:
                continue
            fh.close()
            running.remove(item)
            if p.returncode != 0:
                tail = (out_dir / f"member_{k}" / "train.log").read_text()[-2000:]
                raise RuntimeError(f"MACE training of committee member {k} failed (exit {p.returncode}):\n{tail}")
            log.info("member %d: trained in %.1f s", k, time.time() - tk)
    log.info("committee of %d trained in %.1f s", s.committee_size, time.time() - t0)
    return [out_dir / f"member_{k}" / "mace.model" for k in range(s.committee_size)]


def epoch_times(member_dir: str | os.PathLike) -> list[float]:
    """Seconds per epoch from a member's mace training log (time between 'Epoch N' lines)."""
    import datetime as dt

    stamps = []
    for line in Path(member_dir, "train.log").read_text().splitlines():
        if " INFO: Epoch " in line:
            try:
                stamps.append(dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp())
            except ValueError:
                continue
    return list(np.diff(stamps))


# ----------------------------------------------------------------------------- evaluation
def predict(calc: Calculator, frames: list[Atoms]) -> dict[str, list]:
    """Energies (eV), forces (eV/Å) and per-atom force_std (eV/Å, when the calculator has it)."""
    out = {"energy": [], "forces": [], "force_std": []}
    for at in frames:
        a = Atoms(at.numbers, at.positions, cell=at.cell, pbc=at.pbc)
        a.calc = calc
        out["energy"].append(float(a.get_potential_energy()))
        out["forces"].append(np.asarray(a.get_forces()))
        out["force_std"].append(np.asarray(calc.results.get("force_std", np.zeros(len(a)))))
    return out


def error_metrics(frames: list[Atoms], pred: dict[str, list]) -> dict[str, float]:
    """Held-out errors: energy MAE/RMSE (meV/atom), force MAE/RMSE (meV/Å, per component), force R^2."""
    n = np.array([len(a) for a in frames], float)
    e_ref = np.array([a.info["REF_energy"] for a in frames]) / n
    e_pred = np.array(pred["energy"]) / n
    f_ref = np.concatenate([a.arrays["REF_forces"] for a in frames]).ravel()
    f_pred = np.concatenate(pred["forces"]).ravel()
    de, df = e_pred - e_ref, f_pred - f_ref
    ss_tot = float(((f_ref - f_ref.mean()) ** 2).sum())
    return {
        "energy_mae_meV_per_atom": float(np.abs(de).mean() * 1e3),
        "energy_rmse_meV_per_atom": float(np.sqrt((de**2).mean()) * 1e3),
        "forces_mae_meV_per_A": float(np.abs(df).mean() * 1e3),
        "forces_rmse_meV_per_A": float(np.sqrt((df**2).mean()) * 1e3),
        "forces_r2": float(1.0 - (df**2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
    }


# ----------------------------------------------------------------------------- active learning
@dataclass
class ALSettings:
    """Active-learning settings (see mlip.schema.yaml)."""

    iterations: int = 1
    temperatures_K: tuple[float, ...] = (300.0, 600.0)
    md_steps: int = 60
    timestep_fs: float = 1.0
    sample_every: int = 5
    frames_per_iteration: int = 4
    pool_factor: int = 3
    max_force_std: float = 3.0
    min_distance: float = 0.6
    cells: tuple[str, ...] = ("bilayer",)
    twisted_angles_deg: tuple[float, ...] = ()

    @classmethod
    def from_config(cls, d: dict) -> "ALSettings":
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("temperatures_K", "cells", "twisted_angles_deg"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)


def committee_md(calc: Calculator, start: Atoms, temperature_K: float, steps: int, timestep_fs: float,
                 sample_every: int, rng: np.random.Generator, max_force_std: float = 3.0,
                 min_distance: float = 0.6) -> tuple[list[Atoms], list[float]]:
    """Langevin MD on the committee mean; snapshots every ``sample_every`` steps with their
    uncertainty (max per-atom force_std, eV/Å). Stops early where the committee diverges
    (max force_std > max_force_std) or atoms collide (< min_distance Å): such a frame is still
    returned (it is the most informative) but the trajectory ends."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    at = start.copy()
    at.calc = calc
    MaxwellBoltzmannDistribution(at, temperature_K=temperature_K, rng=rng)
    dyn = Langevin(at, timestep_fs * units.fs, temperature_K=temperature_K, friction=0.02, fixcm=False,
                   rng=np.random.RandomState(int(rng.integers(2**31))))
    snaps, unc = [], []
    for _ in range(max(1, steps // sample_every)):
        dyn.run(sample_every)
        at.get_forces()
        u = float(calc.results["force_std"].max())
        snap = Atoms(at.numbers, at.positions.copy(), cell=at.cell.copy(), pbc=at.pbc)
        snap.info.update(md_temperature_K=float(temperature_K), uncertainty=u)
        snaps.append(snap)
        unc.append(u)
        d = at.get_all_distances(mic=True)[np.triu_indices(len(at), 1)]
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


def write_metrics(path: str | os.PathLike, metrics: dict) -> None:
    """metrics.json, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    os.replace(tmp, path)


def copy_models(paths: list[Path], out_paths: list[str | os.PathLike]) -> None:
    for src, dst in zip(paths, out_paths):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(dst).with_name(f".{Path(dst).name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def active_learning(train: list[Atoms], test: list[Atoms], starts: list[Atoms], workdir: str | os.PathLike,
                    s: TrainSettings, al: ALSettings, labeller, seed: int, device: str = "cpu", workers: int = 1,
                    label_workers: int = 1, log: logging.Logger | None = None) -> tuple[list[Path], list[dict], list[Atoms]]:
    """Committee active learning starting from the trained committee in ``workdir/member_k``.

    Per iteration: committee-mean Langevin MD from every start cell at every temperature ->
    candidates with uncertainty = max per-atom force std (eV/Å) -> ``select_diverse`` ->
    label with ``labeller`` (a ``twistox.dft.labelling.Labeller``; failed frames are dropped) -> warm
    retraining on train + all AL frames. The test set is never used for selection or training.
    Returns (model paths, per-iteration history, AL frames added).
    """
    from ase.io import write

    from twistox.dft.labelling import collect

    log = log or logging.getLogger("twistox.mlip.committee")
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
        cands, unc = [], []
        for start in starts:
            for T in al.temperatures_K:
                snaps, u = committee_md(calc, start, T, al.md_steps, al.timestep_fs, al.sample_every, rng,
                                        al.max_force_std, al.min_distance)
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
        new = []
        for j, i in enumerate(chosen):
            c = cands[i]
            c.info.update(frame_id=100000 * it + j, split="train", al_iteration=it)
            new.append(c)
        t_md = time.time() - t0
        statuses = labeller.label(new, workers=label_workers)
        good, _ = collect(new, labeller)
        n_failed = sum(st["status"] != "ok" for st in statuses)
        added += good
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
               "md_select_s": t_md, "retrain_s": time.time() - t1, **ev}
        history.append(rec)
        log.info("iteration %d: %d candidates (uncertainty mean %.3f, max %.3f eV/Å), %d frames added, %d failed; "
                 "test force MAE %.1f meV/Å, R2 %.3f, energy MAE %.2f meV/atom; %.1f s", it, len(cands),
                 rec["uncertainty_mean_eV_per_A"], rec["uncertainty_max_eV_per_A"], len(good), n_failed,
                 ev["forces_mae_meV_per_A"], ev["forces_r2"], ev["energy_mae_meV_per_atom"], time.time() - t0)
    return paths, history, added


def evaluate_committee(paths: list[Path], test: list[Atoms], device: str = "cpu") -> dict:
    """Held-out errors of the committee mean and of the first model (the default for later stages)."""
    mean = error_metrics(test, predict(load_calculator(paths, "mean", device), test))
    first = error_metrics(test, predict(load_calculator(paths, "first", device), test))
    return {**mean, "first_model": first}


def uncertainty_vs_error(paths: list[Path], frames: list[Atoms], device: str = "cpu") -> dict[str, np.ndarray]:
    """Per atom: committee force std (eV/Å) and the committee-mean force error |F - F_ref| (eV/Å)."""
    p = predict(load_calculator(paths, "mean", device), frames)
    err = np.concatenate([np.linalg.norm(f - a.arrays["REF_forces"], axis=1) for f, a in zip(p["forces"], frames)])
    std = np.concatenate(p["force_std"])
    return {"force_std": std, "force_error": err, "pred": p}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic) if len(x) > 2 else float("nan")


# ----------------------------------------------------------------------------- figures
def parity_figure(frames: list[Atoms], pred: dict, title: str = ""):
    """Energy (per atom) and force-component parity on the held-out set."""
    from twistox.core.plots import plt

    n = np.array([len(a) for a in frames], float)
    e_ref = np.array([a.info["REF_energy"] for a in frames]) / n
    e_pred = np.array(pred["energy"]) / n
    f_ref = np.concatenate([a.arrays["REF_forces"] for a in frames]).ravel()
    f_pred = np.concatenate(pred["forces"]).ravel()
    m = error_metrics(frames, pred)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.6))
    kinds = [a.info.get("config_type", "") for a in frames]
    for k in sorted(set(kinds)):
        sel = np.array([kk == k for kk in kinds])
        a1.scatter(e_ref[sel], e_pred[sel], s=30, label=k)
    lo, hi = min(e_ref.min(), e_pred.min()), max(e_ref.max(), e_pred.max())
    a1.plot([lo, hi], [lo, hi], "k--", lw=1)
    a1.set_xlabel("DFT energy (eV/atom)")
    a1.set_ylabel("MACE energy (eV/atom)")
    a1.set_title(f"energy: MAE {m['energy_mae_meV_per_atom']:.2f} meV/atom")
    a1.legend(fontsize=8)
    a2.scatter(f_ref, f_pred, s=6, alpha=0.6)
    lo, hi = min(f_ref.min(), f_pred.min()), max(f_ref.max(), f_pred.max())
    a2.plot([lo, hi], [lo, hi], "k--", lw=1)
    a2.set_xlabel("DFT force component (eV/Å)")
    a2.set_ylabel("MACE force component (eV/Å)")
    a2.set_title(f"forces: MAE {m['forces_mae_meV_per_A']:.0f} meV/Å, R² {m['forces_r2']:.3f}")
    fig.suptitle(title or f"held-out test set ({len(frames)} frames)")
    fig.tight_layout()
    return fig


def uncertainty_figure(std: np.ndarray, err: np.ndarray, history: list[dict]):
    """Per-atom committee force std vs true force error (test set), and the AL learning curve."""
    from twistox.core.plots import plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.4))
    a1.scatter(std * 1e3, err * 1e3, s=8, alpha=0.6)
    a1.set_xscale("log")
    a1.set_yscale("log")
    lo = max(1e-1, min(std[std > 0].min(initial=1), err[err > 0].min(initial=1)) * 1e3)
    hi = max(std.max(), err.max()) * 1e3
    a1.plot([lo, hi], [lo, hi], "k--", lw=1, label="error = std")
    a1.set_xlabel("committee force std per atom (meV/Å)")
    a1.set_ylabel("|F_MACE - F_DFT| per atom (meV/Å)")
    from matplotlib.ticker import NullFormatter

    a1.xaxis.set_minor_formatter(NullFormatter())
    a1.yaxis.set_minor_formatter(NullFormatter())
    a1.set_title(f"test set: Spearman ρ = {spearman(std, err):.2f}")
    a1.legend(fontsize=8)
    its = [h["iteration"] for h in history]
    a2.plot(its, [h["forces_mae_meV_per_A"] for h in history], "o-", label="test force MAE (meV/Å)")
    a2.plot(its, [h["energy_mae_meV_per_atom"] for h in history], "s-", label="test energy MAE (meV/atom)")
    a2.set_xlabel("active-learning iteration")
    a2.set_ylabel("error")
    a2.set_xticks(its)
    ax2 = a2.twinx()
    ax2.bar(its, [h["n_train"] for h in history], alpha=0.15, color="k", label="training frames")
    ax2.set_ylabel("training frames")
    a2.set_zorder(ax2.get_zorder() + 1)  # error curves above the bars
    a2.patch.set_visible(False)
    a2.legend(fontsize=8, loc="center right")
    a2.set_title("active learning")
    fig.tight_layout()
    return fig
