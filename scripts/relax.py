"""Rule relax: translation scan, FIRE relaxation and MD averaging of one sample with the MLIP."""

from ase.io import write

from twistox.core.checkpoint import Checkpoint
from twistox.core.device import tune_malloc
from twistox.core.io import read_dataset
from twistox.core.runner import stage_script
from twistox.relax import stage
from twistox.relax.figures import plot_md, plot_translation_energy

sm = snakemake  # noqa: F821
with stage_script(sm, "relax", seed_wildcard="sample") as run:
    stage.check_settings(sm.config["relax"])  # bad MD times fail here, before the model is loaded
    tune_malloc()  # torch's per-call buffers otherwise cost an mmap/munmap each force call
    ds, final = stage.run(read_dataset(sm.input.supercell), list(sm.input.models), sm.config, run.rng, run.seed,
                          checkpoint_dir=sm.params.checkpoint_dir)
    write(sm.output.extxyz, final, format="extxyz")
    plot_translation_energy(ds, sm.output.fig_scan)
    plot_md(ds, sm.output.fig_md, sm.config["relax"]["md"])
    run.write_dataset(ds, sm.output.zarr, sections=("seed", "device", "relax", "mlip"), system=True)
    Checkpoint(sm.params.checkpoint_dir).clear()  # outputs complete: the checkpoints are spent
