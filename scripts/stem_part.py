"""Rules stem_haadf / stem_cross_section / stem_4d: one part of the STEM simulation of one sample."""

import time

from twistox.stem import simulate as stem
from twistox.core.config import section
from twistox.core.io import read_dataset, write_dataset
from twistox.core.runtime import set_threads, setup_logging
from twistox.stem.sample import structure_atoms

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
cfg = sm.config["stem"]
part = sm.params.part
stem.check_config(cfg)  # before any heavy work
set_threads(sm.threads)
device = stem.abtem_device(sm.config["device"])
stem.configure_abtem(device, cfg["precision"], sm.threads)
src = read_dataset(sm.input.structure)
structures = {name: structure_atoms(src, name) for name in cfg["structures"]}
log.info("stem %s of %s: structures %s from %s, device %s", part, sm.wildcards.sample, list(structures),
         sm.input.structure, device)
ckpt = stem.Checkpoints(sm.params.checkpoints, log)
seed = int(sm.config["seed"])
if part == "planview":
    ds = stem.run_planview(structures, cfg, device, seed, ckpt, log)
elif part == "cross_section":
    ds = stem.run_cross_sections(structures, cfg, device, seed, ckpt, log)
else:
    ds, patterns = stem.run_fourd(structures, cfg, device, seed, ckpt, log)
    if patterns is not None:
        ds = ds.merge(patterns)
ds.attrs.update(structures=list(structures), energy_kev=float(cfg["energy_kev"]), device=device,
                **{k: src.attrs[k] for k in ("theta_deg", "sigma", "supercell_length", "moire_period", "interface_z",
                                             "frame_angle_deg", "layer_angles_deg") if k in src.attrs})
write_dataset(ds, sm.output.zarr, config=section(sm.config, "seed", "device", "stem"), stage=f"stem_{part}", t0=t0)
if not cfg["keep_checkpoints"]:
    ckpt.clear()
log.info("wrote %s in %.1f s", sm.output.zarr, time.time() - t0)
