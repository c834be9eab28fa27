"""Rule stem: merge the STEM parts of one sample into stem.zarr and draw the figures."""

import time

import xarray as xr

from twistox.core.config import section
from twistox.core.io import read_dataset, write_dataset
from twistox.core.plots import save
from twistox.core.runtime import setup_logging
from twistox.stem import figures as stem_plots

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
cfg = sm.config["stem"]
parts = [read_dataset(p) for p in sm.input.parts]
attrs = {}
for p in parts:
    attrs.update({k: v for k, v in p.attrs.items() if k.endswith("_settings") or k.startswith("planview_sample")})
    attrs.update({k: p.attrs[k] for k in ("structures", "energy_kev", "device", "theta_deg", "sigma", "supercell_length",
                                          "moire_period", "interface_z", "frame_angle_deg", "layer_angles_deg")
                  if k in p.attrs})
# the full 4D data (if kept) stays in stem/fourd.zarr; stem.zarr holds the maps
ds = xr.merge([p.drop_vars([v for v in p.data_vars if v.startswith("patterns")]) for p in parts],
              combine_attrs="drop_conflicts")
ds.attrs = attrs
write_dataset(ds, sm.output.zarr, config=section(sm.config, "seed", "device", "stem"), stage="stem", t0=t0)
L = ds.attrs.get("supercell_length")
fig = sm.output
if "haadf" in ds:
    save(stem_plots.focal_series(ds, "haadf", f"HAADF {cfg['planview']['ranges']['haadf']} mrad", L), fig.haadf)
    save(stem_plots.focal_series(ds, "laadf", f"LAADF {cfg['planview']['ranges']['laadf']} mrad", L), fig.laadf)
if any(v.startswith("cross_section_") for v in ds.data_vars):
    save(stem_plots.cross_sections(ds, cfg["cross_section"]["views"], ds.attrs.get("moire_period")), fig.cross_sections)
if "com" in ds:
    save(stem_plots.com_map(ds), fig.com)
log.info("wrote %s and figures in %.1f s", sm.output.zarr, time.time() - t0)
