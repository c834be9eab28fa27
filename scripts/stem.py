"""Rule stem: merge the STEM parts of one sample into stem.zarr and draw the figures."""

from twistox.core.io import read_dataset
from twistox.core.plots import save
from twistox.core.runner import stage_script
from twistox.stem.stage import figures, merge_parts

sm = snakemake  # noqa: F821
with stage_script(sm, "stem") as run:
    ds = merge_parts([read_dataset(p) for p in sm.input.parts])
    run.write_dataset(ds, sm.output.zarr, sections=("seed", "device", "stem"))
    for name, fig in figures(ds, sm.config["stem"]).items():
        save(fig, getattr(sm.output, name))
