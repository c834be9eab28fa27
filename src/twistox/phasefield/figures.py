"""Figures of the phasefield stage (paper Fig. 4c,d,h style)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import hsv_to_rgb

from twistox.core.plots import save


def _tile(a: np.ndarray, t: int) -> np.ndarray:
    return np.tile(a, (t, t))


def cross_section(ds: xr.Dataset, path, tiles: int = 2):
    """|P| in the yz plane through the x of largest interface |P|, arrows (P_y, P_z)."""
    P = ds["P"].values
    mag = np.sqrt((P ** 2).sum(0))
    z, y = ds["z"].values, ds["y"].values
    zi = ds.attrs["interface_z"]
    iz = int(np.argmin(np.abs(z - zi)))
    ix = int(np.unravel_index(np.argmax(mag[iz]), mag[iz].shape)[1])
    L = ds.attrs["supercell_length"]
    yy = np.concatenate([y + k * L for k in range(tiles)])
    sec = np.tile(mag[:, :, ix], (1, tiles))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    im = ax.pcolormesh(yy, z, sec, shading="nearest", cmap="magma")
    step = max(1, len(yy) // 24)
    zs = max(1, len(z) // 24)
    ax.quiver(yy[::step], z[::zs], np.tile(P[1, :, :, ix], (1, tiles))[::zs, ::step],
              np.tile(P[2, :, :, ix], (1, tiles))[::zs, ::step], color="c", scale_units="xy", angles="xy")
    ax.axhline(zi, color="w", ls="--", lw=0.8)
    ax.set_xlabel("y (Å)")
    ax.set_ylabel("z (Å)")
    ax.set_title(f"|P| at x = {ds['x'].values[ix]:.1f} Å (interface dashed)")
    fig.colorbar(im, ax=ax, label="|P| (C/m²)")
    return save(fig, path)


def interface_plane(ds: xr.Dataset, path, tiles: int = 2):
    """|P| in the cells just below / above the interface, in-plane P arrows, supercell tiled."""
    P = ds["P"].values
    z, x = ds["z"].values, ds["x"].values
    zi = ds.attrs["interface_z"]
    below = int(np.where(z < zi)[0][-1])
    L = ds.attrs["supercell_length"]
    xx = np.concatenate([x + k * L for k in range(tiles)])
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    vmax = np.sqrt((P[:, below:below + 2] ** 2).sum(0)).max()
    for ax, iz, name in ((axes[0], below, "bottom layer"), (axes[1], below + 1, "top layer")):
        mag = _tile(np.sqrt((P[:, iz] ** 2).sum(0)), tiles)
        im = ax.pcolormesh(xx, xx, mag, shading="nearest", cmap="magma", vmin=0, vmax=vmax)
        s = max(1, len(xx) // 20)
        ax.quiver(xx[::s], xx[::s], _tile(P[0, iz], tiles)[::s, ::s], _tile(P[1, iz], tiles)[::s, ::s],
                  color="c", angles="xy")
        ax.plot([0, L, L, 0, 0], [0, 0, L, L, 0], "w-", lw=0.8)
        ax.set_aspect("equal")
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
        ax.set_title(f"{name}, z = {z[iz]:.1f} Å")
    fig.colorbar(im, ax=axes, label="|P| (C/m²)", shrink=0.8)
    return save(fig, path)


def colour_wheel(vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """RGB image: hue = direction, value = magnitude / max."""
    ang = (np.arctan2(vy, vx) / (2 * np.pi)) % 1.0
    mag = np.hypot(vx, vy)
    val = mag / mag.max() if mag.max() > 0 else mag
    return hsv_to_rgb(np.stack([ang, np.ones_like(ang), val], -1))


def projected_field(ds: xr.Dataset, path, tiles: int = 2):
    """E_projected as a colour-wheel map with arrows, supercell tiled, and the wheel legend."""
    e = ds["E_projected"].values
    x = ds["x"].values
    L = ds.attrs["supercell_length"]
    ex, ey = _tile(e[0], tiles), _tile(e[1], tiles)
    fig, (ax, axw) = plt.subplots(1, 2, figsize=(8.5, 6), gridspec_kw={"width_ratios": [6, 1]})
    ax.imshow(colour_wheel(ex, ey), origin="lower", extent=(0, tiles * L, 0, tiles * L))
    xx = (np.arange(ex.shape[1]) + 0.5) * L / len(x)
    s = max(1, len(xx) // 20)
    ax.quiver(xx[::s], xx[::s], ex[::s, ::s], ey[::s, ::s], color="k", angles="xy")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_title(f"∫E dz (single column), max {np.hypot(e[0], e[1]).max():.3g} V")
    t = np.linspace(-1, 1, 101)
    X, Y = np.meshgrid(t, t)
    wheel = colour_wheel(X, Y)
    wheel[np.hypot(X, Y) > 1] = 1.0
    axw.imshow(wheel, origin="lower", extent=(-1, 1, -1, 1))
    axw.set_axis_off()
    axw.set_title("direction")
    return save(fig, path)


def energy_history(ds: xr.Dataset, path):
    """Residual |dF/dP| and |ΔF| per step (log) and the energy terms."""
    e = ds["energy"].values
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    if "residual" in ds:
        a1.semilogy(ds["residual"].values, label="RMS |δF/δP| (V/m)")
        a1.axhline(ds.attrs.get("residual_tol_V_per_m", np.nan), color="k", ls=":", lw=0.8, label="tolerance")
    if e.size > 1:
        a1.semilogy(np.arange(1, e.size), np.abs(np.diff(e)) + 1e-30, label="|ΔF| per step (aJ)")
    a1.legend(fontsize=7)
    a1.set_xlabel("step")
    a1.set_title(f"stop: {ds.attrs['stop_reason']} after {ds.attrs['steps']} steps")
    for name, row in zip(ds["term"].values, ds["energy_terms"].values):
        a2.plot(row, label=str(name))
    a2.plot(e, "k--", label="total")
    a2.set_xlabel("step")
    a2.set_ylabel("energy (aJ)")
    a2.legend(fontsize=7)
    return save(fig, path)


def render_all(ds: xr.Dataset, out, tiles: int = 2) -> None:
    """The stage's four figures to the rule outputs fig_cross, fig_plane, fig_eproj, fig_energy."""
    cross_section(ds, out.fig_cross, tiles)
    interface_plane(ds, out.fig_plane, tiles)
    projected_field(ds, out.fig_eproj, tiles)
    energy_history(ds, out.fig_energy)


def dmi_sweep(csv_path, path):
    """Handedness and E_projected winding at the nodes vs the DMI coefficient, from benchmarks/dmi_sweep.py's CSV
    (rows of the network runs only: eig_scale 1, top_scale 1, not mirrored)."""
    import pandas as pd

    d = pd.read_csv(csv_path)
    d = d[(d["eig_scale"] == 1.0) & (d["top_scale"] == 1.0) & (~d["mirror"].astype(bool))].sort_values("dmi")
    D = d["dmi"].to_numpy(float)
    x = np.where(D > 0, D, D[D > 0].min() / 3 if (D > 0).any() else 1.0)
    net = lambda col: [np.mean([int(v) for v in str(s).split()]) for s in d[col]]  # noqa: E731
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.semilogx(x, d["interface_majority_fraction"], "o-", label="interface cells")
    a1.semilogx(x, d["projected_majority_fraction"], "s--", label="∫P dz (single column)")
    a1.set_ylim(-0.05, 1.1)
    a1.set_ylabel("fraction of nodes, majority handedness")
    a1.legend(fontsize=7)
    a2.semilogx(x, net("E_defects_nodes"), "o-", label="nodes")
    a2.semilogx(x, net("E_defects_walls"), "^:", label="wall midpoints")
    a2.set_ylabel("net winding of E_projected")
    a2.legend(fontsize=7)
    for a in (a1, a2):
        a.set_xlabel("DMI coefficient D (J m²/C²); D = 0 at left edge")
    return save(fig, path)
