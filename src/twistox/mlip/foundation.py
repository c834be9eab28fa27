"""Fine-tuning the committee from a foundation MACE model (``mlip.foundation_model``).

With a path set, every committee member starts from the foundation model's weights (mace-torch
0.3.16 ``run_train --foundation_model PATH``): the architecture (r_max, channels, L, interactions,
correlation, radial basis) is taken from that model, so ``mlip.num_channels``, ``max_L``, ``r_max``,
... are ignored; the elements are those of the training data (``--foundation_model_elements`` off).
Multi-head replay fine-tuning is off (``--multiheads_finetuning False``): it needs the foundation's
own training data (``--pt_train_file``, pass it through ``mlip.extra_args``). Atomic reference
energies stay ``--E0s average`` of the DFT labels, whose reference (GPAW LDA+U) differs from the
foundation's.

A ``.model`` file is a pickled torch module: loading it runs code from that file. Use only files
from a source you trust (e.g. the MACE-MP / MACE-OMAT releases, or a model this pipeline trained).
Nothing is downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path

from twistox.core.config import ConfigError

KEY = "mlip.foundation_model"


def check_foundation_model(path: str | Path | None) -> Path | None:
    """The foundation model path (None when unset); ConfigError when it is not an existing file."""
    if path in (None, ""):
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{KEY}: {str(path)!r} is not an existing file; allowed: null (train from scratch) or the "
                          "path of a MACE .model file (a pickled module: it runs code when loaded; use trusted "
                          "files only). Download MACE-MP/OMAT models yourself; nothing is downloaded at run time")
    return p.resolve()


def foundation_args(path: str | Path | None) -> list[str]:
    """Extra ``mace_run_train`` arguments that fine-tune from ``path`` ([] when unset)."""
    p = check_foundation_model(path)
    if p is None:
        return []
    return ["--foundation_model", str(p), "--multiheads_finetuning", "False"]
