# Shared helpers for the rule files: sample lists, per-rule resources, paths.

wildcard_constraints:
    system="[A-Za-z0-9_-]+",
    sample=r"theta[0-9.]+_m[0-9]+n[0-9]+",

_RES_DEFAULTS = {"threads": 1, "mem_mb": 2000, "runtime": 30, "gpu": 0}

# Stage outputs requested by `rule all`, per sample and per system. Each rule file
# appends its end products here so that adding a stage is one include.
SAMPLE_TARGETS = []
SYSTEM_TARGETS = []
GLOBAL_TARGETS = []


def res(rule_name, key):
    """Per-rule resource from config['resources'][rule] > ['default'] > built-in."""
    r = config.get("resources", {})
    for scope in (r.get(rule_name, {}), r.get("default", {})):
        if key in scope:
            return scope[key]
    return _RES_DEFAULTS.get(key)


def rule_resources(rule_name):
    """Resources dict for a rule: mem_mb, runtime (min), gpu, slurm_partition when set."""
    out = {"mem_mb": res(rule_name, "mem_mb"), "runtime": res(rule_name, "runtime")}
    gpu = res(rule_name, "gpu")
    if gpu:
        out["gpu"] = gpu
    part = res(rule_name, "slurm_partition")
    if part:
        out["slurm_partition"] = part
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
