"""Deprecated import path (kept for one release): see :mod:`twistox.mlip.calculator`,
:mod:`~twistox.mlip.training`, :mod:`~twistox.mlip.metrics`, :mod:`~twistox.mlip.active_learning`,
:mod:`~twistox.mlip.figures` and :mod:`~twistox.mlip.stage`."""

from twistox.mlip.active_learning import ALSettings, active_learning, committee_md, mean_descriptor, select_diverse  # noqa: F401
from twistox.mlip.calculator import MODES, load_calculator  # noqa: F401
from twistox.mlip.figures import parity_figure, uncertainty_figure  # noqa: F401
from twistox.mlip.metrics import (error_metrics, evaluate_committee, predict, spearman,  # noqa: F401
                                  uncertainty_vs_error, write_metrics)
from twistox.mlip.training import TrainSettings, copy_models, epoch_times, mace_args, train_committee  # noqa: F401
