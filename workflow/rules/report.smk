# Stage 9: the cross-angle report (issue 8): one summary row per sample and overview figures.
# Inputs are every sample's analysis outputs plus whichever optional artifacts the included
# rules can make (or that exist), so the report runs with the stages present.

_REPORT_OPTIONAL = ("phasefield.zarr", "strain.zarr", "stem.zarr") + (
    ("image_inference.zarr",) if config["image_inference"]["enabled"] and config["stem"]["planview"]["enabled"] else ())
# the optional chiral-coupling sweep (issue 19) only when enabled; an existing one is read by the report anyway
_REPORT_OPTIONAL += ("phasefield_dmi_sweep.zarr",) if config["phasefield"]["dmi_sweep"]["values"] else ()


def report_inputs(wc):
    out = []
    for system, sample in all_samples():
        d = sample_dir(system, sample)
        out += [f"{d}/supercell.zarr", f"{d}/vortices.zarr", f"{d}/vortices.csv"]
        out += [f"{d}/{a}" for a in _REPORT_OPTIONAL if available(f"{d}/{a}")]
    return out


rule report:
    input:
        report_inputs,
    output:
        csv=report(f"{RESULTS}/report/summary.csv", caption="../report/report_table.rst", category="9 report"),
        overview=report(f"{RESULTS}/report/figures/report_overview.png", caption="../report/report.rst",
                        category="9 report"),
        claims=report(f"{RESULTS}/report/figures/report_claims.png", caption="../report/report_claims.rst",
                      category="9 report"),
    params:
        samples=lambda wc: [(s, n, sample_dir(s, n)) for s, n in all_samples()],
    log:
        "logs/report/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/report.tsv"
    threads: 1
    resources:
        **rule_resources("report"),
    conda:
        CONDA_ENVS["report"]
    script:
        "../../scripts/report.py"


GLOBAL_TARGETS.append(f"{RESULTS}/report/summary.csv")
