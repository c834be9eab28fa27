"""Rule report: summary table across all samples (results/report/summary.csv) and the report figures."""

from twistox.core.plots import save
from twistox.core.runner import stage_script
from twistox.report import stage

sm = snakemake  # noqa: F821
with stage_script(sm, "report") as run:
    df, figs = stage.run(sm.params.samples)
    df.to_csv(sm.output.csv, index=False)
    for _, r in df.iterrows():
        run.log.info("%s %s: theta %.2f, Sigma %d, lambda %.2f Å, network period %.2f Å, sites %s; vortices/cell "
                     "dpc %s phasefield %s atomistic %s", r["system"], r["sample"], r["theta_deg"], r["sigma"],
                     r["moire_period_A"], r["network_period_A"], r["sites_source"], r["dpc_vortices_per_cell"],
                     r["phasefield_vortices_per_cell"], r["atomistic_vortices_per_cell"])
    for name, fig in figs.items():
        save(fig, sm.output[name], dpi=sm.config["report"]["dpi"])
    run.log.info("wrote %s (%d samples, %d columns)", sm.output.csv, len(df), df.shape[1])
