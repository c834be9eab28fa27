"""Rule dft_configs: generate the training configurations of one system (unlabelled)."""

import time

from ase.io import write

from twistox.core.config import bilayer_spec, material
from twistox.dft.labelling import check_calculator, make_calculator
from twistox.core.runtime import seed_everything, set_threads, setup_logging
from twistox.dft.trainset import TrainsetSettings, generate

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
set_threads(sm.threads)
cfg = sm.config
s = TrainsetSettings.from_config(cfg["dft"]["configs"])
if s.md > 0:  # fail before any work when the MD driver is missing
    check_calculator(s.md_calculator, cfg["dft"], key="dft.configs.md_calculator")
rng = seed_everything(cfg["seed"])
mat = material(cfg, sm.wildcards.system)
spec = bilayer_spec(cfg, sm.wildcards.system, translation=(0.0, 0.0))
md_factory = (lambda: make_calculator(s.md_calculator, {**cfg["dft"], "device": cfg["device"]},
                                      atoms=None)) if s.md > 0 else None
frames = generate(mat, spec, s, rng, md_calc_factory=md_factory, max_sigma=cfg["twist"]["max_sigma"])
kinds = {}
for f in frames:
    kinds.setdefault((f.info["config_type"], f.info["split"]), []).append(len(f))
for (k, split), n in sorted(kinds.items()):
    log.info("%-8s %-5s %3d frames, %d-%d atoms", k, split, len(n), min(n), max(n))
write(sm.output.configs, frames, format="extxyz")
log.info("wrote %d configurations to %s in %.1f s", len(frames), sm.output.configs, time.time() - t0)
