# Stage: per-atom strain (crystal and global frame) / rotation / B-site off-centring (rigid cages) from the
# relaxed bilayer, gridded on every plane of the periodic supercell and fit to a truncated 2D Fourier series
# (order in moire harmonics; phase-field input); interlayer twist map and network periods.

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
        fig_planes=report(
            f"{RESULTS}/{{system}}/{{sample}}/figures/strain_planes.png",
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
