"""Deprecated import path (kept for one release): the relax stage now lives in
:mod:`twistox.relax.evaluators`, :mod:`~twistox.relax.fire`, :mod:`~twistox.relax.md`,
:mod:`~twistox.relax.scan`, :mod:`~twistox.relax.stage` and :mod:`~twistox.relax.figures`."""

from twistox.core.checkpoint import Checkpoint  # noqa: F401
from twistox.core.device import tune_malloc  # noqa: F401
from twistox.core.md import AseEvaluator, Evaluator, kinetic_temperature  # noqa: F401
from twistox.relax.evaluators import MaceBatchEvaluator, make_evaluator  # noqa: F401
from twistox.relax.figures import plot_md, plot_translation_energy  # noqa: F401
from twistox.relax.fire import FireResult, fire_relax  # noqa: F401
from twistox.relax.md import MDResult, langevin_md  # noqa: F401
from twistox.relax.scan import minimum_image_displacement, translate_top_layer, translation_grid  # noqa: F401
from twistox.relax.stage import RelaxOutcome, check_settings, mlip_calculator, relax_bilayer, relaxed_dataset  # noqa: F401
