"""Post-processing of simulated images (paper's chain) and COM maps; finiteness guard.

Images are xarray (..., y, x) in fractions of the incident beam; lengths in Å.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from twistox.stem.multislice import to_numpy


def check_finite(da: xr.DataArray, what: str) -> xr.DataArray:
    """Refuse a simulated array with NaN/inf (a broken potential or probe), naming it."""
    bad = int(np.size(da.values) - np.count_nonzero(np.isfinite(da.values)))
    if bad:
        raise FloatingPointError(f"STEM {what}: {bad} non-finite values (NaN/inf) in the simulated data; "
                                 "check the input structure and the sampling settings")
    return da


def poisson_noise(image: np.ndarray, dose: float, pixel_area: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: counts ~ Poisson(I * dose * pixel_area), returned in the same units as I.

    ``image`` is a fraction of the incident beam, ``dose`` e/Å², ``pixel_area`` Å². The result has
    mean I and variance I / (dose * pixel_area).
    """
    n = dose * pixel_area
    if n <= 0:
        raise ValueError("dose * pixel_area must be > 0")
    return rng.poisson(np.clip(image, 0, None) * n) / n


def postprocess(image: xr.DataArray, *, interpolate: float | None, blur: float | None,
                tiles: int | tuple[int, int], dose: float | None,
                rng: np.random.Generator | None = None) -> xr.DataArray:
    """Paper's chain on a periodic image (y, x): Fourier interpolation to ``interpolate`` Å,
    Gaussian blur of ``blur`` Å (periodic), tiling ``tiles`` (int or (ny, nx)), then Poisson noise
    at ``dose`` e/Å². Each step is skipped when its argument is None / 0 (tiles 1).
    The input's last two dims are taken as (y, x); the output has dims (y, x)."""
    import abtem

    ty, tx = (tiles, tiles) if isinstance(tiles, int) else tiles
    ydim, xdim = image.dims[-2:]
    image = image.rename({ydim: "y", xdim: "x"})
    x, y = image["x"].values, image["y"].values
    dx = float(x[1] - x[0]) if len(x) > 1 else 1.0
    dy = float(y[1] - y[0]) if len(y) > 1 else 1.0
    img = abtem.Images(np.ascontiguousarray(image.values.T.astype(np.float64)), sampling=(dx, dy))
    if interpolate:
        img = img.interpolate(sampling=interpolate, method="fft")
    if blur:
        img = img.gaussian_filter(blur, boundary="periodic")
    if tx > 1 or ty > 1:
        img = img.tile((tx, ty))
    arr = to_numpy(img.compute().array if hasattr(img, "compute") else img.array)
    sx, sy = img.sampling
    if dose:
        arr = poisson_noise(arr, dose, sx * sy, rng if rng is not None else np.random.default_rng())
    return xr.DataArray(arr.T.astype(np.float32), dims=("y", "x"),
                        coords={"y": y[0] + np.arange(arr.shape[1]) * sy, "x": x[0] + np.arange(arr.shape[0]) * sx},
                        attrs={**image.attrs, "interpolate_sampling": interpolate or 0.0, "blur_sigma": blur or 0.0,
                               "tiles": [ty, tx], "dose": dose or 0.0})


def postprocess_config(cfg: dict, img: xr.DataArray, tiles, rng: np.random.Generator) -> xr.DataArray:
    """:func:`postprocess` with the ``stem.postprocess`` settings."""
    pp = cfg["postprocess"]
    return postprocess(img, interpolate=pp["interpolate_sampling"] or None, blur=pp["blur_sigma"] or None,
                       tiles=tiles, dose=pp["dose"], rng=rng)


def smooth_com(com: xr.DataArray, sigma: float | None) -> xr.DataArray:
    """Periodic Gaussian smoothing (σ in Å) of each COM component (xy, y, x)."""
    if not sigma:
        return com
    from scipy.ndimage import gaussian_filter

    dx = float(com["x"][1] - com["x"][0])
    dy = float(com["y"][1] - com["y"][0])
    out = com.copy(data=np.stack([gaussian_filter(c, (sigma / dy, sigma / dx), mode="wrap") for c in com.values]))
    out.attrs["smoothing_sigma"] = sigma
    return out
