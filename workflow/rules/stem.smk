# Stage: STEM / 4D-STEM image simulation with abTEM (plan view, cross sections, COM maps).
# Three independent simulation rules (each checkpointed per sub-simulation), merged by `stem`.

_STEM_PARTS = {"planview": "stem_haadf", "cross_section": "stem_cross_section", "fourd": "stem_4d"}


def stem_structure_input(wc):
    """relaxed.zarr when a relaxed structure is simulated, else the rigid supercell store."""
    name = "relaxed.zarr" if "relaxed" in config["stem"]["structures"] else "supercell.zarr"
    return f"{sample_dir(wc.system, wc.sample)}/{name}"


def stem_enabled_parts():
    return [p for p in _STEM_PARTS if config["stem"][p]["enabled"]]


def stem_figures():
    parts = stem_enabled_parts()
    names = (["haadf", "laadf"] if "planview" in parts else []) + \
        (["cross_sections"] if "cross_section" in parts else []) + (["com", "com_modes"] if "fourd" in parts else [])
    return {n: report(f"{RESULTS}/{{system}}/{{sample}}/figures/stem_{n}.png", caption="../report/stem.rst",
                      category="6 stem", subcategory="{system} {sample}") for n in names}


for _part, _rule in _STEM_PARTS.items():

    rule:
        name:
            _rule
        input:
            structure=stem_structure_input,
        output:
            zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/stem/{_part}.zarr"),
        params:
            part=_part,
            checkpoints=lambda wc, _part=_part: f"{sample_dir(wc.system, wc.sample)}/stem/.checkpoints/{_part}",
        log:
            f"logs/{_rule}/{{system}}/{{sample}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/{_rule}/{{system}}/{{sample}}.tsv"
        threads: rule_threads(_rule, 1)
        resources:
            **rule_resources(_rule),
        conda:
            CONDA_ENVS["stem"]
        script:
            "../../scripts/stem_part.py"


rule stem:
    input:
        parts=lambda wc: [f"{sample_dir(wc.system, wc.sample)}/stem/{p}.zarr" for p in stem_enabled_parts()],
    output:
        zarr=directory(f"{RESULTS}/{{system}}/{{sample}}/stem.zarr"),
        **stem_figures(),
    log:
        "logs/stem/{system}/{sample}.log",
    benchmark:
        f"{RESULTS}/benchmarks/stem/{{system}}/{{sample}}.tsv"
    threads: 1
    resources:
        **rule_resources("stem"),
    conda:
        CONDA_ENVS["stem"]
    script:
        "../../scripts/stem.py"


SAMPLE_TARGETS.append("{results}/{system}/{sample}/stem.zarr")
