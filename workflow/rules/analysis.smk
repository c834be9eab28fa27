# Stage 8: vortex winding of every field source of a sample, classified by network site (issues 8, 13).
# Sources follow config analysis.sources AND what the workflow can make: a source is used
# when some included rule produces its artifact (or the file already exists), so the rule
# runs with whichever upstream stages are present.
import os as _os

from twistox.analysis.experiment import check_experiment_config, experiment_entries

_ANALYSIS_ARTIFACTS = {"dpc": ("stem", "stem.zarr"), "phasefield": ("phasefield", "phasefield.zarr"),
                       "atomistic": ("strain", "strain.zarr")}

try:
    check_experiment_config(config["analysis"]["experiment"], {s: list(v) for s, v in SAMPLES.items()})
except ValueError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None


def available(path):
    """True when an included rule can make `path` or it exists already."""
    return _os.path.exists(path) or any(r.is_producer(path) for r in workflow.rules if r.name != "all")


def analysis_inputs(wc):
    d = sample_dir(wc.system, wc.sample)
    cfg = config["analysis"]
    out = {"supercell": f"{d}/supercell.zarr"}
    for source, (name, art) in _ANALYSIS_ARTIFACTS.items():
        if source in cfg["sources"] and available(f"{d}/{art}"):
            out[name] = f"{d}/{art}"
    # strain.zarr also locates the network sites (critical points of its interlayer_twist map)
    if "strain" not in out and cfg["nodes"] in ("auto", "twist") and available(f"{d}/strain.zarr"):
        out["strain"] = f"{d}/strain.zarr"
    for k, (name, e) in enumerate(experiment_entries(cfg["experiment"], wc.system, wc.sample, next(iter(SAMPLES)))):
        out[f"experiment_{k}"] = e["path"]
    return out


rule analysis:
    input:
        unpack(analysis_inputs),
    output:
        # vortices.zarr (was dpc.zarr until this release; readers accept both)
        zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/vortices.zarr"),
        csv=f"{RESULTS}/{{system}}/{{sample}}/vortices.csv",
        vortices=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/analysis_vortices.png",
            caption="../report/analysis.rst", category="8 analysis", subcategory="{system} {sample}",
        ),
        periodicity=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/analysis_periodicity.png",
            caption="../report/analysis_periodicity.rst", category="8 analysis", subcategory="{system} {sample}",
        ),
    params:
        csl=lambda wc: SAMPLES[wc.system][wc.sample],
        experiment=lambda wc: experiment_entries(config["analysis"]["experiment"], wc.system, wc.sample,
                                                 next(iter(SAMPLES))),
    log:
        "logs/analysis/{system}/{sample}.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis/{{system}}/{{sample}}.tsv"
    threads: 1
    resources:
        **rule_resources("analysis"),
    conda:
        CONDA_ENVS["analysis"]
    script:
        "../../scripts/analysis.py"


SAMPLE_TARGETS.append("{results}/{system}/{sample}/vortices.csv")
