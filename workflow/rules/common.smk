# Shared helpers for the rule files: sample lists, per-rule resources, paths.

import math
import os
from pathlib import Path as _Path

wildcard_constraints:
    system="[A-Za-z0-9_-]+",
    sample=r"theta[0-9.]+_m[0-9]+n[0-9]+",

# Stage outputs requested by `rule all`, per sample and per system. Each rule file
# appends its end products here so that adding a stage is one include.
SAMPLE_TARGETS = []
SYSTEM_TARGETS = []
GLOBAL_TARGETS = []


# Built-in per-rule resources; config['resources'] overrides them per rule (or for all
# rules under the key 'default'). retry_scale: memory and runtime grow by this factor on
# each retry (`retries` in the slurm profile), so a job killed for time/memory comes back bigger.
_RES_DEFAULTS = {"threads": 1, "mem_mb": 2000, "runtime": 30, "gpu": 0, "retry_scale": 1.5}
# Passed through to the scheduler only when set (snakemake-executor-plugin-slurm names).
_RES_PASSTHROUGH = ("slurm_partition", "slurm_extra", "gpu_model", "constraint", "qos")

# Conda environment per stage, for --software-deployment-method conda: rules add
# `conda: CONDA_ENVS["stem"]`. Built from envs/*.yaml, so a new stage only adds its file.
CONDA_ENVS = {p.stem: str(p) for p in sorted((_Path(workflow.basedir) / "envs").glob("*.yaml"))}
# Jobs run `import twistox` from src/ also inside a conda env (where it is not pip-installed);
# exported here so it reaches local jobs and SLURM jobs (sbatch --export=ALL) alike.
_SRC = str(_Path(workflow.basedir) / "src")
if _SRC not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)


def res(rule_name, key, default=None):
    """Per-rule resource: config['resources'][rule] > `default` > ['default'] > built-in."""
    r = config.get("resources", {})
    if key in r.get(rule_name, {}):
        return r[rule_name][key]
    if default is not None:
        return default
    return r.get("default", {}).get(key, _RES_DEFAULTS.get(key))


def _attempt_scaled(base, scale):
    """Resource callable: base on the first attempt, base * scale**(attempt-1) on retries."""
    base, scale = float(base), float(scale)

    def scaled(wildcards, attempt):
        return int(math.ceil(base * scale ** (attempt - 1)))

    return scaled


def rule_threads(rule_name, default=None):
    """Threads (= SLURM --cpus-per-task) for `threads: rule_threads("relax", 4)`."""
    return int(res(rule_name, "threads", default))


def rule_resources(rule_name, **defaults):
    """Resources of a rule from the config: mem_mb (MB) and runtime (min), both growing with
    the retry attempt, gpu when > 0, and the scheduler keys in _RES_PASSTHROUGH when set.
    Keyword arguments are the rule's own defaults (config['resources'][rule] still wins)."""
    scale = res(rule_name, "retry_scale")
    out = {
        "mem_mb": _attempt_scaled(res(rule_name, "mem_mb", defaults.get("mem_mb")), scale),
        "runtime": _attempt_scaled(res(rule_name, "runtime", defaults.get("runtime")), scale),
    }
    gpu = res(rule_name, "gpu", defaults.get("gpu"))
    if gpu:
        out["gpu"] = int(gpu)
    for key in _RES_PASSTHROUGH:
        value = res(rule_name, key, defaults.get(key))
        if value:
            out[key] = value
    return out


def sample_dir(system, sample):
    return f"{RESULTS}/{system}/{sample}"


def all_samples():
    return [(s, n) for s, samples in SAMPLES.items() for n in samples]


def final_targets():
    out = list(GLOBAL_TARGETS)
    for system in SAMPLES:
        out += [t.format(results=RESULTS, system=system) for t in SYSTEM_TARGETS]
    for system, sample in all_samples():
        out += [t.format(results=RESULTS, system=system, sample=sample) for t in SAMPLE_TARGETS]
    return out


# Outputs follow code: every rule with a script gets params.code, a hash of the script and of every
# twistox module it imports (twistox.codeversion), so Snakemake's params rerun trigger reruns the
# rule -- and what depends on it -- after the library it runs was edited. Called by the Snakefile
# once all rule files are included.
def add_code_versions():
    from twistox.codeversion import code_version

    for r in workflow.rules:
        if r.script is not None:
            script = _Path(str(r.basedir.get_path_or_uri(secret_free=True))) / r.script
            r.set_params(code=code_version(script))


def write_effective_config(cfg):
    """Provenance of a run: the validated config (defaults filled) as
    {results}/provenance/config.<UTC time>.yaml, and {results}/effective_config.yaml (replaced
    atomically), each headed by the command line, the config files, version and commit."""
    import sys as _sys
    import time as _time

    import yaml as _yaml

    from twistox import __version__
    from twistox.core.io import git_commit

    stamp = _time.strftime("%Y%m%dT%H%M%SZ", _time.gmtime())
    head = (f"# twistox {__version__}, commit {git_commit()}, {stamp}\n"
            f"# command: {' '.join(_sys.argv)}\n"
            f"# config files: {', '.join(map(str, workflow.configfiles)) or 'none'}\n")
    text = head + _yaml.safe_dump(cfg, sort_keys=False)
    prov = _Path(cfg["results"]) / "provenance"
    prov.mkdir(parents=True, exist_ok=True)
    out = prov / f"config.{stamp}.yaml"
    k = 1
    while out.exists():  # two runs in the same second
        out, k = prov / f"config.{stamp}.{k}.yaml", k + 1
    out.write_text(text)
    latest = _Path(cfg["results"]) / "effective_config.yaml"
    tmp = latest.with_name(f".{latest.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, latest)
