"""Rule dft_label: label the training configurations frame by frame (resumable); write train/test extxyz."""

from pathlib import Path

from ase.io import read, write

from twistox.core.plots import save
from twistox.core.runner import stage_script
from twistox.dft import stage
from twistox.dft.figures import summary_figure

sm = snakemake  # noqa: F821
with stage_script(sm, "dft_label", threads=1) as run:  # one serial DFT process per worker; sm.threads workers
    frames = read(sm.input.configs, index=":", format="extxyz")
    train, test, good, statuses = stage.run_label(frames, sm.params.cache, sm.config, workers=sm.threads)
    write(sm.output.train, train, format="extxyz")
    write(sm.output.test, test, format="extxyz")
    Path(sm.output.table).write_text(stage.labels_table(statuses))
    save(summary_figure(good, statuses), sm.output.figure)
