"""Kill-and-resume: a run killed in the middle of a job and started again finishes without
redoing finished jobs, never exposes a half-written artifact, and gives the same numbers as a
run that was never interrupted.

Targets: every per-sample artifact of the toy samples that needs no per-system stage (no DFT /
MLIP): today the `supercell` stage (2 jobs, ~2 s each with Python start-up), run with
`--cores 1` so that one job is finished and one is running when the kill lands. The kill goes
to Snakemake's whole process group, as a scheduler's time limit or a Ctrl-C on a terminal does:
SIGTERM (graceful) and SIGKILL (node loss / OOM killer: stale lock + incomplete markers left).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, TOY_CONFIG, dry_run_jobs, planned_jobs, run_snakemake, snakemake_cmd, snakemake_env, \
    zarr_stores
from twistox.core.io import read_dataset

# Provenance attrs that legitimately differ between two runs of the same config.
VOLATILE_ATTRS = {"wall_time_s", "created_utc", "host", "platform"}
# Rules that can run without per-system inputs (dft/mlip) are found from the DAG; these are
# the cheap ones used here. Override with TWISTOX_RESUME_RULES="supercell,strain" etc.
RESUME_RULES = tuple(os.environ.get("TWISTOX_RESUME_RULES", "supercell").split(","))


def _targets(workdir: Path) -> list[str]:
    jobs = planned_jobs("--configfile", TOY_CONFIG, workdir=workdir)
    return sorted(o for j in jobs if j.rule in RESUME_RULES for o in j.outputs if o.endswith(".zarr"))


def _run_args(targets):
    # targets first: --configfile takes every following word
    return (*targets, "--cores", "1", "--configfile", TOY_CONFIG)


def assert_same_artifacts(a: Path, b: Path) -> int:
    """Every Zarr store under a equals the one under b (values, dims, attrs less VOLATILE_ATTRS)."""
    stores = [p.relative_to(a) for p in zarr_stores(a)]
    assert stores and stores == [p.relative_to(b) for p in zarr_stores(b)]
    for rel in stores:
        da, db = read_dataset(a / rel), read_dataset(b / rel)
        assert set(da.variables) == set(db.variables), rel
        for name in da.variables:
            x, y = da[name].values, db[name].values
            assert da[name].dims == db[name].dims and x.shape == y.shape, (rel, name)
            if np.issubdtype(x.dtype, np.inexact):
                np.testing.assert_allclose(x, y, rtol=1e-12, atol=0, err_msg=f"{rel}:{name}")
            else:
                np.testing.assert_array_equal(x, y, err_msg=f"{rel}:{name}")
            assert da[name].attrs == db[name].attrs, (rel, name)
        strip = lambda d: {k: v for k, v in d.items() if k not in VOLATILE_ATTRS}  # noqa: E731
        assert strip(da.attrs) == strip(db.attrs), rel
    return len(stores)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same targets, run once without interruption."""
    wd = tmp_path_factory.mktemp("uninterrupted")
    targets = _targets(wd)
    assert len(targets) >= 2, "need at least two jobs to kill one while another is finished"
    run_snakemake(*_run_args(targets), workdir=wd, timeout=600)
    return wd, targets


def _kill_mid_job(workdir: Path, targets: list[str], sig: signal.Signals, timeout: float = 300) -> list[str]:
    """Start Snakemake, wait until one target is finished and another job's script is running
    (its log file exists, its artifact does not), kill the process group; return the finished."""
    proc = subprocess.Popen(snakemake_cmd(*_run_args(targets), workdir=workdir), cwd=REPO, env=snakemake_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    try:
        while True:
            assert proc.poll() is None, "the run finished before it could be killed"
            assert time.time() - t0 < timeout, "no job was seen running"
            done = [t for t in targets if (workdir / t).exists()]
            running = [p for p in (workdir / "logs").rglob("*.log")] if (workdir / "logs").exists() else []
            if done and len(running) > len(done):
                break
            time.sleep(0.02)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    t0 = time.time()
    while time.time() - t0 < 30:  # the whole group (job scripts too) must be gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the killed run survived")
    return done


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_kill_and_resume(sig, tmp_path, reference):
    ref_dir, targets = reference
    wd = tmp_path / "run"
    wd.mkdir()
    done = _kill_mid_job(wd, targets, sig)
    assert 0 < len(done) < len(targets)

    # no half-written artifact is visible: every store present opens and is complete
    for store in zarr_stores(wd):
        read_dataset(store)
    assert sorted(str(p.relative_to(wd)) for p in zarr_stores(wd)) == sorted(done)
    stamps = {t: (read_dataset(wd / t).attrs["created_utc"], (wd / t).stat().st_mtime_ns) for t in done}

    # the documented resume: unlock (needed after SIGKILL, harmless otherwise), rerun incomplete
    run_snakemake("--unlock", *_run_args(targets), workdir=wd)
    plan = dry_run_jobs(run_snakemake("-n", "--rerun-incomplete", *_run_args(targets), workdir=wd).stdout)
    planned = sorted(o for j in plan for o in j.outputs if o.endswith(".zarr"))
    assert planned == sorted(set(targets) - set(done)), "resume must run exactly the unfinished jobs"
    run_snakemake("--rerun-incomplete", *_run_args(targets), workdir=wd, timeout=600)

    for t in done:  # finished jobs were not redone
        assert (read_dataset(wd / t).attrs["created_utc"], (wd / t).stat().st_mtime_ns) == stamps[t], t
    assert all((wd / t).exists() for t in targets)
    assert assert_same_artifacts(ref_dir / "results", wd / "results") == len(targets)
