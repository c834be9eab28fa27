"""Rule report: summary table across all samples (results/report/summary.csv) and overview figure."""

import time

from twistox.core.plots import save
from twistox.report.summary import overview_figure, summary_table
from twistox.core.runtime import setup_logging

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
df = summary_table(sm.params.samples)
df.to_csv(sm.output.csv, index=False)
for _, r in df.iterrows():
    log.info("%s %s: theta %.2f (requested %.2f), Sigma %d, lambda %.2f Å, network period %.2f Å, "
             "vortices/cell dpc %s phasefield %s atomistic %s", r["system"], r["sample"], r["theta_deg"],
             r["theta_requested_deg"], r["sigma"], r["moire_period_A"], r["network_period_A"],
             r["dpc_vortices_per_cell"], r["phasefield_vortices_per_cell"], r["atomistic_vortices_per_cell"])
save(overview_figure(df), sm.output.overview, dpi=sm.config["report"]["dpi"])
log.info("wrote %s (%d samples, %d columns) in %.2f s", sm.output.csv, len(df), df.shape[1], time.time() - t0)
