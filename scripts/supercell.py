"""Rule supercell: build the commensurate twisted bilayer of one sample."""

import time

from ase.io import write

from twistox.core.config import bilayer_spec, section
from twistox.core.io import structure_dataset, write_dataset
from twistox.core.plots import planview, save
from twistox.core.runtime import setup_logging
from twistox.supercell.builder import build_bilayer, expected_atom_count

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
csl = sm.params.csl
spec = bilayer_spec(sm.config, sm.wildcards.system)
log.info("building %s: m=%d n=%d Sigma=%d theta=%.4f deg (requested %.4f)", sm.wildcards.sample, csl.m, csl.n,
         csl.sigma, csl.theta_deg, csl.theta_requested_deg)
atoms = build_bilayer(csl, spec)
if len(atoms) != expected_atom_count(csl, spec):
    raise RuntimeError("atom count does not match planes x Sigma")
log.info("%d atoms, L = %.3f Å, moire period %.3f Å", len(atoms), atoms.info["supercell_length"], atoms.info["moire_period"])
write(sm.output.extxyz, atoms, format="extxyz")
save(planview(atoms, sm.config["supercell"]["figure_planes"]), sm.output.figure)
cfg = section(sm.config, "seed", "twist", "supercell")
cfg["system"] = sm.config["systems"][sm.wildcards.system]
write_dataset(structure_dataset(atoms), sm.output.zarr, config=cfg, stage="supercell", t0=t0)
log.info("wrote %s in %.2f s", sm.output.zarr, time.time() - t0)
