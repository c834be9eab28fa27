"""Rules stem_haadf / stem_cross_section / stem_4d: one part of the STEM simulation of one sample."""

from twistox.core.io import read_dataset
from twistox.core.runner import stage_script
from twistox.stem.stage import finish_part, run_part

sm = snakemake  # noqa: F821
with stage_script(sm, f"stem_{sm.params.part}") as run:
    ds = run_part(sm.params.part, read_dataset(sm.input.structure), sm.config["stem"], sm.config["device"],
                  run.threads, int(sm.config["seed"]), sm.params.checkpoints, run.log,
                  mem_budget_mb=getattr(sm.resources, "mem_mb", None))
    run.write_dataset(ds, sm.output.zarr, sections=("seed", "device", "stem"))
    finish_part(sm.config["stem"], sm.params.checkpoints)  # after the write: a kill before it still resumes
