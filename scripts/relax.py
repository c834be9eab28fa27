"""Rule relax: translation scan, FIRE relaxation and MD averaging of one sample with the MLIP."""

import hashlib
import shutil
import time
import zlib
from pathlib import Path

from ase.io import write

from twistox.core.config import section
from twistox.core.io import atoms_from_dataset, read_dataset, write_dataset
from twistox.relax.relaxation import (Checkpoint, check_settings, mlip_calculator, plot_md, plot_translation_energy,
                           relax_bilayer, relaxed_dataset, tune_malloc)
from twistox.core.runtime import seed_everything, set_threads, setup_logging

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
cfg = sm.config["relax"]
check_settings(cfg)  # bad MD times fail here, before the model is loaded
set_threads(sm.threads)
tune_malloc()  # torch's per-call buffers otherwise cost an mmap/munmap each force call
rng = seed_everything(sm.config["seed"] + zlib.crc32(sm.wildcards.sample.encode()))

ds0 = read_dataset(sm.input.supercell)
atoms = atoms_from_dataset(ds0)
models = list(sm.input.models)
calc = mlip_calculator(models, mode=cfg["committee_mode"], device=sm.config["device"], dtype=cfg["dtype"])
log.info("%s: %d atoms, %d model(s) (%s), device %s", sm.wildcards.sample, len(atoms), len(models),
         cfg["committee_mode"], sm.config["device"])

# the checkpoint is valid only for this structure, these settings and these model files
key = Checkpoint.make_key(atoms.positions, atoms.numbers, cfg, sm.config["seed"],
                          [hashlib.sha256(Path(m).read_bytes()).hexdigest() for m in models])
ck_dir = Path(sm.params.checkpoint_dir)
out = relax_bilayer(atoms, calc, cfg, rng, checkpoint_dir=ck_dir, checkpoint_key=key)

ds = relaxed_dataset(atoms, out, dict(ds0.attrs))
final = atoms_from_dataset(ds)
write(sm.output.extxyz, final, format="extxyz")
plot_translation_energy(ds, sm.output.fig_scan)
plot_md(ds, sm.output.fig_md, cfg["md"])
c = section(sm.config, "seed", "device", "relax", "mlip")
c["system"] = sm.config["systems"][sm.wildcards.system]
write_dataset(ds, sm.output.zarr, config=c, stage="relax", t0=t0)
shutil.rmtree(ck_dir, ignore_errors=True)  # outputs complete: the checkpoints are spent
if ck_dir.parent.exists() and not any(ck_dir.parent.iterdir()):
    ck_dir.parent.rmdir()
log.info("wrote %s in %.1f s", sm.output.zarr, time.time() - t0)
