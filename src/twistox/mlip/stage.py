"""MLIP stage drivers: what ``scripts/mlip_train.py`` and ``scripts/mlip_active_learning.py`` call."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from ase import Atoms

from twistox.core.device import torch_device
from twistox.mlip.active_learning import ALSettings, active_learning
from twistox.mlip.calculator import load_calculator
from twistox.mlip.carved import CarveSettings
from twistox.mlip.metrics import predict, spearman, uncertainty_vs_error
from twistox.mlip.offsets import by_config_type
from twistox.mlip.relaxpaths import RelaxPathSettings
from twistox.mlip.subsets import twisted_block
from twistox.mlip.training import TrainSettings, epoch_times, train_committee

log = logging.getLogger("twistox")


def median(values: list[float]) -> float | None:
    """Upper median (None when empty)."""
    return float(sorted(values)[len(values) // 2]) if values else None


def run_train(train_file: str | Path, workdir: str | Path, config: dict) -> list[Path]:
    """Train the initial committee on ``train_file`` into ``workdir``; return the member model paths."""
    s = TrainSettings.from_config(config["mlip"])
    device = torch_device(config["device"])
    # members run as parallel processes; on one GPU they share it, on CPU they share the rule's threads
    workers = s.committee_size
    paths = train_committee(train_file, workdir, s, seed=config["seed"], device=device, workers=workers, log=log)
    et = [t for p in paths for t in epoch_times(p.parent)]
    log.info("initial committee: %d models on %s, %.2f s per epoch (median over members, %d in parallel)",
             len(paths), device, median(et) or float("nan"), workers)
    return paths


def al_start_cells(config: dict, system: str) -> list[Atoms]:
    """Start cells of the committee MD (``mlip.active_learning.cells``) of one system."""
    from twistox.dft.trainset import TrainsetSettings, start_cells
    from twistox.supercell.stage import bilayer_spec, material

    al = ALSettings.from_config(config["mlip"]["active_learning"])
    ts = TrainsetSettings.from_config(config["dft"]["configs"])
    return start_cells(al.cells, material(config, system), bilayer_spec(config, system, (0.0, 0.0)), ts,
                       al.twisted_angles_deg, config["twist"]["max_sigma"])


def carve_targets(config: dict, system: str) -> list[Atoms]:
    """Rigid twisted supercells of the config's angles (``twist.angles_deg`` via ``resolve_samples``, the
    supercell stage's builder and translation) that AL carves uncertain environments from; [] when
    ``mlip.active_learning.carve`` is off. Each carries ``info['sample']`` (e.g. Sigma145) for provenance.
    Raises ConfigError on a bad carve section (before any heavy work)."""
    from twistox.core.config import resolve_samples
    from twistox.supercell.builder import build_bilayer
    from twistox.supercell.stage import bilayer_spec

    if not CarveSettings.from_config(config["mlip"]["active_learning"].get("carve")).enabled:
        return []
    spec = bilayer_spec(config, system)
    out = []
    for name, csl in resolve_samples(config)[system].items():
        at = build_bilayer(csl, spec)
        at.info["sample"] = name
        out.append(at)
    return out


def relax_path_starts(config: dict, system: str) -> list[Atoms]:
    """Rigid twisted cells of the DFT set (``dft.configs.twisted``: every Σ at every translation, its
    ``cells`` per layer and ``dft.configs.vacuum``) that AL relaxes with the committee; [] when
    ``mlip.active_learning.relax_paths`` or the twisted block is off. Raises ConfigError on a bad section."""
    from twistox.dft.trainset import TrainsetSettings
    from twistox.dft.twisted import TwistedSettings, twisted_cell
    from twistox.supercell.stage import bilayer_spec, material

    if not RelaxPathSettings.from_config(config["mlip"]["active_learning"].get("relax_paths")).enabled:
        return []
    ts = TrainsetSettings.from_config(config["dft"]["configs"])
    tw = TwistedSettings.from_config(ts.twisted)
    spec = bilayer_spec(config, system)
    return [twisted_cell(material(config, system), spec, sg, tw.cells, tr, ts.vacuum)
            for sg in tw.sigmas for tr in tw.translations]


def run_active_learning(train: list[Atoms], test: list[Atoms], starts: list[Atoms], initial_dir: str | Path,
                        workdir: str | Path, labeller, config: dict, label_workers: int = 1,
                        targets: list[Atoms] | None = None, relax_starts: list[Atoms] | None = None
                        ) -> tuple[list[Path], list[Atoms], dict, dict]:
    """Active learning from a fresh copy of the initial committee (a rerun repeats the same AL).

    ``targets``: supercells to carve uncertain environments from (:func:`carve_targets`);
    ``relax_starts``: cells the committee relaxes for labels along its own path (:func:`relax_path_starts`).

    Returns (model paths, frames added, metrics.json contents, uncertainty-vs-error arrays).
    """
    t0 = time.time()
    s = TrainSettings.from_config(config["mlip"])
    al = ALSettings.from_config(config["mlip"]["active_learning"])
    carve = CarveSettings.from_config(config["mlip"]["active_learning"].get("carve"))
    relax = RelaxPathSettings.from_config(config["mlip"]["active_learning"].get("relax_paths"))
    relax_starts = relax_starts if relax.enabled else []
    device = torch_device(config["device"])
    work = Path(workdir)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(initial_dir, work)
    targets = targets if carve.enabled else []
    log.info("active learning: %d iterations, %d start cells x %d temperatures, %d frames per iteration, "
             "%d carved cells (Sigma%d) from each of %d targets, %d frames along the committee relaxation of each of "
             "%d twisted cells", al.iterations, len(starts), len(al.temperatures_K), al.frames_per_iteration,
             carve.frames if targets else 0, carve.sigma, len(targets or []), relax.frames if relax_starts else 0,
             len(relax_starts or []))
    paths, history, added = active_learning(train, test, starts, work, s, al, labeller, config["seed"], device,
                                            workers=s.committee_size, label_workers=label_workers, log=log,
                                            targets=targets, carve=carve, relax_starts=relax_starts, relax=relax)
    ue = uncertainty_vs_error(paths, test, device)
    metrics = al_metrics(history, config["mlip"]["load_mode"], train, test, added, s.committee_size, ue,
                         labeller.record, paths)
    load_mode = config["mlip"]["load_mode"]
    calc = load_calculator(paths, load_mode, device)
    test_pred = ue["pred"] if load_mode == "mean" else predict(calc, test)
    metrics["twisted"] = twisted_block(paths, test, load_mode, device, test_pred)  # issue 12
    metrics["by_config_type"] = config_type_block(calc, train + added, test, load_mode, test_pred)
    metrics.update(device=device, wall_time_s=time.time() - t0)
    log.info("final (%s): test energy MAE %.2f meV/atom, force MAE %.1f meV/Å, RMSE %.1f meV/Å, R2 %.3f",
             metrics["evaluated_model"], metrics["energy_mae_meV_per_atom"], metrics["forces_mae_meV_per_A"],
             metrics["forces_rmse_meV_per_A"], metrics["forces_r2"])
    return paths, added, metrics, ue


def config_type_block(calc, train: list[Atoms], test: list[Atoms], load_mode: str, test_pred: dict) -> dict:
    """metrics.json ``by_config_type`` (:func:`twistox.mlip.offsets.by_config_type`) of ``calc``, the model
    later stages load (``load_mode``); ``test_pred``: its predictions on ``test`` (only ``train`` is predicted
    here)."""
    block = by_config_type(train, predict(calc, train), test, test_pred, log=log)
    return {**block, "evaluated_model": "model_0" if load_mode == "first" else "committee mean"}


def al_metrics(history: list[dict], load_mode: str, train: list[Atoms], test: list[Atoms], added: list[Atoms],
               committee_size: int, ue: dict, label_record: dict, paths: list[Path]) -> dict:
    """metrics.json: the errors of what later stages load (``load_mode``), both variants, AL history."""
    first = history[-1]["first_model"]
    mean = {k: v for k, v in history[-1].items() if k in first}
    et = [t for p in paths for t in epoch_times(p.parent)]
    return {
        **(first if load_mode == "first" else mean),
        "evaluated_model": "model_0" if load_mode == "first" else "committee mean",
        "n_train": len(train) + len(added), "n_train_dft": len(train), "n_train_active_learning": len(added),
        "n_test": len(test), "n_test_atoms": sum(len(a) for a in test), "committee_size": committee_size,
        "committee_mean": mean, "first_model": first,
        "test_uncertainty_error_spearman": spearman(ue["force_std"], ue["force_error"]),
        "test_force_std_mean_meV_per_A": float(ue["force_std"].mean() * 1e3),
        "labels_calculator": label_record["calculator"], "labels_are_dft": label_record["is_dft"],
        "train_time_per_epoch_s": median(et), "iterations": history,
    }
