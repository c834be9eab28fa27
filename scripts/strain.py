"""Rule strain: relaxed.zarr -> strain.zarr (crystal/global-frame strain, rotation, interlayer twist,
B-site off-centring against the rigid cages, Fourier fit on every plane) and its figures."""

from twistox.core.io import read_dataset
from twistox.core.runner import stage_script
from twistox.strain import figures
from twistox.strain.stage import run

sm = snakemake  # noqa: F821
with stage_script(sm, "strain") as job:
    system = sm.config["systems"][sm.wildcards.system]
    ds = run(read_dataset(sm.input.relaxed), sm.config["strain"], species={"B": system["B"], "X": system["X"]},
             log=job.log)
    figures.plot_interface_fields(ds, sm.output.fig_fields)
    figures.plot_fourier_fit(ds, sm.output.fig_fourier)
    figures.plot_plane_profile(ds, sm.output.fig_planes)
    job.write_dataset(ds, sm.output.zarr, sections=("seed", "strain"), system=True)
