# Stage 1: commensurate twisted supercell.

rule supercell:
    output:
        zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/supercell.zarr"),
        extxyz=f"{RESULTS}/{{system}}/{{sample}}/supercell.extxyz",
        figure=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/supercell_planview.png",
            caption="../report/supercell.rst", category="1 supercell", subcategory="{system} {sample}",
        ),
    params:
        csl=lambda wc: SAMPLES[wc.system][wc.sample],
    log:
        "logs/supercell/{system}/{sample}.log",
    benchmark:
        f"{RESULTS}/benchmarks/supercell/{{system}}/{{sample}}.tsv"
    threads: 1
    resources:
        **rule_resources("supercell"),
    conda:
        CONDA_ENVS["supercell"]
    script:
        "../../scripts/supercell.py"


SAMPLE_TARGETS.append("{results}/{system}/{sample}/supercell.zarr")
