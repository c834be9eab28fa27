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
VOLATILE_ATTRS = {"wall_time_s", "created_utc", "host", "platform", "git_commit"}
# Bookkeeping that differs by design between a resumed and an uninterrupted job (where it resumed,
# how long the part after the resume took); the physics is compared in full.
RESUME_ATTRS = ("resumed", "wall", "seconds", "elapsed", "time_")
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
        strip = lambda d: {k: v for k, v in d.items()  # noqa: E731
                           if k not in VOLATILE_ATTRS and not any(w in k for w in RESUME_ATTRS)}
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


# --------------------------------------------------------------------------------------------
# Resume where the time is (issue 14 item 5): the long stages, killed (SIGKILL) mid-job after
# their checkpoint has content, resumed with the documented commands, give the numbers of the
# uninterrupted toy run (the session fixture `toy_run`) and recompute only what the checkpoint
# lacked. Each test copies the finished toy run (outputs + Snakemake metadata), forces the
# stage's job for one target, kills it, and resumes.
# --------------------------------------------------------------------------------------------
import hashlib
import json
import re
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    rule: str
    target: str            # an output of the job (format: sample=)
    watch: str             # glob of the stage's checkpoint files under results/STO (system) or the sample dir
    mode: str              # "items": per-item checkpoint files, those present at the kill are never rewritten;
    #                        "state": one evolving checkpoint, the resumed job's log says where it resumed
    resumed_log: str = ""  # regex on the resumed job's log (mode "state"; optional for "items")
    min_files: int = 1     # checkpoint files to wait for before the kill
    clear: str = ""        # glob of the original run's checkpoint files to delete first (default: watch)
    wait_s: float = 2.0    # extra time after that, so the kill lands mid-computation


LONG_STAGES = [
    Stage("dft_label", "results/STO/dft/labels.csv", "dft/cache/[0-9]*_*.json", "items", r"\(([1-9]\d*) already done",
          clear="dft/cache/*"),
    Stage("active_learning", "results/STO/mlip/metrics.json", "mlip/al_cache/[0-9]*_*.json", "items",
          clear="mlip/al_cache/*"),
    Stage("relax", "results/STO/{sample}/relaxed.zarr", ".checkpoints/relax/**/*", "state",
          r"resumed from checkpoint at step"),
    Stage("phasefield", "results/STO/{sample}/phasefield.zarr", "phasefield.ckpt/*", "state",
          r"resumed from checkpoint"),
    Stage("stem_4d", "results/STO/{sample}/stem/fourd.zarr", "stem/.checkpoints/fourd/**/*", "items", wait_s=0.0),
    Stage("stem_haadf", "results/STO/{sample}/stem/planview.zarr", "stem/.checkpoints/planview/**/*", "items"),
]


def _files_under(root: Path, pattern: str) -> dict[Path, int]:
    out = {}
    for p in root.glob(pattern):
        if p.is_file():
            try:
                out[p] = p.stat().st_mtime_ns
            except FileNotFoundError:  # removed while listing
                pass
    return out


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _job_outputs(workdir: Path, rule: str, target: str) -> list[str]:
    # target first: --forcerun and --configfile take every following word
    jobs = dry_run_jobs(run_snakemake("-n", target, "--forcerun", rule, "--configfile", TOY_CONFIG,
                                      workdir=workdir).stdout)
    job = [j for j in jobs if j.rule == rule]
    assert len(job) == 1, f"expected one {rule} job for {target}, planned {[j.rule for j in jobs]}"
    return job[0].outputs


def _same_outputs(ref: Path, got: Path, outputs: list[str]) -> None:
    """Outputs equal the uninterrupted run's: Zarr numerically, CSV/JSON numbers, text/extxyz exactly
    up to volatile fields; figures and model binaries (pickled timestamps) only exist."""
    import pandas as pd

    for o in outputs:
        a, b = ref / o, got / o
        assert b.exists(), o
        if o.endswith(".zarr"):
            tmp_a, tmp_b = got.parent / "cmp_a", got.parent / "cmp_b"
            for t, src in ((tmp_a, a), (tmp_b, b)):
                shutil.rmtree(t, ignore_errors=True)
                shutil.copytree(src, t / "x.zarr")
            assert_same_artifacts(tmp_a, tmp_b)
        elif o.endswith(".csv"):
            da, db = pd.read_csv(a), pd.read_csv(b)
            assert list(da.columns) == list(db.columns), o
            for c in da.columns:
                if any(w in c.lower() for w in ("time", "wall", "host", "pid", "seconds")):
                    continue  # volatile bookkeeping
                if pd.api.types.is_numeric_dtype(da[c]):
                    np.testing.assert_allclose(da[c].values, db[c].values, rtol=1e-8, atol=1e-10, err_msg=f"{o}:{c}")
                else:
                    assert list(da[c].astype(str)) == list(db[c].astype(str)), f"{o}:{c}"
        elif o.endswith(".json"):
            ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            for k, v in ja.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and "time" not in k:
                    assert jb[k] == pytest.approx(v, rel=1e-6, abs=1e-9), f"{o}:{k}"
        elif o.endswith(".extxyz"):
            from ase.io import read

            fa, fb = read(a, ":"), read(b, ":")
            assert len(fa) == len(fb), o
            for x, y in zip(fa, fb):
                np.testing.assert_allclose(x.positions, y.positions, rtol=0, atol=1e-8, err_msg=o)
                if "energy" in x.info or x.calc is not None:
                    ea = x.info.get("energy", x.get_potential_energy() if x.calc else None)
                    eb = y.info.get("energy", y.get_potential_energy() if y.calc else None)
                    assert ea == pytest.approx(eb, rel=1e-8), o


def _kill_when_checkpointed(workdir: Path, args: list, base: Path, stage: Stage,
                            timeout: float = 1800) -> dict[Path, int]:
    """Run snakemake, SIGKILL its process group once ``stage.min_files`` new checkpoint files
    (``stage.watch`` under ``base``) exist, plus stage.wait_s; return {checkpoint file: mtime} at the kill."""
    before = _files_under(base, stage.watch)
    t_start = time.time_ns()
    proc = subprocess.Popen(snakemake_cmd(*args, workdir=workdir), cwd=REPO, env=snakemake_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t0, seen_at = time.time(), None
        while True:
            assert proc.poll() is None, f"{stage.rule} finished before its checkpoint was seen"
            assert time.time() - t0 < timeout, f"{stage.rule}: no checkpoint file within {timeout} s"
            new = {p: m for p, m in _files_under(base, stage.watch).items() if m > t_start and before.get(p) != m}
            if len(new) >= stage.min_files and seen_at is None:
                seen_at = time.time()
            if seen_at is not None and time.time() - seen_at >= stage.wait_s:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return _files_under(base, stage.watch)


@pytest.mark.slow
@pytest.mark.workflow
@pytest.mark.parametrize("stage", LONG_STAGES, ids=lambda s: s.rule)
def test_long_stage_kill_and_resume(stage, toy_run, tmp_path, monkeypatch):
    # time-based checkpoints (relax, phasefield; default 60 s) within the toy's short stages; inherited
    # by the Snakemake runs below (snakemake_env copies os.environ). Checkpointing more often does not
    # change the numbers: the outputs are compared with the toy run's (default interval).
    monkeypatch.setenv("TWISTOX_CHECKPOINT_INTERVAL_S", "0.5")
    sample = sorted(p.name for p in (toy_run.results / "STO").glob("theta*"))[0]
    target = stage.target.format(sample=sample)
    wd = tmp_path / "run"
    shutil.copytree(toy_run.workdir, wd, symlinks=True, ignore=shutil.ignore_patterns("toy_run.log"))
    outputs = _job_outputs(wd, stage.rule, target)
    base = wd / "results" / "STO" / (sample if "{sample}" in stage.target else "")
    for p in _files_under(base, stage.clear or stage.watch):  # the job starts from nothing: no checkpoint of the original run
        p.unlink()

    args = [target, "--cores", "2", "--forcerun", stage.rule, "--configfile", TOY_CONFIG]
    at_kill = _kill_when_checkpointed(wd, args, base, stage)
    assert at_kill, "no checkpoint on disk at the kill"
    digests = {p: _digest(p) for p in at_kill if p.exists()}

    # documented resume: SIGKILL leaves Snakemake's lock behind -> --unlock, then --rerun-incomplete
    locks = wd / ".snakemake" / "locks"
    assert locks.exists() and any(locks.iterdir()), \
        "after SIGKILL Snakemake's lock files should remain (else README's --unlock advice is wrong)"
    run_snakemake("--unlock", target, "--configfile", TOY_CONFIG, workdir=wd)
    plan = dry_run_jobs(run_snakemake("-n", "--rerun-incomplete", target, "--configfile", TOY_CONFIG,
                                      workdir=wd).stdout)
    assert [j.rule for j in plan if j.rule != "all"] == [stage.rule], "resume must run exactly the killed job"

    log = wd / "logs" / stage.rule
    log_files = sorted(log.rglob("*.log")) if log.exists() else []
    for f in log_files:
        f.unlink()
    proc = subprocess.Popen(snakemake_cmd("--rerun-incomplete", target, "--cores", "2", "--configfile", TOY_CONFIG,
                                          workdir=wd), cwd=REPO, env=snakemake_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    rewritten = set()
    while proc.poll() is None:  # items mode: a checkpoint item present at the kill is never recomputed
        for p, m in at_kill.items():
            try:
                if p.stat().st_mtime_ns != m or _digest(p) != digests.get(p):
                    rewritten.add(p)
            except FileNotFoundError:
                pass  # cleaned up after the job finished
        time.sleep(0.2)
    text = proc.stdout.read()
    assert proc.returncode == 0, text[-4000:]
    job_log = "\n".join(f.read_text() for f in (sorted(log.rglob("*.log")) if log.exists() else []))
    if stage.mode == "items":
        assert not rewritten, f"checkpoint items recomputed: {sorted(map(str, rewritten))[:5]}"
    if stage.resumed_log:
        assert re.search(stage.resumed_log, job_log), f"{stage.rule}: the resumed job did not report a resume:\n" \
                                                     f"{job_log[-3000:]}"
    _same_outputs(toy_run.workdir, wd, [o for o in outputs if not o.endswith(".png")])
