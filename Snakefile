# twistox: twisted oxide membranes, from commensurate supercells to simulated STEM.
# snakemake --cores 2                        toy sweep (config/config.yaml)
# snakemake --configfile config/paper.yaml   the paper's angles and sizes
#
# A --configfile stands alone: defaults come from workflow/schemas/ only, never from the toy
# config/config.yaml, which is read only when no --configfile is given (`--config` overrides
# apply in both cases). `twistox config --configfile FILE` prints the resulting config.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.exceptions import WorkflowError
from twistox.checks import check_all
from twistox.core.config import ConfigError, resolve_samples

if not workflow.overwrite_configfiles:
    configfile: str(Path(workflow.basedir) / "config" / "config.yaml")

try:
    # schemas (defaults filled in) + every stage's semantic checks, for every sample, before any job;
    # GPAW & co. are looked for only where jobs share this interpreter (not in per-rule conda envs)
    check_all(config, software="conda" not in str(workflow.deployment_settings.deployment_method).lower())
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
include: "workflow/rules/image_inference.smk"
include: "workflow/rules/electronic.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_targets(),
    default_target: True


add_code_versions()


onstart:
    write_effective_config(config)
