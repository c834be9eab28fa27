"""Rule active_learning: committee MD -> uncertain diverse frames -> DFT -> retrain; final models + metrics."""

import shutil
import time
from pathlib import Path

from ase.io import read, write

from twistox.core.config import bilayer_spec, material
from twistox.dft.labelling import Labeller, check_calculator
from twistox.mlip.committee import (ALSettings, TrainSettings, active_learning, copy_models, epoch_times, error_metrics,
                          parity_figure, spearman, uncertainty_figure, uncertainty_vs_error, write_metrics)
from twistox.core.plots import save
from twistox.core.runtime import set_threads, setup_logging, torch_device
from twistox.dft.trainset import TrainsetSettings, start_cells

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
cfg = sm.config
dft = {**cfg["dft"], "device": cfg["device"]}
check_calculator(dft["calculator"], dft)
set_threads(sm.threads)
s = TrainSettings.from_config(cfg["mlip"])
al = ALSettings.from_config(cfg["mlip"]["active_learning"])
device = torch_device(cfg["device"])
work = Path(sm.params.workdir)
# start from a fresh copy of the initial committee so a rerun repeats the same AL
shutil.rmtree(work, ignore_errors=True)
shutil.copytree(sm.input.initial, work)
train = read(sm.input.train, index=":", format="extxyz")
test = read(sm.input.test, index=":", format="extxyz")
ts = TrainsetSettings.from_config(cfg["dft"]["configs"])
starts = start_cells(al.cells, material(cfg, sm.wildcards.system), bilayer_spec(cfg, sm.wildcards.system, (0.0, 0.0)),
                     ts, al.twisted_angles_deg, cfg["twist"]["max_sigma"])
log.info("active learning: %d iterations, %d start cells x %d temperatures, %d frames per iteration", al.iterations,
         len(starts), len(al.temperatures_K), al.frames_per_iteration)
lab = Labeller(sm.params.cache, dft["calculator"], dft, log=log)
paths, history, added = active_learning(train, test, starts, work, s, al, lab, cfg["seed"], device,
                                        workers=s.committee_size, label_workers=sm.threads, log=log)
copy_models(paths, sm.output.models)
write(sm.output.al_frames, added if added else [], format="extxyz")

ue = uncertainty_vs_error(paths, test, device)
first = history[-1]["first_model"]
mode = cfg["mlip"]["load_mode"]
main = first if mode == "first" else {k: v for k, v in history[-1].items() if k in first}
et = [t for p in paths for t in epoch_times(p.parent)]
metrics = {
    **main,
    "evaluated_model": "model_0" if mode == "first" else "committee mean",
    "n_train": len(train) + len(added), "n_train_dft": len(train), "n_train_active_learning": len(added),
    "n_test": len(test), "n_test_atoms": sum(len(a) for a in test), "committee_size": s.committee_size,
    "committee_mean": {k: v for k, v in history[-1].items() if k in first},
    "first_model": first,
    "test_uncertainty_error_spearman": spearman(ue["force_std"], ue["force_error"]),
    "test_force_std_mean_meV_per_A": float(ue["force_std"].mean() * 1e3),
    "labels_calculator": dft["calculator"], "labels_are_dft": lab.record["is_dft"],
    "train_time_per_epoch_s": float(sorted(et)[len(et) // 2]) if et else None,
    "device": device, "iterations": history, "wall_time_s": time.time() - t0,
}
write_metrics(sm.output.metrics, metrics)
save(parity_figure(test, ue["pred"], f"committee mean on the held-out set ({len(test)} frames)"), sm.output.parity)
save(uncertainty_figure(ue["force_std"], ue["force_error"], history), sm.output.uncertainty)
for src, dst in ((sm.output.parity, sm.output.fig_parity), (sm.output.uncertainty, sm.output.fig_uncertainty)):
    shutil.copyfile(src, dst)
log.info("final (%s): test energy MAE %.2f meV/atom, force MAE %.1f meV/Å, RMSE %.1f meV/Å, R2 %.3f; %.1f s",
         metrics["evaluated_model"], metrics["energy_mae_meV_per_atom"], metrics["forces_mae_meV_per_A"],
         metrics["forces_rmse_meV_per_A"], metrics["forces_r2"], time.time() - t0)
