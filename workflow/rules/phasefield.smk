# Stage: 3D phase-field polarisation with flexoelectric coupling (torch, GPU when present).
# A killed job resumes from the checkpoint directory phasefield.ckpt/ next to the output (twistox.core.checkpoint;
# removed once the store is written).


def _pf_fig(name):
    return report(
        f"{RESULTS}/{{system}}/{{sample}}/figures/phasefield_{name}.png",
        caption="../report/phasefield.rst", category="6 phasefield", subcategory="{system} {sample}",
    )


rule phasefield:
    input:
        strain=f"{RESULTS}/{{system}}/{{sample}}/strain.zarr",
    output:
        zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/phasefield.zarr"),
        fig_cross=_pf_fig("P_cross_section"),
        fig_plane=_pf_fig("P_interface"),
        fig_eproj=_pf_fig("E_projected"),
        fig_energy=_pf_fig("energy"),
    params:
        checkpoint=lambda wc: f"{RESULTS}/{wc.system}/{wc.sample}/phasefield.ckpt",
    log:
        "logs/phasefield/{system}/{sample}.log",
    benchmark:
        f"{RESULTS}/benchmarks/phasefield/{{system}}/{{sample}}.tsv"
    threads: rule_threads("phasefield", 1)
    resources:
        **rule_resources("phasefield", mem_mb=2000, runtime=30),
    conda:
        CONDA_ENVS["phasefield"]
    script:
        "../../scripts/phasefield.py"


SAMPLE_TARGETS.append("{results}/{system}/{sample}/phasefield.zarr")


# Optional (issue 19): the sample's phase field at each chiral-coupling coefficient phasefield.dmi_sweep.values
# (D = 0 and the estimate G theta / a added); off when the list is empty (the default).
def _pf_dmi_fig(name):
    return report(
        f"{RESULTS}/{{system}}/{{sample}}/figures/phasefield_dmi_{name}.png",
        caption="../report/phasefield_dmi.rst", category="6 phasefield", subcategory="{system} {sample}",
    )


rule phasefield_dmi_sweep:
    input:
        strain=f"{RESULTS}/{{system}}/{{sample}}/strain.zarr",
    output:
        zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/phasefield_dmi_sweep.zarr"),
        fig_handedness=_pf_dmi_fig("handedness"),
        fig_maps=_pf_dmi_fig("maps"),
    log:
        "logs/phasefield_dmi_sweep/{system}/{sample}.log",
    benchmark:
        f"{RESULTS}/benchmarks/phasefield_dmi_sweep/{{system}}/{{sample}}.tsv"
    threads: rule_threads("phasefield_dmi_sweep", 1)
    resources:
        **rule_resources("phasefield_dmi_sweep", mem_mb=4000, runtime=120),
    conda:
        CONDA_ENVS["phasefield"]
    script:
        "../../scripts/phasefield_dmi_sweep.py"


if config["phasefield"]["dmi_sweep"]["values"]:
    SAMPLE_TARGETS.append("{results}/{system}/{sample}/phasefield_dmi_sweep.zarr")
