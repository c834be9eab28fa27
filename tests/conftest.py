"""Shared pytest fixtures and helpers for the workflow-level tests.

``toy_run`` (session scope) runs the whole toy pipeline (config/config.yaml, ``snakemake
--cores 2``) ONCE per test session in a temporary working directory; any test may reuse it:

    @pytest.mark.slow
    def test_my_stage_on_toy(toy_run):
        ds = read_dataset(toy_run.results / "STO" / "theta36.87_m3n1" / "strain.zarr")

Helpers (``from conftest import run_snakemake, dry_run_jobs``) run Snakemake from this
checkout with the venv's interpreter and parse dry-run job listings, so tests follow the
rules that exist instead of hard-coding a stage list.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TOY_CONFIG = REPO / "config" / "config.yaml"
PAPER_CONFIG = REPO / "config" / "paper.yaml"
PROFILES = REPO / "workflow" / "profiles"
TOY_TIMEOUT_S = float(os.environ.get("TWISTOX_TOY_TIMEOUT", 1800))
# A finished toy run to reuse instead of running it again (its working directory: results/, .snakemake/).
TOY_WORKDIR = os.environ.get("TWISTOX_TOY_WORKDIR")


def pytest_collection_modifyitems(config, items):
    """Tests that need a real workflow run (the `toy_run` fixture) are marked `workflow` and `slow`,
    so `make test-fast` (-m "not slow and not workflow") never starts one."""
    for item in items:
        if "toy_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.workflow)
            item.add_marker(pytest.mark.slow)


def snakemake_env(threads: int = 1) -> dict[str, str]:
    """Environment for child Snakemake runs: no thread oversubscription on small CI machines."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, str(threads))
    env.setdefault("MPLBACKEND", "Agg")
    return env


def snakemake_cmd(*args: str | os.PathLike, workdir: Path, snakefile: Path = SNAKEFILE) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
            *map(str, args)]


def run_snakemake(*args: str | os.PathLike, workdir: Path, timeout: float = 120, check: bool = True,
                  snakefile: Path = SNAKEFILE) -> subprocess.CompletedProcess:
    """Run snakemake (this checkout's Snakefile, working directory ``workdir``), output captured."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = snakemake_cmd(*args, workdir=workdir, snakefile=snakefile)
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=snakemake_env())
    if check and p.returncode != 0:
        raise AssertionError(f"snakemake failed (rc {p.returncode}): {' '.join(cmd)}\n"
                             f"{(p.stdout + p.stderr)[-6000:]}")
    return p


@dataclass
class Job:
    """One job of a dry-run listing."""

    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    threads: int = 1


_RULE_RE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):\s*$")


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def dry_run_jobs(text: str) -> list[Job]:
    """Jobs of `snakemake -n` output (rule, wildcards, input/output files, resources)."""
    jobs: list[Job] = []
    for line in text.splitlines():
        m = _RULE_RE.match(line)
        if m:
            jobs.append(Job(m.group(1)))
            continue
        if not jobs or not line.startswith("    "):
            continue
        key, _, value = line.strip().partition(": ")
        if key == "wildcards":
            jobs[-1].wildcards = dict(kv.split("=", 1) for kv in _split(value))
        elif key == "input":
            jobs[-1].inputs = _split(value)
        elif key == "output":
            jobs[-1].outputs = _split(value)
        elif key == "threads":
            jobs[-1].threads = int(value)
        elif key == "resources":
            jobs[-1].resources = dict(kv.split("=", 1) for kv in _split(value) if "=" in kv)
    return jobs


def planned_jobs(*args: str | os.PathLike, workdir: Path) -> list[Job]:
    """Dry-run (`-n`, all jobs forced) and return the jobs."""
    p = run_snakemake("-n", "--forceall", *args, workdir=workdir, timeout=120)
    return dry_run_jobs(p.stdout + p.stderr)


def zarr_stores(root: Path) -> list[Path]:
    """Finished Zarr stores under ``root`` (hidden temporary siblings excluded)."""
    return sorted(p for p in root.rglob("*.zarr") if p.is_dir() and not any(
        part.startswith(".") for part in p.relative_to(root).parts))


@dataclass
class ToyRun:
    """The session's end-to-end toy run (see module docstring)."""

    workdir: Path
    results: Path
    jobs: list[Job]          # every job of the run (dry run before it)
    targets: list[str]       # inputs of `rule all` (relative to workdir)
    wall_s: float
    log: str


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> ToyRun:
    """Run the whole toy pipeline once per session: `snakemake --cores 2` on config/config.yaml
    (or reuse the finished run in $TWISTOX_TOY_WORKDIR, which must have nothing left to do)."""
    common = ("--configfile", TOY_CONFIG)
    if TOY_WORKDIR:
        workdir = Path(TOY_WORKDIR).resolve()
        jobs = planned_jobs(*common, workdir=workdir)
        todo = dry_run_jobs(run_snakemake("-n", *common, workdir=workdir).stdout)
        if [j for j in todo if j.rule != "all"]:
            pytest.fail(f"TWISTOX_TOY_WORKDIR={workdir} is not a finished toy run: {sorted({j.rule for j in todo})}")
        return ToyRun(workdir=workdir, results=workdir / "results", jobs=jobs,
                      targets=[f for j in jobs if j.rule == "all" for f in j.inputs], wall_s=float("nan"), log="")
    workdir = tmp_path_factory.mktemp("toy_run")
    jobs = planned_jobs(*common, workdir=workdir)
    targets = [f for j in jobs if j.rule == "all" for f in j.inputs]
    t0 = time.time()
    p = run_snakemake("--cores", "2", *common, workdir=workdir, timeout=TOY_TIMEOUT_S, check=False)
    wall = time.time() - t0
    log = p.stdout + p.stderr
    (workdir / "toy_run.log").write_text(log)
    if p.returncode != 0:
        pytest.fail(f"toy pipeline failed (rc {p.returncode}) after {wall:.0f} s; log {workdir / 'toy_run.log'}:\n"
                    f"{log[-6000:]}")
    return ToyRun(workdir=workdir, results=workdir / "results", jobs=jobs, targets=targets, wall_s=wall, log=log)


RETRY_SNAKEFILE = """
include: {common!r}

rule all:
    input: "attempt.txt"

rule flaky:
    output: "attempt.txt"
    resources: **rule_resources("flaky")
    # fails on the first attempt (like a job killed for memory), succeeds on the retry
    shell: "if [ ! -e tried ]; then touch tried; exit 1; fi; echo {{resources.mem_mb}} {{resources.runtime}} > {{output}}"
"""


def write_retry_workflow(directory: Path, mem_mb: int = 1000, runtime: int = 10, scale: float = 2.0) -> Path:
    """A one-rule workflow using common.smk's rule_resources whose rule fails once."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Snakefile").write_text(RETRY_SNAKEFILE.format(common=str(REPO / "workflow/rules/common.smk")))
    (directory / "config.yaml").write_text(yaml.safe_dump(
        {"resources": {"flaky": {"mem_mb": mem_mb, "runtime": runtime, "retry_scale": scale}}}))
    return directory / "Snakefile"
