"""Rule active_learning: committee MD -> uncertain diverse frames -> DFT -> retrain; final models + metrics."""

import shutil

from ase.io import read, write

from twistox.core.plots import save
from twistox.core.runner import stage_script
from twistox.dft.calculators import check_calculator
from twistox.dft.stage import label_settings, make_labeller
from twistox.mlip import stage
from twistox.mlip.figures import parity_figure, uncertainty_figure
from twistox.mlip.metrics import write_metrics
from twistox.mlip.training import copy_models

sm = snakemake  # noqa: F821
with stage_script(sm, "active_learning") as run:
    dft = label_settings(sm.config)
    check_calculator(dft["calculator"], dft)
    targets = stage.carve_targets(sm.config, sm.wildcards.system)  # validates mlip.active_learning.carve
    relax_starts = stage.relax_path_starts(sm.config, sm.wildcards.system)  # validates ...relax_paths
    train = read(sm.input.train, index=":", format="extxyz")
    test = read(sm.input.test, index=":", format="extxyz")
    lab = make_labeller(sm.params.cache, sm.config, run.log)
    paths, added, metrics, ue = stage.run_active_learning(
        train, test, stage.al_start_cells(sm.config, sm.wildcards.system), sm.input.initial, sm.params.workdir, lab,
        sm.config, label_workers=sm.threads, targets=targets, relax_starts=relax_starts)
    copy_models(paths, sm.output.models)
    write(sm.output.al_frames, added if added else [], format="extxyz")
    metrics["wall_time_s"] = run.elapsed()
    write_metrics(sm.output.metrics, metrics)
    save(parity_figure(test, ue["pred"], f"committee mean on the held-out set ({len(test)} frames)",
                       metrics["by_config_type"]), sm.output.parity)
    save(uncertainty_figure(ue["force_std"], ue["force_error"], metrics["iterations"]), sm.output.uncertainty)
    for src, dst in ((sm.output.parity, sm.output.fig_parity), (sm.output.uncertainty, sm.output.fig_uncertainty)):
        shutil.copyfile(src, dst)
