"""Rule strain: per-atom strain / rotation / Ti off-centring, gridded interface fields, Fourier fit."""

import time

from twistox.strain.atomistic import check_settings, plot_fourier_fit, plot_interface_fields, strain_dataset
from twistox.core.config import section
from twistox.core.io import read_dataset, write_dataset
from twistox.core.runtime import set_threads, setup_logging

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
set_threads(sm.threads)
cfg = sm.config["strain"]
relaxed = read_dataset(sm.input.relaxed)
check_settings(cfg, float(relaxed.attrs["supercell_length"]))
ds = strain_dataset(relaxed, cfg)
for p in ds["plane"].values:
    d = ds.sel(plane=p)
    log.info("plane %d: eps_xy rms %.2e, rotation rms %.3f deg, eps_xy period %.2f Å (lambda %.2f Å), "
             "Fourier residual eps_xy %.1e", p, float((d["eps_xy"] ** 2).mean() ** 0.5),
             float((d["rotation"] ** 2).mean() ** 0.5) * 57.2958, float(d["network_period"]),
             ds.attrs["moire_period"], float(d["fourier_residual"].sel(component="eps_xy")))
counts = ds["ti_cn_counts"]
for p in counts["all_planes"].values:
    c = counts.sel(all_planes=p).values
    if c.sum():
        log.info("plane %d: Ti CN5 = %d, CN6 = %d (of %d)", p, c[5], c[6], c.sum())
plot_interface_fields(ds, sm.output.fig_fields)
plot_fourier_fit(ds, sm.output.fig_fourier)
c = section(sm.config, "seed", "strain")
write_dataset(ds, sm.output.zarr, config=c, stage="strain", t0=t0)
log.info("wrote %s in %.2f s", sm.output.zarr, time.time() - t0)
