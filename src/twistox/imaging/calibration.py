"""Calibrating the incoherent patch model's contrast against a multislice (abTEM) image of a KNOWN structure.

The fast generator (twistox.imaging.patches) draws the Z exponent, B- and X-column weights, blur and the
top/bottom layer intensity ratio from ranges. Channelling makes the real contrast differ from any single
Z^n law, so the regressor trained on default ranges sees a slightly different world than abTEM's. Here
those five parameters are fitted by nonlinear least squares to one simulated image of a bilayer whose
layer bases and translations are known (e.g. a rigid CSL cell at ANOTHER twist than the sample's), with
the image's scale and background solved in closed form at every step. `contrast_ranges` turns the fit
into narrower augmentation ranges centred on it (the fit transfers between twists only approximately,
so some spread is kept).
Conventions: image[y, x], y = row × sampling (Å), origin at pixel (0, 0); bases' columns are a-vectors (Å).
"""

from __future__ import annotations

import numpy as np

from twistox.imaging.patches import ImagingModel, render

#: fitted parameters, their start values and bounds
PARAMS = ("exponent", "x_weight", "b_weight", "blur", "layer_ratio")
_X0 = np.array([1.7, 1.0, 1.0, 0.5, 1.0])
_LO = np.array([1.0, 0.0, 0.2, 0.05, 0.2])
_HI = np.array([2.5, 3.0, 3.0, 1.5, 5.0])


def _design(model: ImagingModel, coords: np.ndarray, bases: np.ndarray, shifts: np.ndarray, p: np.ndarray) -> np.ndarray:
    e, xw, bw, blur, ratio = p
    return render(model, coords[None], bases[None], shifts[None], exponent=e, blur=blur,
                  layer_weight=np.array([[1.0, ratio]]), x_weight=xw, b_weight=bw)[0]


def fit_contrast(image: np.ndarray, sampling: float, model: ImagingModel, bases: np.ndarray, shifts: np.ndarray,
                 *, max_pixels: int = 20000, seed: int = 0) -> dict:
    """Least-squares contrast parameters of ``model`` for ``image`` of a known bilayer.

    bases: (2 layers, 2, 2) a-vectors as columns (Å), layer 0 = bottom; shifts: (2, 2) position (Å) of an A
    column of each layer in the image frame. Returns {param: value} for PARAMS plus ``correlation`` (fitted
    model vs image), ``correlation_default`` (start values) and ``rms_residual`` (fraction of the image std).
    """
    from scipy.optimize import least_squares

    img = np.asarray(image, float)
    ny, nx = img.shape
    rng = np.random.default_rng(seed)
    idx = rng.choice(ny * nx, size=min(max_pixels, ny * nx), replace=False)
    rows, cols = np.divmod(idx, nx)
    coords = np.column_stack([cols * sampling, rows * sampling]).astype(float)
    target = img.ravel()[idx]
    target = (target - target.mean()) / target.std()
    bases = np.asarray(bases, float)
    shifts = np.asarray(shifts, float)

    def resid(p):
        m = _design(model, coords, bases, shifts, p)
        m = m - m.mean()
        scale = (m @ target) / max(m @ m, 1e-30)  # image scale and background: closed form
        return scale * m - target

    def corr(p):
        return float(np.corrcoef(_design(model, coords, bases, shifts, p), target)[0, 1])

    fit = least_squares(resid, _X0, bounds=(_LO, _HI), x_scale=np.array([0.2, 0.3, 0.3, 0.1, 0.3]),
                        diff_step=1e-3, max_nfev=200)
    out = {k: float(v) for k, v in zip(PARAMS, fit.x)}
    out.update(correlation=corr(fit.x), correlation_default=corr(_X0),
               rms_residual=float(np.sqrt(np.mean(fit.fun**2))), n_pixels=int(len(idx)))
    return out


def contrast_ranges(fit: dict, rel_spread: float = 0.15) -> dict:
    """PatchSpec augmentation ranges centred on a fit: each parameter within ± rel_spread (relative),
    the Z exponent within ± rel_spread / 2 (it enters as a power)."""
    out = {}
    for k in PARAMS:
        v = float(fit[k])
        s = rel_spread / 2 if k == "exponent" else rel_spread
        out[k] = (v * (1 - s), v * (1 + s))
    return out
