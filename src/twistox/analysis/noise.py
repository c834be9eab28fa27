"""Absolute noise floors of vector fields: the scale below which a direction (and so a winding) means nothing.

Significance of a defect is judged against an absolute σ in the field's own units, never against a
fraction of the field's own maximum (a rigid structure with |P| ~ 1e-8 C/m² must give no significant
defect, and a relaxed one must keep its cores, where |v| -> 0). Sources of σ, largest wins:

- the configured floor of the source (``analysis.noise_floor``, units in the key),
- an uncertainty the artifact provides (e.g. an MD block-average standard error of P),
- for images (DPC, experiment) an estimate of white noise from the field itself (Immerkær 1996).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Immerkær, "Fast noise variance estimation", Comput. Vis. Image Underst. 64, 300 (1996): the mask is the
# product of two 1D second differences, so fields linear in x or y (and sums f(x) + g(y)) give exactly 0.
_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])

# Config key of the floor per source; the unit is part of the key.
FLOOR_KEYS = {"dpc": "dpc_V", "phasefield": "phasefield_V", "experiment": "experiment_V",
              "atomistic": "atomistic_C_m2", "phasefield_P": "phasefield_P_C_m2"}


def image_noise_sigma(a: np.ndarray, periodic: bool) -> float:
    """Standard deviation (units of a) of additive white noise in a 2D map a[y, x] (Immerkær 1996).

    σ = sqrt(π/2) · mean |a * N| / 6 with N the 3 × 3 Laplacian-difference mask; non-finite
    points and (on open grids) the border are excluded. Smooth signal leaks in only at 4th order in
    the grid spacing, so a noiseless, well-sampled field gives σ ≈ 0.
    """
    a = np.asarray(a, float)
    ok = np.isfinite(a)
    r = ndimage.convolve(np.where(ok, a, 0.0), _IMMERKAER, mode="wrap" if periodic else "nearest")
    good = ndimage.minimum_filter(ok.astype(np.uint8), size=3, mode="wrap" if periodic else "constant", cval=0) > 0
    if not periodic:
        good[[0, -1], :] = False
        good[:, [0, -1]] = False
    if good.sum() < 4:
        return float("nan")
    return float(np.sqrt(np.pi / 2) * np.abs(r[good]).mean() / 6.0)


@dataclass
class Floor:
    """Noise floor σ of one field (field units) and where it came from."""

    sigma: float
    configured: float
    estimated: float
    method: str

    def as_dict(self) -> dict:
        return {"noise_sigma": self.sigma, "noise_configured": self.configured, "noise_estimated": self.estimated,
                "noise_method": self.method}


def field_floor(source: str, vx: np.ndarray, vy: np.ndarray, periodic: bool, floors: dict,
                uncertainty: np.ndarray | None = None) -> Floor:
    """σ of a field of `source` (dpc, phasefield, experiment, atomistic, phasefield_P).

    uncertainty: per-point standard error of the components provided by the artifact (same units);
    its rms is the estimate. Without one, image sources (dpc, experiment) get the Immerkær
    estimate per component (rms of the two); deterministic sources (phase field, atomistic
    without MD uncertainty) have only the configured floor.
    """
    key = FLOOR_KEYS.get(source)
    if key is None:
        raise ValueError(f"no noise floor for source {source!r}; known: {', '.join(FLOOR_KEYS)}")
    conf = float(floors[key])
    if uncertainty is not None and np.isfinite(uncertainty).any():
        est, method = float(np.sqrt(np.nanmean(np.asarray(uncertainty, float) ** 2))), "artifact uncertainty"
    elif source in ("dpc", "experiment"):
        sx, sy = image_noise_sigma(vx, periodic), image_noise_sigma(vy, periodic)
        est, method = float(np.sqrt(0.5 * (sx**2 + sy**2))), "image noise (Immerkaer)"
    else:
        est, method = float("nan"), "configured"
    if not np.isfinite(est) or est <= conf:
        return Floor(conf, conf, est, f"configured analysis.noise_floor.{key}" + (f" (>= {method})"
                                                                                  if np.isfinite(est) else ""))
    return Floor(est, conf, est, method)
