"""DFT stage drivers: what ``scripts/dft_configs.py`` and ``scripts/dft_label.py`` call."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ase import Atoms

from twistox.dft.calculators import check_calculator, make_calculator
from twistox.dft.labeller import Labeller, collect
from twistox.dft.trainset import TrainsetSettings, generate
from twistox.dft.twisted import path_calculator_factory as twisted_path_factory

log = logging.getLogger("twistox")

LABEL_COLUMNS = ("frame_id", "config_type", "split", "n_atoms", "status", "failure", "wall_s", "n_scf", "energy_eV",
                 "fmax_eV_per_A", "reason")


class TransientLabelFailure(RuntimeError):
    """Frames failed for a transient reason (dft.on_transient_failure = fail); a rerun retries them."""


def label_settings(config: dict) -> dict:
    """config['dft'] plus the run's device (the calculators' settings)."""
    return {**config["dft"], "device": config["device"]}


def make_labeller(cache_dir: str | Path, config: dict, log_: logging.Logger | None = None) -> Labeller:
    """The run's labeller: cache in ``cache_dir``, calculator from config['dft'], read-only seed
    caches from ``dft.label_seed`` (paths relative to the working directory)."""
    dft = label_settings(config)
    return Labeller(Path(cache_dir), dft["calculator"], dft, log=log_ or log,
                    seed_dirs=tuple(dft.get("label_seed", ())), seed_tolerance=float(dft.get("label_seed_tolerance_A", 1e-3)))


def run_configs(config: dict, system: str, rng: np.random.Generator) -> list[Atoms]:
    """Unlabelled training configurations of ``system`` (see :func:`twistox.dft.trainset.generate`)."""
    from twistox.supercell.stage import bilayer_spec, material

    s = TrainsetSettings.from_config(config["dft"]["configs"])
    if s.md > 0:  # fail before any work when the MD driver is missing
        check_calculator(s.md_calculator, config["dft"], key="dft.configs.md_calculator")
    md_factory = (lambda: make_calculator(s.md_calculator, label_settings(config), atoms=None)) if s.md > 0 else None
    frames = generate(material(config, system), bilayer_spec(config, system, translation=(0.0, 0.0)), s, rng,
                      md_calc_factory=md_factory, max_sigma=config["twist"]["max_sigma"],
                      path_calc_factory=twisted_path_factory(config))
    kinds: dict = {}
    for f in frames:
        kinds.setdefault((f.info["config_type"], f.info["split"]), []).append(len(f))
    for (k, split), n in sorted(kinds.items()):
        log.info("%-8s %-5s %3d frames, %d-%d atoms", k, split, len(n), min(n), max(n))
    return frames


def run_label(frames: list[Atoms], cache_dir: str | Path, config: dict, workers: int = 1
              ) -> tuple[list[Atoms], list[Atoms], list[Atoms], list[dict]]:
    """Label ``frames`` (resumable cache in ``cache_dir``). Returns (train, test, all good frames, statuses).

    Frames whose SCF failed are excluded (cached as failed). Frames that failed for a transient
    reason after ``dft.transient_retries`` retries raise :class:`TransientLabelFailure` when
    ``dft.on_transient_failure`` is ``fail`` (the default), else they are excluded.
    """
    dft = label_settings(config)
    check_calculator(dft["calculator"], dft)  # one clear error (how to install) before any work
    lab = make_labeller(cache_dir, config)
    lab.label(frames, workers=workers, retries=dft["transient_retries"])
    good, statuses = collect(frames, lab)
    train = [a for a in good if a.info["split"] == "train"]
    test = [a for a in good if a.info["split"] == "test"]
    failed = [s for s in statuses if s["status"] != "ok"]
    for s in failed:
        log.warning("frame %s (%s) FAILED (%s), excluded from train/test: %s", s.get("frame_id"), s.get("config_type"),
                    s.get("failure"), s.get("reason"))
    transient = [s for s in failed if s.get("failure") == "transient"]
    if transient and dft["on_transient_failure"] == "fail":
        ids = ", ".join(str(s.get("frame_id")) for s in transient)
        raise TransientLabelFailure(
            f"{len(transient)} frame(s) failed for a transient reason (ids {ids}; first: {transient[0].get('reason')}); "
            "they are not cached as failed: rerun to retry them (the other labels are cached), or set "
            "dft.on_transient_failure: skip; allowed: fail, skip")
    if not train or not test:
        raise RuntimeError(f"{len(train)} train / {len(test)} test frames labelled ({len(failed)} failed): "
                           "need at least one of each; see the log")
    ok = [s for s in statuses if s["status"] == "ok"]
    log.info("%d train + %d test frames (%d failed); %.1f s per frame (one core)", len(train), len(test), len(failed),
             sum(s["wall_s"] for s in ok) / max(1, len(ok)))
    return train, test, good, statuses


def labels_table(statuses: list[dict]) -> str:
    """labels.csv: one row per frame; ``failure`` is '' (ok), 'scf_failed' (permanent) or 'transient'."""
    lines = [",".join(LABEL_COLUMNS)]
    for s in statuses:
        lines.append(",".join(str(s.get(c, "")).replace(",", ";").replace("\n", " ") for c in LABEL_COLUMNS))
    return "\n".join(lines) + "\n"
