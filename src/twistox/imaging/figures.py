"""Figure of the image_inference stage: image, registry map, local twist, GPA fields."""

from __future__ import annotations

import json

import numpy as np

from twistox.core.plots import plt


def _extent(ds):
    x, y = ds["x"].values, ds["y"].values
    dx = (x[1] - x[0]) if len(x) > 1 else 1.0
    dy = (y[1] - y[0]) if len(y) > 1 else 1.0
    return [x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2]  # y down, as the image rows


def slip_rgb(slip: np.ndarray, a: float) -> np.ndarray:
    """HSV colouring of a slip map (2, ny, nx): hue = direction of D, value = |D| / (a/√2)."""
    from matplotlib.colors import hsv_to_rgb

    ang = (np.arctan2(slip[1], slip[0]) / (2 * np.pi)) % 1.0
    mag = np.clip(np.hypot(slip[0], slip[1]) / (a / np.sqrt(2)), 0, 1)
    return hsv_to_rgb(np.stack([ang, np.ones_like(ang), mag], axis=-1))


def overview(ds, image: np.ndarray, sampling: float, title: str = ""):
    """2 x 3 panels; image y axis points down (row direction), as stored."""
    fig, ax = plt.subplots(2, 3, figsize=(13, 8.2))
    ny, nx = image.shape
    ax[0, 0].imshow(image, cmap="gray", extent=[0, nx * sampling, ny * sampling, 0])
    e = _extent(ds)
    ax[0, 0].plot([e[0], e[1], e[1], e[0], e[0]], [e[3], e[3], e[2], e[2], e[3]], "y--", lw=0.8)
    ax[0, 0].set_title(f"image; θ = {ds.attrs['theta_deg']:.3f} ± {ds.attrs['theta_uncertainty_deg']:.3f}°", fontsize=10)
    a = float(ds.attrs["a"])
    ax[0, 1].imshow(slip_rgb(ds["slip"].values, a), extent=e)
    met = json.loads(ds.attrs["regressor_metrics"])["validation"]
    ax[0, 1].set_title(f"registry D (hue = direction); CNN val. ΔD {met['mean_A']:.3f} Å", fontsize=10)
    lt = ds["local_twist"].values
    im = ax[0, 2].imshow(lt, cmap="coolwarm", extent=e)
    fig.colorbar(im, ax=ax[0, 2], label="deg")
    ttl = f"local twist (median {np.nanmedian(lt):.2f}°)"
    if "local_twist_correlation" in ds.attrs:
        ttl += f"; r = {ds.attrs['local_twist_correlation']:.2f} vs atomistic"
    ax[0, 2].set_title(ttl, fontsize=10)
    panels = [(ds["exy"].values, "GPA mean lattice ε_xy (HAADF strain)"),
              (np.degrees(ds["rotation"].values), "GPA mean lattice rotation (deg)"),
              (ds["layer_exy"].sel(layer=0).values, "GPA bottom layer ε_xy (crystal frame)")]
    for axi, (f, t) in zip(ax[1], panels):
        lim = (np.nanpercentile(np.abs(f), 99) if np.isfinite(f).any() else 1.0) or 1.0
        im = axi.imshow(f, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=e)
        fig.colorbar(im, ax=axi)
        axi.set_title(t, fontsize=10)
    for axi in ax.flat:
        axi.set_xlabel("x (Å)")
        axi.set_ylabel("y (Å)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
