"""Figures of the STEM stage: plan-view focal series, cross sections, COM colour-wheel maps."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.colors import hsv_to_rgb

from twistox.core.plots import plt


def _variants(ds: xr.Dataset, base: str) -> list[tuple[str, xr.DataArray]]:
    """[(label, DataArray)] for ``base`` and its structure-suffixed variants present in ds."""
    names = [(base, "primary")] + [(f"{base}_{s}", s) for s in ("rigid", "relaxed")]
    primary = ds.attrs.get("structures", ["?"])[0] if ds.attrs.get("structures") else "primary"
    return [(primary if lab == "primary" else lab, ds[n]) for n, lab in names if n in ds]


def focal_series(ds: xr.Dataset, base: str, title: str, interface_lines: float | None = None):
    """Images of ``base`` (defocus, y_image, x_image): columns = foci, rows = structures."""
    rows = _variants(ds, base)
    nf = rows[0][1].sizes["defocus"]
    fig, axes = plt.subplots(len(rows), nf, figsize=(3.6 * nf, 3.5 * len(rows)), squeeze=False)
    for r, (lab, da) in enumerate(rows):
        for f in range(nf):
            im = da.isel(defocus=f)
            ax = axes[r, f]
            x, y = im["x_image"].values, im["y_image"].values
            h = ax.imshow(im.values, origin="lower", cmap="gray",
                          extent=[x[0], x[-1] + x[1] - x[0], y[0], y[-1] + y[1] - y[0]])
            fig.colorbar(h, ax=ax, fraction=0.046, pad=0.02)
            L = interface_lines
            if L:
                for k in range(1, int(round((x[-1] - x[0]) / L)) + 1):
                    ax.axvline(x[0] + k * L, color="tab:red", lw=0.6, ls=":")
                    ax.axhline(y[0] + k * L, color="tab:red", lw=0.6, ls=":")
            lbl = str(im["focus_label"].values)
            ax.set_title(f"{lab}: focus {lbl} ({float(im['focus_depth']) / 10:.1f} nm deep)", fontsize=9)
            ax.set_xlabel("x (Å)")
            ax.set_ylabel("y (Å)")
    fig.suptitle(title + (" — red dotted: supercell" if interface_lines else ""), fontsize=10)
    fig.tight_layout()
    return fig


def cross_sections(ds: xr.Dataset, views: list[str], moire_period: float | None = None):
    """Cross sections (rows = structures, columns = views) with expected line spacings marked."""
    cols = [v for v in views if f"cross_section_{v}" in ds]
    rows = _variants(ds, f"cross_section_{cols[0]}")
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(6.0 * len(cols), 3.2 * len(rows)), squeeze=False)
    for c, v in enumerate(cols):
        for r, (lab, _) in enumerate(_variants(ds, f"cross_section_{v}")):
            da = _variants(ds, f"cross_section_{v}")[r][1]
            s, z = da[f"s_{v}"].values, da[f"z_{v}"].values
            ax = axes[r, c]
            ax.imshow(da.values, origin="lower", cmap="gray", aspect="equal",
                      extent=[s[0], s[-1] + s[1] - s[0], z[0], z[-1] + z[1] - z[0]])
            title = f"{lab}: beam ∥ mean [{v}]"
            if moire_period:
                lam = moire_period if v == "100" else moire_period / np.sqrt(2)
                title += f"; expected line spacing {lam / 10:.2f} nm ({'λ' if v == '100' else 'λ/√2'})"
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("lateral position (Å)")
            ax.set_ylabel("z (Å)")
            if "interface_z" in ds.attrs:
                ax.axhline(ds.attrs["interface_z"], color="tab:orange", lw=0.8, ls="--")
    fig.tight_layout()
    return fig


def colour_wheel(vx: np.ndarray, vy: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """RGB image: hue = direction of (vx, vy), value = magnitude / vmax."""
    mag = np.hypot(vx, vy)
    vmax = vmax or (float(mag.max()) or 1.0)
    hue = (np.arctan2(vy, vx) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.ones_like(hue), np.clip(mag / vmax, 0, 1)], axis=-1)
    return hsv_to_rgb(hsv)


def com_map(ds: xr.Dataset, tiles: int = 2):
    """COM colour-wheel maps (tiled) with arrows, one panel per structure, plus the wheel legend."""
    rows = _variants(ds, "com")
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(4.6 * len(rows) + 1.8, 4.4),
                             gridspec_kw={"width_ratios": [4] * len(rows) + [1.3]})
    vmax = max(float(np.hypot(*da.values).max()) for _, da in rows) or 1.0
    for ax, (lab, da) in zip(axes, rows):
        cx, cy = (da.sel(xy=c).values for c in ("x", "y"))
        x, y = da["x"].values, da["y"].values
        dx, dy = x[1] - x[0], y[1] - y[0]
        Lx, Ly = dx * len(x), dy * len(y)
        rgb = colour_wheel(np.tile(cx, (tiles, tiles)), np.tile(cy, (tiles, tiles)), vmax)
        ax.imshow(rgb, origin="lower", extent=[x[0], x[0] + tiles * Lx, y[0], y[0] + tiles * Ly])
        step = max(1, len(x) // 8)
        X, Y = np.meshgrid(x[::step], y[::step])
        for i in range(tiles):
            for j in range(tiles):
                ax.quiver(X + i * Lx, Y + j * Ly, cx[::step, ::step], cy[::step, ::step], color="w",
                          scale=vmax * 12, width=0.004)
        title = f"{lab}: COM, max {np.hypot(cx, cy).max():.3g} mrad"
        cutoff = da.attrs.get("probe_cutoff_period")
        if cutoff and Lx <= cutoff:
            # the probe intensity transfers no period below λ/(2α): a smaller cell gives COM ≈ 0
            title += f"\n(cell {Lx:.1f} Å < λ/2α = {cutoff:.1f} Å: no contrast expected)"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
    # legend wheel
    t = np.linspace(-1, 1, 201)
    X, Y = np.meshgrid(t, t)
    wheel = colour_wheel(X, Y, 1.0)
    wheel[np.hypot(X, Y) > 1] = 1.0
    axes[-1].imshow(wheel, origin="lower", extent=[-vmax, vmax, -vmax, vmax])
    axes[-1].set_title("direction / |COM| (mrad)", fontsize=8)
    axes[-1].set_xlabel("COM x (mrad)", fontsize=8)
    axes[-1].tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def com_modes(ds: xr.Dataset):
    """Bright-field-disc COM vs whole-pattern COM of the primary structure: both colour wheels on one
    scale (hue = direction, brightness = magnitude, arrows) and the magnitude of their difference."""
    other = "com_whole" if "com_whole" in ds else "com_bright_field"
    pair = [("com", ds["com"]), (other, ds[other])] if other in ds else [("com", ds["com"])]
    pair = sorted(pair, key=lambda p: p[1].attrs.get("com_mode") != "bright_field")
    vmax = max(float(np.hypot(*da.values).max()) for _, da in pair) or 1.0
    fig, axes = plt.subplots(1, len(pair) + 1, figsize=(4.4 * (len(pair) + 1), 4.2))
    x, y = ds["x"].values, ds["y"].values
    dx, dy = x[1] - x[0], y[1] - y[0]
    ext = [x[0], x[0] + dx * len(x), y[0], y[0] + dy * len(y)]
    step = max(1, len(x) // 10)
    X, Y = np.meshgrid(x[::step], y[::step])
    for ax, (var, da) in zip(axes, pair):
        cx, cy = (da.sel(xy=c).values for c in ("x", "y"))
        ax.imshow(colour_wheel(cx, cy, vmax), origin="lower", extent=ext)
        ax.quiver(X, Y, cx[::step, ::step], cy[::step, ::step], color="w", scale=vmax * 12, width=0.005)
        mode = da.attrs.get("com_mode", "?").replace("_", "-")
        extra = f", mask {da.attrs['mask_radius_mrad']:.2g} mrad" if "mask_radius_mrad" in da.attrs else ""
        ax.set_title(f"{var}: {mode} COM{extra}\nmax {np.hypot(cx, cy).max():.3g} mrad", fontsize=9)
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
    if len(pair) == 2:
        d = pair[0][1].values - pair[1][1].values
        h = axes[-1].imshow(np.hypot(*d), origin="lower", extent=ext, cmap="magma")
        fig.colorbar(h, ax=axes[-1], fraction=0.046, pad=0.02, label="mrad")
        axes[-1].set_title("|bright-field − whole| (mrad):\nBragg-disc bias of the whole-pattern COM", fontsize=9)
        axes[-1].set_xlabel("x (Å)")
    title = f"4D-STEM COM, one supercell; colour: direction, brightness: |COM| / {vmax:.3g} mrad"
    cutoff = ds["com"].attrs.get("probe_cutoff_period")
    if cutoff and dx * len(x) <= cutoff:
        title += f" — cell {dx * len(x):.1f} Å < λ/2α = {cutoff:.1f} Å: COM ≈ 0 by physics (numerical noise)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
