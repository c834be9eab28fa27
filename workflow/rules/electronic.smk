# Stage (optional, issue 18): electronic states at the dislocation network (the paper's Fig. 4j).
# GPAW LCAO +U on the relaxed structure; DOS / PDOS by network region, band edges, the LDOS map of the
# states within electronic.ldos_window_eV below the VBM on strain.zarr's grid. Off unless electronic.enabled.

rule electronic:
    input:
        relaxed=f"{RESULTS}/{{system}}/{{sample}}/relaxed.zarr",
        strain=f"{RESULTS}/{{system}}/{{sample}}/strain.zarr",
    output:
        zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/electronic.zarr"),
        fig_pdos=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/electronic_pdos.png",
            caption="../report/electronic.rst", category="10 electronic", subcategory="{system} {sample}",
        ),
        fig_ldos=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/electronic_ldos.png",
            caption="../report/electronic.rst", category="10 electronic", subcategory="{system} {sample}",
        ),
    params:
        checkpoint=lambda wc: f"{RESULTS}/{wc.system}/{wc.sample}/.checkpoints/electronic",
        txt=lambda wc: f"logs/electronic/{wc.system}/{wc.sample}.gpaw.txt",
    log:
        "logs/electronic/{system}/{sample}.log",
    benchmark:
        f"{RESULTS}/benchmarks/electronic/{{system}}/{{sample}}.tsv"
    threads: rule_threads("electronic", 2)
    resources:
        **rule_resources("electronic"),
    conda:
        CONDA_ENVS["electronic"]
    script:
        "../../scripts/electronic.py"


if config["electronic"]["enabled"]:
    SAMPLE_TARGETS.append("{results}/{system}/{sample}/electronic.zarr")
