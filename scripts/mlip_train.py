"""Rule mlip_train: train the initial MACE committee on the DFT training set."""

from twistox.core.runner import stage_script
from twistox.mlip import stage

sm = snakemake  # noqa: F821
with stage_script(sm, "mlip_train"):
    stage.run_train(sm.input.train, sm.output.workdir, sm.config)
