"""Rule phasefield: relax P, u, phi of the bilayer slab driven by the eigenstrain (strain.zarr or analytic network)."""

from twistox.core.checkpoint import Checkpoint
from twistox.core.device import torch_device
from twistox.core.io import read_dataset
from twistox.core.runner import stage_script
from twistox.phasefield import figures, stage

sm = snakemake  # noqa: F821
with stage_script(sm, "phasefield") as job:
    ckpt = Checkpoint(sm.params.checkpoint, fmt="pt")  # keyed by the run's fingerprint (solver)
    ds, res = stage.run(sm.config["phasefield"], read_dataset(sm.input.strain), torch_device(sm.config.get("device", "auto")),
                        job.seed, checkpoint=ckpt, log=job.log, mem_budget_mb=getattr(sm.resources, "mem_mb", None))
    figures.render_all(ds, sm.output, sm.config["phasefield"]["figure_tiles"])
    job.write_dataset(ds, sm.output.zarr, sections=("seed", "device", "phasefield"))
    ckpt.clear()  # the artifact is complete: the checkpoint is no longer needed
    job.log.info("wrote %s: max|P| = %.4g C/m2, %s after %d steps", sm.output.zarr, ds.attrs["max_abs_P"],
                 res.stop_reason, res.steps)
