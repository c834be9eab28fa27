# twistox: twisted oxide membranes, from commensurate supercells to simulated STEM.
# snakemake --cores 2                        toy sweep (config/config.yaml)
# snakemake --configfile config/paper.yaml   the paper's angles and sizes
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.exceptions import WorkflowError
from twistox.core.config import ConfigError, validate_config, resolve_samples

configfile: str(Path(workflow.basedir) / "config" / "config.yaml")

try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None

SAMPLES = resolve_samples(config)   # {system: {sample: CSL}}
RESULTS = config["results"]

include: "workflow/rules/common.smk"
include: "workflow/rules/supercell.smk"
include: "workflow/rules/dft.smk"
include: "workflow/rules/mlip.smk"
include: "workflow/rules/relax.smk"
include: "workflow/rules/strain.smk"
include: "workflow/rules/phasefield.smk"
include: "workflow/rules/stem.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_targets(),
    default_target: True
