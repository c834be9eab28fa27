"""Rule electronic: relaxed.zarr + strain.zarr -> electronic.zarr (GPAW LCAO +U: DOS, PDOS by network region,
band edges, LDOS map of the states just below the VBM, enrichment on dislocation lines / nodes) and figures."""

from twistox.core.io import read_dataset
from twistox.core.runner import stage_script
from twistox.electronic import figures
from twistox.electronic.stage import run

sm = snakemake  # noqa: F821
with stage_script(sm, "electronic") as job:
    strain = read_dataset(sm.input.strain)
    ds = run(read_dataset(sm.input.relaxed), strain, sm.config["electronic"], threads=job.threads,
             checkpoint_dir=sm.params.checkpoint, txt=sm.params.txt, log=job.log)
    figures.plot_pdos(ds, sm.output.fig_pdos)
    figures.plot_ldos_map(ds, strain, sm.output.fig_ldos)
    job.write_dataset(ds, sm.output.zarr, sections=("seed", "electronic"), system=True)
