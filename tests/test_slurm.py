"""The workflow on a real (single-node) SLURM cluster, through snakemake-executor-plugin-slurm.

The session fixture installs SLURM from Debian's packages when missing (root + apt-get), starts
munged + slurmctld + slurmd with .ci/slurm/cluster.py (config at /etc/slurm/slurm.conf) and
stops exactly the daemons it started, by PID, also when a test fails. It skips only where SLURM
cannot be installed or started without root. Daemons already running (a real site) are reused.

Targets: the per-sample artifacts of the rules in TWISTOX_SLURM_RULES (default: supercell,
which needs no per-system DFT/MLIP stage) for the toy config; TWISTOX_SLURM_RULES=all runs the
whole toy pipeline (rule all) through SLURM.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (PROFILES, REPO, TOY_CONFIG, dry_run_jobs, planned_jobs, run_snakemake, write_retry_workflow,
                      zarr_stores)
from twistox.core.io import read_dataset

CLUSTER_PY = REPO / ".ci" / "slurm" / "cluster.py"
SLURM_RULES = tuple(os.environ.get("TWISTOX_SLURM_RULES", "supercell").split(","))
# squeue: this test cluster has no accounting database (sacct); short polling for CI.
SLURM_ARGS = ("--profile", PROFILES / "slurm", "--slurm-no-account", "--slurm-status-command", "squeue",
              "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
              "--slurm-keep-successful-logs", "--latency-wait", "5", "--jobs", "4")

pytestmark = pytest.mark.slow


def _cluster_module():
    spec = importlib.util.spec_from_file_location("twistox_ci_slurm_cluster", CLUSTER_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install 'twistox[slurm]')")
    cluster = _cluster_module()
    try:
        cluster.install()
    except cluster.Unavailable as exc:
        pytest.skip(f"SLURM cannot be installed here: {exc}")
    if os.geteuid() != 0 and subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        pytest.skip("SLURM is installed but no controller runs and starting one needs root")
    state = Path(os.environ.get("TWISTOX_SLURM_DIR") or tmp_path_factory.mktemp("slurm_state"))
    try:
        cluster.start(state)  # a failure to start an installed SLURM is a test failure, not a skip
        yield cluster
    finally:
        cluster.stop(state)


def _slurm_job_ids(log: str) -> list[int]:
    return [int(x) for x in re.findall(r"submitted with SLURM jobid (\d+)", log)]


def _slurm_jobs_by_rule(log: str) -> list[tuple[int, str]]:
    """(SLURM job id, rule) of every submission (the plugin logs to .../rule_{rule}/...)."""
    return [(int(i), r) for i, r in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*?/rule_([^/]+)/", log)]


def _time_limit(minutes: int) -> str:
    d, rem = divmod(int(minutes), 24 * 60)
    return (f"{d}-" if d else "") + f"{rem // 60:02d}:{rem % 60:02d}:00"


def _scontrol(job_id: int) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def test_toy_pipeline_through_slurm(slurm_cluster, tmp_path):
    wd = tmp_path / "run"
    jobs = planned_jobs("--configfile", TOY_CONFIG, workdir=wd)
    if SLURM_RULES == ("all",):
        targets = [f for j in jobs if j.rule == "all" for f in j.inputs]
        expected = [j for j in jobs if j.rule != "all"]
    else:
        expected = [j for j in jobs if j.rule in SLURM_RULES]
        targets = sorted(o for j in expected for o in j.outputs)
    assert expected and targets
    t0 = time.time()
    p = run_snakemake(*targets, *SLURM_ARGS, "--configfile", TOY_CONFIG, workdir=wd, timeout=3000)
    wall = time.time() - t0
    log = p.stdout + p.stderr
    ids = _slurm_job_ids(log)
    assert len(ids) == len(expected), f"{len(ids)} sbatch submissions for {len(expected)} jobs"
    assert not [t for t in targets if not (wd / t).exists()]
    for store in zarr_stores(wd / "results"):
        ds = read_dataset(store)
        assert ds.attrs["stage"] and ds.attrs["git_commit"] and "config" in ds.attrs, store
    # the resources Snakemake gave each job (from config['resources']; job blocks of the run's
    # own log, where callable threads are evaluated) are what SLURM granted
    planned = {j.rule: {**j.resources, "threads": j.threads} for j in dry_run_jobs(log) if j.rule != "all"}
    by_rule = _slurm_jobs_by_rule(log)
    assert len(by_rule) == len(ids)
    for job_id, rule in by_rule:
        info = _scontrol(job_id)
        if info:  # finished jobs stay visible for MinJobAge (3600 s)
            assert info["JobState"] == "COMPLETED", info
            assert info["MinMemoryNode"] == f"{planned[rule]['mem_mb']}M", (rule, info)
            assert info["TimeLimit"] == _time_limit(int(planned[rule]["runtime"])), (rule, info)
            assert int(info["NumCPUs"]) == planned[rule]["threads"], (rule, info)
    assert list((wd / ".snakemake" / "slurm_logs").rglob("*.log")), "no SLURM job logs"
    print(f"\nSLURM: {len(ids)} jobs ({','.join(SLURM_RULES)}), wall {wall:.1f} s")


def test_slurm_retry_gets_more_memory_and_time(slurm_cluster, tmp_path):
    snakefile = write_retry_workflow(tmp_path, mem_mb=1000, runtime=10, scale=2.0)
    p = run_snakemake(*SLURM_ARGS, "--configfile", tmp_path / "config.yaml", workdir=tmp_path, snakefile=snakefile,
                      timeout=900)
    assert (tmp_path / "attempt.txt").read_text().split() == ["2000", "20"]
    ids = _slurm_job_ids(p.stdout + p.stderr)
    assert len(ids) == 2, "one failed attempt and one retry"
    first, second = _scontrol(ids[0]), _scontrol(ids[1])
    assert (first["MinMemoryNode"], first["TimeLimit"], first["JobState"]) == ("1000M", "00:10:00", "FAILED")
    assert (second["MinMemoryNode"], second["TimeLimit"], second["JobState"]) == ("2000M", "00:20:00", "COMPLETED")
