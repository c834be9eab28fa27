"""Rule phasefield_dmi_sweep (optional, issue 19): the sample's phase field at each chiral-coupling coefficient D."""

from twistox.core.device import torch_device
from twistox.core.io import read_dataset
from twistox.core.runner import stage_script
from twistox.phasefield import figures, sweep
from twistox.phasefield.settings import validated

sm = snakemake  # noqa: F821
with stage_script(sm, "phasefield") as job:
    pf = validated(sm.config["phasefield"])
    ds = sweep.run_sample(pf, read_dataset(sm.input.strain), torch_device(sm.config.get("device", "auto")), job.seed,
                          log=job.log)
    figures.dmi_handedness(ds, sm.output.fig_handedness)
    figures.dmi_maps(ds, sm.output.fig_maps)
    job.write_dataset(ds, sm.output.zarr, sections=("seed", "device", "phasefield"))
    job.log.info("wrote %s: D = %s, threshold %s, estimate %.3g J m2/C2", sm.output.zarr, list(ds["dmi"].values),
                 ds.attrs["dmi_threshold"], ds.attrs["dmi_estimate"])
