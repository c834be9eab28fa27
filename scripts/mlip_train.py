"""Rule mlip_train: train the initial MACE committee on the DFT training set."""

import time

from twistox.mlip.committee import TrainSettings, epoch_times, train_committee
from twistox.core.runtime import set_threads, setup_logging, torch_device

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
set_threads(sm.threads)
cfg = sm.config
s = TrainSettings.from_config(cfg["mlip"])
device = torch_device(cfg["device"])
# members run as parallel processes; on one GPU they share it, on CPU they share the rule's threads
workers = s.committee_size
paths = train_committee(sm.input.train, sm.output.workdir, s, seed=cfg["seed"], device=device, workers=workers,
                        log=log)
et = [t for p in paths for t in epoch_times(p.parent)]
log.info("initial committee: %d models on %s, %.2f s per epoch (median over members, %d in parallel); %.1f s",
         len(paths), device, sorted(et)[len(et) // 2] if et else float("nan"), workers, time.time() - t0)
