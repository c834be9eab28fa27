# Stage: from the plan-view HAADF back to the structure (issue 16): twist angle, GPA strain, and the
# registry (slip) map of a small CNN trained here on the fast incoherent model of the specimen.
# Needs stem.zarr (plan view); compares with strain.zarr when the workflow can make it.
import os as _os

from twistox.analysis.experiment import experiment_entries as _experiment_entries


def _haadf_entries(wc):
    """analysis.experiment entries with kind haadf for this sample: (name, entry)."""
    return _experiment_entries(config["analysis"].get("experiment", []), wc.system, wc.sample, next(iter(SAMPLES)),
                               kinds=("haadf",))


def image_inference_inputs(wc):
    d = sample_dir(wc.system, wc.sample)
    out = {"stem": f"{d}/stem.zarr"}
    strain = f"{d}/strain.zarr"
    if config["image_inference"]["compare"] and (_os.path.exists(strain) or any(r.is_producer(strain) for r in workflow.rules if r.name != "all")):
        out["strain"] = strain
    for k, (_, e) in enumerate(_haadf_entries(wc)):
        out[f"experiment_{k}"] = e["path"]
    return out


rule image_inference:
    input:
        unpack(image_inference_inputs),
    output:
        zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/image_inference.zarr"),
        model=f"{RESULTS}/{{system}}/{{sample}}/image_inference/regressor.pt",
        metrics=f"{RESULTS}/{{system}}/{{sample}}/image_inference/regressor_metrics.json",
        fig=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/image_inference.png",
            caption="../report/image_inference.rst", category="9 image inference", subcategory="{system} {sample}",
        ),
    params:
        experiment=_haadf_entries,
    log:
        "logs/image_inference/{system}/{sample}.log",
    benchmark:
        f"{RESULTS}/benchmarks/image_inference/{{system}}/{{sample}}.tsv"
    threads: rule_threads("image_inference", 1)
    resources:
        **rule_resources("image_inference"),
    conda:
        CONDA_ENVS["analysis"]
    script:
        "../../scripts/image_inference.py"


if config["image_inference"]["enabled"] and config["stem"]["planview"]["enabled"]:
    SAMPLE_TARGETS.append("{results}/{system}/{sample}/image_inference.zarr")
