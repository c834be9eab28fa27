"""Measured HAADF images in: the project's reader (twistox.analysis.readers.read_image) when present,
else .npy / .npz / .tif(f) here; the pixel size comes from the file's calibration or the config."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORMATS_HERE = (".npy", ".npz", ".tif", ".tiff")


class ImageError(ValueError):
    """A measured image that cannot be analysed; the message names the file / config key and the problem."""


def _read_here(path: Path, key: str | None) -> tuple[np.ndarray, float | None]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False), None
    if suffix == ".npz":
        z = np.load(path, allow_pickle=False)
        names = [k for k in z.files if z[k].ndim == 2]
        if key is not None:
            if key not in z.files:
                raise ImageError(f"{path}: key {key!r} not found; available: {', '.join(z.files)}")
            return z[key], None
        if not names:
            raise ImageError(f"{path}: no 2D array inside; available: {', '.join(z.files) or 'none'}")
        return z[max(names, key=lambda k: z[k].size)], None
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im, dtype=float), None


def read_haadf(path, pixel_size: float | None = None, key: str | None = None,
               config_key: str = "analysis.experiment") -> tuple[np.ndarray, float]:
    """(image [y, x] float, pixel size Å). Raises ImageError: unreadable, not 2D, non-finite, constant,
    too small, or uncalibrated (no calibration in the file and no pixel_size given)."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"config key '{config_key}.path': file not found: {path}")
    cal = None
    try:
        from twistox.analysis import readers  # the project's reader: rosettasciio formats with calibrations

        if path.suffix.lower() in readers.FORMATS:
            img, cal = readers.read_image(path, key)
        elif path.suffix.lower() in FORMATS_HERE:
            img, cal = _read_here(path, key)
        else:
            raise ImageError(f"{path}: unknown format {path.suffix!r}; allowed: "
                             f"{', '.join(sorted(set(readers.FORMATS) | set(FORMATS_HERE)))}")
    except ImportError:
        if path.suffix.lower() not in FORMATS_HERE:
            raise ImageError(f"{path}: unknown format {path.suffix!r}; allowed: {', '.join(FORMATS_HERE)}") from None
        img, cal = _read_here(path, key)
    except ImageError:
        raise
    except ValueError as exc:  # the project's DataError
        raise ImageError(str(exc)) from None
    except Exception as exc:
        raise ImageError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    img = np.asarray(img, dtype=float)
    if img.ndim == 3 and img.shape[-1] in (3, 4):  # an RGB(A) export: use the luminance
        img = img[..., :3].mean(axis=-1)
    if img.ndim != 2:
        raise ImageError(f"{path}: a HAADF image must be 2D (y, x); got shape {img.shape}")
    if min(img.shape) < 64:
        raise ImageError(f"{path}: image {img.shape} too small; need at least 64 x 64 pixels")
    if not np.isfinite(img).all():
        raise ImageError(f"{path}: {int((~np.isfinite(img)).sum())} non-finite pixels")
    if np.ptp(img) == 0:
        raise ImageError(f"{path}: constant image")
    if cal is not None and pixel_size is not None and not np.isclose(cal, pixel_size, rtol=1e-3):
        raise ImageError(f"{path}: the file's calibration {cal:.5g} Å/px differs from config key "
                         f"'{config_key}.pixel_size' = {pixel_size}; remove one")
    ps = cal if cal is not None else pixel_size
    if ps is None:
        raise ImageError(f"{path}: the file has no pixel calibration; set config key '{config_key}.pixel_size' (Å)")
    if not ps > 0:
        raise ImageError(f"config key '{config_key}.pixel_size': {ps} must be > 0 Å")
    return img, float(ps)
