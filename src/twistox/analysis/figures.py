"""Figures of the analysis stage: colour-wheel maps with defects and network sites; periodicity."""

from __future__ import annotations

import numpy as np
import xarray as xr

from twistox.analysis.nodes import Sites
from twistox.analysis.results import FieldResult

_SITE_MARK = {"node": ("+", 10), "wall_midpoint": ("x", 6), "domain": ("1", 8)}


def colour_wheel(vx: np.ndarray, vy: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """RGB image [y, x, 3]: hue = direction of v (0 along +x, counter-clockwise), value = |v| / vmax."""
    from matplotlib.colors import hsv_to_rgb

    mag = np.nan_to_num(np.hypot(vx, vy))
    vmax = vmax or (np.percentile(mag, 99.5) if mag.max() > 0 else 1.0)
    hue = (np.arctan2(np.nan_to_num(vy), np.nan_to_num(vx)) / (2 * np.pi)) % 1.0
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), np.clip(mag / vmax, 0, 1)], axis=-1))


_MARK = {"ccw": ("o", "white"), "cw": ("o", "lime"), "source": ("^", "white"), "sink": ("v", "white"),
         "vortex": ("o", "grey"), "antivortex": ("X", "magenta"), "higher-order": ("*", "red")}


def fields_figure(results: list[FieldResult], sites: Sites, tiles: int = 2, title: str = ""):
    """Colour-wheel map of every field with its defects (marker = kind, as in the paper's Fig. 4b,f-i),
    arrows of the field and the network sites (+ node, x wall midpoint, . domain); periodic fields tiled
    tiles x tiles. Defects below the noise floor are drawn small and grey."""
    import matplotlib.pyplot as plt

    n = max(1, len(results))
    fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * n + 1.6, 4.6),
                             gridspec_kw={"width_ratios": [1] * n + [0.35]})
    axes = np.atleast_1d(axes)
    for ax, r in zip(axes[:n], results):
        f = r.field
        t = tiles if f.periodic else 1
        vx, vy = np.tile(f.vx, (t, t)), np.tile(f.vy, (t, t))
        dx, dy = f.x[1] - f.x[0], f.y[1] - f.y[0]
        x0, y0 = f.x[0] - dx / 2, f.y[0] - dy / 2
        lx, ly = f.x.size * dx, f.y.size * dy
        ax.imshow(colour_wheel(vx, vy), origin="lower", extent=[x0, x0 + t * lx, y0, y0 + t * ly],
                  interpolation="nearest")
        step = max(1, int(np.ceil(max(vx.shape) / 24)))
        X, Y = np.meshgrid(x0 + (np.arange(vx.shape[1]) + 0.5) * dx, y0 + (np.arange(vx.shape[0]) + 0.5) * dy)
        mag = np.hypot(vx, vy)
        scale = np.nanmax(mag) or 1.0
        ax.quiver(X[::step, ::step], Y[::step, ::step], (vx / scale)[::step, ::step], (vy / scale)[::step, ::step],
                  color="k", alpha=0.5, scale=30, width=0.004)
        # dense networks (many defects per drawn area): shrink the markers so neighbours stay apart
        shrink = float(np.clip(np.sqrt(32.0 / max(1, len(r.defects) * t * t)), 0.3, 1.0))
        if f.source != "experiment":
            # sites are L-periodic: draw every image inside the (tiled) field
            reps = int(np.ceil(t * max(lx, ly) / sites.L)) + 1
            for cls, (m, ms) in _SITE_MARK.items():
                nd = sites.of(cls)
                if not len(nd):
                    continue
                img = np.array([p + (i * sites.L, j * sites.L) for i in range(-1, reps) for j in range(-1, reps)
                                for p in nd])
                ax.plot(img[:, 0], img[:, 1], m, color="w", ms=ms * shrink, mew=1.5 * shrink, ls="none")
        for i in range(t):
            for j in range(t):
                for d in r.defects:
                    m, c = _MARK.get(d.kind, ("o", "grey"))
                    if not d.significant:
                        ax.plot(d.x + i * lx, d.y + j * ly, ".", color="0.6", ms=4)
                        continue
                    ax.plot(d.x + i * lx, d.y + j * ly, m, mfc="none" if m == "o" else c, mec=c, ms=11 * shrink,
                            mew=2 * shrink)
        if f.periodic and t > 1:
            ax.plot([x0, x0 + lx, x0 + lx, x0, x0], [y0, y0, y0 + ly, y0 + ly, y0], "w--", lw=1)
        s = r.summary(0.0)
        ax.set_title(f"{f.name} ({f.units}), σ = {s['noise_sigma']:.2g}\n{s['n_vortices']} vortices "
                     f"(CW {s['n_cw']}, CCW {s['n_ccw']}), {s['n_antivortices']} antivortices"
                     + (f", {s['n_insignificant']} below {s['noise_sigma']:.2g}·snr" if s["n_insignificant"] else ""),
                     fontsize=8)
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
        ax.set_xlim(x0, x0 + t * lx)
        ax.set_ylim(y0, y0 + t * ly)
    if not results:
        axes[0].text(0.5, 0.5, "no field source available", ha="center", va="center", transform=axes[0].transAxes)
    # colour wheel key + marker legend
    key = axes[-1]
    g = np.linspace(-1, 1, 101)
    KX, KY = np.meshgrid(g, g)
    wheel = colour_wheel(KX, KY, 1.0)
    wheel[np.hypot(KX, KY) > 1] = 1.0
    key.imshow(wheel, origin="lower", extent=[-1, 1, -1, 1])
    key.set_title("direction", fontsize=8)
    key.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker=m, ls="none", mec=c, mfc="none" if m == "o" else c, color=c, label=k, ms=8, mew=2)
               for k, (m, c) in _MARK.items() if k != "higher-order"]
    for cls, (m, ms) in _SITE_MARK.items():
        handles.append(Line2D([], [], marker=m, ls="none", color="w", label=cls.replace("_", " "), ms=ms, mew=1.5))
    handles.append(Line2D([], [], marker=".", ls="none", color="0.6", label="below noise floor", ms=4))
    leg = key.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.05), fontsize=7, frameon=True,
                     facecolor="0.35", labelcolor="white")
    leg.get_frame().set_edgecolor("none")
    title = (title + "\n" if title else "") + f"sites from {sites.source}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def periodicity_figure(results: list[FieldResult], spacings: dict, stem: xr.Dataset | None, sites: Sites,
                       period, period_source: str, min_period: float):
    """Left: cross-section profiles with detected dark lines (if stem.zarr has cross sections).
    Right: azimuthally averaged power of each field magnitude vs spatial period, moiré λ marked."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    from scipy import ndimage

    drawn = False
    for key, sp in spacings.items():
        da = stem[f"cross_section_{key}"]
        spatial = [d for d in da.dims if d in ("x", "y", "z", "s", "lateral")] or list(da.dims[-2:])
        da = da.isel({d: 0 for d in da.dims if d not in spatial})
        lat = [d for d in da.dims if d != "z"][-1]
        c = da[lat].values if lat in da.coords else np.arange(da.sizes[lat], dtype=float)
        img = np.asarray(da.transpose(..., lat).values, float).reshape(-1, da.sizes[lat])
        prof = ndimage.gaussian_filter1d(img.mean(0), min_period / 4 / (c[1] - c[0]), mode="wrap")
        a1.plot(c - c[0], prof / prof.max(), label=f"[{key}] d = {sp.mean:.2f} ± {sp.std:.2f} Å (n={sp.n})")
        for p in sp.positions:
            a1.axvline(p, color=a1.lines[-1].get_color(), ls=":", lw=1)
        drawn = True
    if drawn:
        a1.legend(fontsize=7)
        a1.set_xlabel("lateral position (Å)")
        a1.set_ylabel("low-passed intensity (norm.)")
        a1.set_title("cross-section dark lines", fontsize=9)
    else:
        a1.text(0.5, 0.5, "no cross-section images\n(stem.zarr absent or without lines)", ha="center", va="center",
                transform=a1.transAxes)
        a1.set_axis_off()
    for r in results:
        m = np.nan_to_num(r.field.magnitude)             # non-finite points: counted in the summary
        m = m - m.mean()
        P = np.abs(np.fft.fft2(m)) ** 2
        ky = np.fft.fftfreq(m.shape[0], r.field.y[1] - r.field.y[0])
        kx = np.fft.fftfreq(m.shape[1], r.field.x[1] - r.field.x[0])
        K = np.hypot(*np.meshgrid(kx, ky))
        kk = np.unique(np.round(K[K > 0], 6))
        pw = np.array([P[np.isclose(K, k, atol=1e-6)].mean() for k in kk])
        keep = pw > 1e-4 * pw.max()           # drop round-off shells
        a2.semilogy(1 / kk[keep], pw[keep] / pw.max(), "o", ms=5, mfc="none", label=r.field.name)
    a2.axvline(sites.moire_period, color="k", ls="--", lw=1, label=f"λ = {sites.moire_period:.2f} Å")
    if period is not None:
        a2.axvline(period.value, color="r", ls=":", lw=1.5, label=f"network {period.value:.2f} Å ({period_source})")
    a2.set_xlabel("spatial period (Å)")
    a2.set_ylabel("power of |field| per |G| shell (norm.)")
    a2.set_ylim(5e-5, 2)
    a2.set_title("periodicity of the fields", fontsize=9)
    a2.legend(fontsize=7)
    fig.tight_layout()
    return fig
