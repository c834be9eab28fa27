"""MACE committee training through mace-torch's ``run_train``: K members with seeds seed..seed+K-1,
each in its own process (``workers`` at a time), optionally warm-started from the previous
checkpoint (active-learning retraining). Settings: ``config['mlip']`` (schema defaults).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twistox.core.checkpoint import atomic_write
from twistox.mlip.foundation import foundation_args


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
    pair_repulsion: bool = True  # ZBL core repulsion added to the learned energy (mace --pair_repulsion)
    default_dtype: str = "float64"
    extra_args: tuple[str, ...] = ()
    foundation_model: str | None = None  # fine-tune from this MACE .model (twistox.mlip.foundation)

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
    if s.pair_repulsion and not s.foundation_model:  # a foundation model brings its own architecture
        args += ["--pair_repulsion"]
    if s.stress_weight > 0:
        args += ["--loss", "stress", "--compute_stress", "True"]
    if restart:
        args += ["--restart_latest"]
    args += foundation_args(s.foundation_model)  # architecture then comes from the foundation model
    return args + list(s.extra_args)


def train_committee(train_file: str | os.PathLike, out_dir: str | os.PathLike, s: TrainSettings, seed: int,
                    device: str = "cpu", workers: int = 1, restart: bool = False, epochs: int | None = None,
                    log: logging.Logger | None = None) -> list[Path]:
    """Train (or, with restart, continue training) the K committee members; return their .model paths.

    Member k uses seed + k and lives in ``out_dir/member_{k}``; ``epochs`` is the *total*
    epoch count (for a warm restart: previous total + retrain epochs).
    """
    log = log or logging.getLogger("twistox")
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



def copy_models(paths: list[Path], out_paths: list[str | os.PathLike]) -> None:
    """Copy trained member files to the stage outputs (atomically)."""
    for src, dst in zip(paths, out_paths):
        atomic_write(dst, lambda tmp, src=src: shutil.copyfile(src, tmp))
