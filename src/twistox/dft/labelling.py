"""Deprecated import path (kept for one release): see :mod:`twistox.dft.calculators`,
:mod:`~twistox.dft.labeller`, :mod:`~twistox.dft.stage` and :mod:`~twistox.dft.figures`."""

from twistox.dft.calculators import (CALCULATORS, RY_EV, CalculatorUnavailable, calculator_record,  # noqa: F401
                                     check_calculator, gpaw_setups, kpoints, make_calculator)
from twistox.dft.figures import summary_figure  # noqa: F401
from twistox.dft.labeller import (Labeller, classify_failure, collect, frame_key, label_one,  # noqa: F401
                                  name_of)
