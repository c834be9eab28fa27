"""Rule dft_configs: generate the training configurations of one system (unlabelled)."""

from ase.io import write

from twistox.core.runner import stage_script
from twistox.dft import stage

sm = snakemake  # noqa: F821
with stage_script(sm, "dft_configs") as run:
    frames = stage.run_configs(sm.config, sm.wildcards.system, run.rng)
    write(sm.output.configs, frames, format="extxyz")
    run.log.info("wrote %d configurations to %s", len(frames), sm.output.configs)
