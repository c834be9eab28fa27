# Stage: per-atom strain / rotation / Ti off-centring from the relaxed bilayer, interface fields
# gridded on the periodic supercell and fit to a truncated 2D Fourier series (phase-field input).

rule strain:
    input:
        relaxed=f"{RESULTS}/{{system}}/{{sample}}/relaxed.zarr",
    output:
        zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/strain.zarr"),
        fig_fields=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/strain_interface.png",
            caption="../report/strain.rst", category="5 strain", subcategory="{system} {sample}",
        ),
        fig_fourier=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/strain_fourier.png",
            caption="../report/strain.rst", category="5 strain", subcategory="{system} {sample}",
        ),
    log:
        "logs/strain/{system}/{sample}.log",
    benchmark:
        f"{RESULTS}/benchmarks/strain/{{system}}/{{sample}}.tsv"
    threads: rule_threads("strain", 1)
    resources:
        **rule_resources("strain"),
    conda:
        CONDA_ENVS["strain"]
    script:
        "../../scripts/strain.py"


SAMPLE_TARGETS.append("{results}/{system}/{sample}/strain.zarr")
