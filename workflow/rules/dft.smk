# Stage 2: DFT labels (per system). Training configurations, then resumable frame-by-frame labelling.

rule dft_configs:
    output:
        configs=f"{RESULTS}/{{system}}/dft/configs.extxyz",
    params:
        # changed settings re-trigger the rule (snakemake's params rerun trigger)
        settings=lambda wc: {"configs": config["dft"]["configs"], "seed": config["seed"]},
    log:
        "logs/dft_configs/{system}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dft_configs/{{system}}.tsv"
    threads: rule_threads("dft_configs", 1)
    resources:
        **rule_resources("dft_configs"),
    conda:
        CONDA_ENVS["dft"]  # + chgnet when dft.configs.md > 0
    script:
        "../../scripts/dft_configs.py"


rule dft_label:
    input:
        configs=rules.dft_configs.output.configs,
    output:
        train=f"{RESULTS}/{{system}}/dft/train.extxyz",
        test=f"{RESULTS}/{{system}}/dft/test.extxyz",
        table=f"{RESULTS}/{{system}}/dft/labels.csv",
        figure=report(
            f"{RESULTS}/{{system}}/figures/dft_labels.png",
            caption="../report/dft.rst", category="2 dft", subcategory="{system}",
        ),
    params:
        # per-frame results survive a killed job (not a declared output): a rerun labels only the rest
        cache=lambda wc: f"{RESULTS}/{wc.system}/dft/cache",
        settings=lambda wc: {k: v for k, v in config["dft"].items()
                             if k not in ("configs", "transient_retries", "on_transient_failure",
                                          "label_seed", "label_seed_tolerance_A")},
    log:
        "logs/dft_label/{system}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dft_label/{{system}}.tsv"
    threads: rule_threads("dft_label", 2)  # frames labelled in parallel, one serial DFT process each
    resources:
        **rule_resources("dft_label", runtime=60, mem_mb=4000),
    conda:
        CONDA_ENVS["dft"]
    script:
        "../../scripts/dft_label.py"


SYSTEM_TARGETS.append("{results}/{system}/dft/train.extxyz")
