# Stage: translation scan + FIRE relaxation + Langevin MD averaging with the MLIP committee.
# One rule: the scan, refinement and MD share the loaded model, the batched evaluator and one
# checkpoint directory (results/.../.checkpoints/relax), so a killed job resumes mid-phase.


def _relax_models(wc):
    k = config.get("mlip", {}).get("committee_size", 1)
    return [f"{RESULTS}/{wc.system}/mlip/model_{i}.model" for i in range(int(k))]


rule relax:
    input:
        supercell=f"{RESULTS}/{{system}}/{{sample}}/supercell.zarr",
        models=_relax_models,
    output:
        zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/relaxed.zarr"),
        extxyz=f"{RESULTS}/{{system}}/{{sample}}/relaxed.extxyz",
        fig_scan=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/relax_translation_energy.png",
            caption="../report/relax.rst", category="4 relax", subcategory="{system} {sample}",
        ),
        fig_md=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/relax_md.png",
            caption="../report/relax.rst", category="4 relax", subcategory="{system} {sample}",
        ),
    params:
        checkpoint_dir=lambda wc: f"{RESULTS}/{wc.system}/{wc.sample}/.checkpoints/relax",
    log:
        "logs/relax/{system}/{sample}.log",
    benchmark:
        f"{RESULTS}/benchmarks/relax/{{system}}/{{sample}}.tsv"
    threads: rule_threads("relax", 1)
    resources:
        **rule_resources("relax"),
    conda:
        CONDA_ENVS["relax"]
    script:
        "../../scripts/relax.py"


SAMPLE_TARGETS.append("{results}/{system}/{sample}/relaxed.zarr")
