"""The one rule-script helper: logging, threads, seed, timing and provenance for ``scripts/*.py``.

Every rule script reads::

    from twistox.core.runner import stage_script

    with stage_script(snakemake, "relax", seed_wildcard="sample") as run:
        ds = twistox.relax.stage.run(...)
        run.write_dataset(ds, snakemake.output.zarr, sections=("seed", "device", "relax"))

``run.log`` writes to the rule's log file; ``run.t0`` is the start time [s since epoch];
``run.seed`` / ``run.rng`` the seeded generators; an exception is logged with its traceback
before it propagates (Snakemake then marks the job failed).
"""

from __future__ import annotations

import logging
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from twistox.core.runtime import seed_everything, set_threads, setup_logging


@dataclass
class StageRun:
    """What a rule script needs from its surroundings (see :func:`stage_script`)."""

    sm: Any  # the snakemake object
    stage: str
    log: logging.Logger
    t0: float
    threads: int
    seed: int
    rng: np.random.Generator
    timings: dict = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.sm.config

    def elapsed(self) -> float:
        """Seconds since the script started."""
        return time.time() - self.t0

    def provenance_config(self, *sections: str, system: bool = False) -> dict:
        """The config subset the stage depends on (``section(config, ...)``), plus the system's block."""
        from twistox.core.config import section

        c = section(self.config, *sections)
        if system:
            c["system"] = self.config["systems"][self.sm.wildcards.system]
        return c

    def write_dataset(self, ds, path, sections: tuple[str, ...] = ("seed",), system: bool = False,
                      stage: str | None = None):
        """``twistox.core.io.write_dataset`` with this stage's provenance and wall time."""
        from twistox.core.io import write_dataset

        return write_dataset(ds, path, config=self.provenance_config(*sections, system=system),
                             stage=stage or self.stage, t0=self.t0)


def stage_seed(base: int, tag: str | None = None) -> int:
    """Seed of one job: the config seed, offset by CRC-32 of ``tag`` (e.g. the sample name) when given."""
    return int(base) + (zlib.crc32(tag.encode()) if tag else 0)


@contextmanager
def stage_script(sm, stage: str, threads: int | None = None, seed_wildcard: str | None = None) -> Iterator[StageRun]:
    """Set up a rule script: log to ``sm.log[0]``, limit threads (``sm.threads`` by default), seed
    python/numpy/torch from ``config['seed']`` (offset by the wildcard ``seed_wildcard`` when given).
    """
    t0 = time.time()
    log = setup_logging(sm.log[0] if len(sm.log) else None)
    n = int(sm.threads if threads is None else threads)
    set_threads(n)
    tag = str(getattr(sm.wildcards, seed_wildcard)) if seed_wildcard else None
    seed = stage_seed(sm.config.get("seed", 0), tag)
    rng = seed_everything(seed)
    run = StageRun(sm=sm, stage=stage, log=log, t0=t0, threads=n, seed=seed, rng=rng)
    try:
        yield run
    except BaseException:
        log.exception("%s failed after %.1f s", stage, run.elapsed())
        raise
    log.info("%s done in %.1f s", stage, run.elapsed())
