"""Rule dft_label: label the training configurations frame by frame (resumable); write train/test extxyz."""

import time

from ase.io import read, write

from twistox.dft.labelling import Labeller, check_calculator, collect
from twistox.dft.labelling import summary_figure
from twistox.core.plots import save
from twistox.core.runtime import set_threads, setup_logging

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
cfg = sm.config
dft = {**cfg["dft"], "device": cfg["device"]}
check_calculator(dft["calculator"], dft)  # one clear error (how to install) before any work
set_threads(1)  # one serial DFT process per worker; sm.threads workers
frames = read(sm.input.configs, index=":", format="extxyz")
lab = Labeller(sm.params.cache, dft["calculator"], dft, log=log)
lab.label(frames, workers=sm.threads)
good, statuses = collect(frames, lab)
train = [a for a in good if a.info["split"] == "train"]
test = [a for a in good if a.info["split"] == "test"]
failed = [s for s in statuses if s["status"] != "ok"]
for s in failed:
    log.warning("frame %s (%s) FAILED, excluded from train/test: %s", s.get("frame_id"), s.get("config_type"),
                s.get("reason"))
if not train or not test:
    raise RuntimeError(f"{len(train)} train / {len(test)} test frames labelled ({len(failed)} failed): "
                       "need at least one of each; see the log")
write(sm.output.train, train, format="extxyz")
write(sm.output.test, test, format="extxyz")
with open(sm.output.table, "w") as fh:
    cols = ["frame_id", "config_type", "split", "n_atoms", "status", "wall_s", "n_scf", "energy_eV", "fmax_eV_per_A",
            "reason"]
    fh.write(",".join(cols) + "\n")
    for s in statuses:
        fh.write(",".join(str(s.get(c, "")).replace(",", ";") for c in cols) + "\n")
save(summary_figure(good, statuses), sm.output.figure)
ok = [s for s in statuses if s["status"] == "ok"]
tpf = sum(s["wall_s"] for s in ok) / max(1, len(ok))
log.info("%d train + %d test frames (%d failed); %.1f s per frame (one core); total %.1f s", len(train), len(test),
         len(failed), tpf, time.time() - t0)
