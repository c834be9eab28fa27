# Stage 3: MACE committee (mace-torch) and active learning (per system).

COMMITTEE = range(int(config["mlip"]["committee_size"]))


rule mlip_train:
    input:
        train=rules.dft_label.output.train,
        # mlip.foundation_model (a MACE .model to fine-tune from): a changed file retrains
        foundation=lambda wc: [config["mlip"]["foundation_model"]] if config["mlip"].get("foundation_model") else [],
    output:
        workdir=directory(f"{RESULTS}/{{system}}/mlip/iter0"),
    params:
        settings=lambda wc: {k: v for k, v in config["mlip"].items() if k not in ("active_learning", "load_mode")},
    log:
        "logs/mlip_train/{system}.log",
    benchmark:
        f"{RESULTS}/benchmarks/mlip_train/{{system}}.tsv"
    threads: rule_threads("mlip_train", 2)
    resources:
        **rule_resources("mlip_train", runtime=60, mem_mb=4000),
    conda:
        CONDA_ENVS["mlip"]
    script:
        "../../scripts/mlip_train.py"


rule active_learning:
    input:
        initial=rules.mlip_train.output.workdir,
        train=rules.dft_label.output.train,
        test=rules.dft_label.output.test,
    output:
        models=[f"{RESULTS}/{{system}}/mlip/model_{k}.model" for k in COMMITTEE],
        metrics=f"{RESULTS}/{{system}}/mlip/metrics.json",
        al_frames=f"{RESULTS}/{{system}}/mlip/al_frames.extxyz",
        parity=report(
            f"{RESULTS}/{{system}}/mlip/parity.png",
            caption="../report/mlip.rst", category="3 mlip", subcategory="{system}",
        ),
        uncertainty=report(
            f"{RESULTS}/{{system}}/mlip/uncertainty.png",
            caption="../report/mlip.rst", category="3 mlip", subcategory="{system}",
        ),
        fig_parity=f"{RESULTS}/{{system}}/figures/mlip_parity.png",
        fig_uncertainty=f"{RESULTS}/{{system}}/figures/mlip_uncertainty.png",
    params:
        workdir=lambda wc: f"{RESULTS}/{wc.system}/mlip/al",
        cache=lambda wc: f"{RESULTS}/{wc.system}/mlip/al_cache",
        settings=lambda wc: config["mlip"],
    log:
        "logs/active_learning/{system}.log",
    benchmark:
        f"{RESULTS}/benchmarks/active_learning/{{system}}.tsv"
    threads: rule_threads("active_learning", 2)
    resources:
        **rule_resources("active_learning", runtime=120, mem_mb=4000),
    conda:
        CONDA_ENVS["mlip"]  # labels AL frames too: needs the dft env's GPAW as well
    script:
        "../../scripts/mlip_active_learning.py"


SYSTEM_TARGETS.append("{results}/{system}/mlip/metrics.json")
