"""Rule phasefield: relax P, u, phi of the bilayer slab driven by the atomistic eigenstrain."""

import time
from pathlib import Path

from twistox.core.config import section
from twistox.core.io import read_dataset, write_dataset
from twistox.phasefield import figures
from twistox.phasefield.stage import check_config, run
from twistox.core.runtime import seed_everything, set_threads, setup_logging, torch_device

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
set_threads(sm.threads)
pf = sm.config["phasefield"]
check_config(pf)  # cheap semantic checks before any heavy work
seed = int(sm.config["seed"])
seed_everything(seed)
device = torch_device(sm.config.get("device", "auto"))
strain = read_dataset(sm.input.strain)
ckpt = Path(sm.params.checkpoint)
ds, res = run(pf, strain, device, seed, checkpoint=ckpt, log=log)
tiles = pf["figure_tiles"]
figures.cross_section(ds, sm.output.fig_cross, tiles)
figures.interface_plane(ds, sm.output.fig_plane, tiles)
figures.projected_field(ds, sm.output.fig_eproj, tiles)
figures.energy_history(ds, sm.output.fig_energy)
write_dataset(ds, sm.output.zarr, config=section(sm.config, "seed", "device", "phasefield"), stage="phasefield", t0=t0)
ckpt.unlink(missing_ok=True)  # the artifact is complete: the checkpoint is no longer needed
log.info("wrote %s: max|P| = %.4g C/m2, %s after %d steps, %.1f s", sm.output.zarr, ds.attrs["max_abs_P"],
         res.stop_reason, res.steps, time.time() - t0)
