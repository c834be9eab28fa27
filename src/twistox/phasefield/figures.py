"""Figures of the phasefield stage (paper Fig. 4c,d,h style)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import hsv_to_rgb
from matplotlib.ticker import NullFormatter

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


def _near(x: np.ndarray, L: float, c: float, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of grid points within ±half Å of c along one periodic axis, sorted, and their offsets (Å)."""
    off = (x - c + L / 2) % L - L / 2
    idx = np.flatnonzero(np.abs(off) <= half)
    order = np.argsort(off[idx])
    return idx[order], off[idx][order]


def node_zoom(ax, vx: np.ndarray, vy: np.ndarray, x: np.ndarray, L: float, c, title: str, colour=None,
              half: float = 16.0):
    """|v| (or colour wheel) of a periodic [y, x] field ±half Å around the point c (Å), unit arrows (direction)."""
    ix, ox = _near(x, L, c[0], half)
    iy, oy = _near(x, L, c[1], half)
    sx, sy = vx[np.ix_(iy, ix)], vy[np.ix_(iy, ix)]
    mag = np.hypot(sx, sy)
    im = None
    if colour == "wheel":
        h = 0.5 * (x[1] - x[0])  # imshow extent is the pixel edges; ox, oy are cell centres
        ax.imshow(colour_wheel(sx, sy), origin="lower", extent=(ox[0] - h, ox[-1] + h, oy[0] - h, oy[-1] + h))
    else:
        im = ax.pcolormesh(ox, oy, mag, shading="nearest", cmap="magma")
    u, v = sx / (mag + 1e-300), sy / (mag + 1e-300)
    ax.quiver(ox, oy, u, v, color="k" if colour == "wheel" else "c", angles="xy", scale=22, width=0.006,
              pivot="middle")
    ax.plot(0, 0, "wo", mfc="none", ms=10)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
    return im


def _dmi_axis(D: np.ndarray) -> tuple[np.ndarray, float]:
    """Log-axis positions of the swept D (D = 0 drawn at a third of the smallest positive D)."""
    lo = D[D > 0].min() / 3 if (D > 0).any() else 1e-3
    return np.where(D > 0, D, lo), lo


def dmi_handedness(ds: xr.Dataset, path):
    """phasefield_dmi_sweep.zarr vs D: majority-handedness fraction, node circulation / radial part, net winding
    of E_projected at nodes / AA / wall midpoints, and F_dmi, F - F(D=0). Threshold (if any) and estimate marked."""
    D = ds["dmi"].values
    xs, lo = _dmi_axis(D)
    fig, (a1, a2, a3, a4) = plt.subplots(1, 4, figsize=(17, 3.9))
    a1.semilogx(xs, ds["interface_majority_fraction"], "o-", label="interface cells (node, layer) vortices")
    a1.semilogx(xs, ds["projected_majority_fraction"], "s--", label="∫P dz (single column; 0 = no net circulation)")
    a1.set_ylim(-0.05, 1.1)
    a1.set_ylabel("fraction with the majority handedness")
    a2.semilogx(xs, ds["circ_bottom"], "o-", label="circulation, below")
    a2.semilogx(xs, ds["circ_top"], "o-", label="circulation, above")
    a2.semilogx(xs, ds["circ_projected"], "s--", label="circulation, ∫P dz")
    a2.semilogx(xs, 0.5 * (ds["radial_bottom"] + ds["radial_top"]), "r:", marker=".", label="radial (+ source)")
    a2.axhline(0, color="k", lw=0.5)
    a2.set_ylabel("<P·t̂>, <P·r̂> / <|P|> at nodes (+ CCW)")
    for key, mk, lab in (("E_defects_nodes", "o-", "nodes"), ("E_defects_aa", "s--", "AA sites"),
                         ("E_defects_walls", "^:", "wall midpoints")):
        a3.semilogx(xs, ds[key].mean(ds[key].dims[1]), mk, label=lab)
    a3.semilogx(xs, ds["E_winding_nodes"].mean("node"), "kx", label="nodes, circle r_loop")
    a3.axhline(1, color="g", lw=0.6, ls=":")
    a3.axhline(-1, color="r", lw=0.6, ls=":")
    a3.set_ylabel("mean net winding of E_projected")
    F = ds["energy_terms"]
    a4.semilogx(xs, F.sel(term="dmi"), "o-", label="F_dmi")
    a4.semilogx(xs, ds["F_total_aJ"] - float(ds["F_total_aJ"].sel(dmi=0.0)) if 0.0 in D else ds["F_total_aJ"], "s--",
                label="F − F(D=0)")
    a4.set_ylabel("energy (aJ per supercell)")
    thr = ds.attrs.get("dmi_threshold")
    est = ds.attrs.get("dmi_estimate")
    for a in (a1, a2, a3, a4):
        a.set_xlabel("D (J m²/C²); D = 0 at the left edge", fontsize=8)
        a.xaxis.set_minor_formatter(NullFormatter())
        if est is not None:
            a.axvline(max(est, lo), color="b", lw=0.8, ls="--", label="estimate G θ/a" if a is a1 else None)
        if isinstance(thr, (int, float)):
            a.axvline(max(thr, lo), color="m", lw=0.8, ls="-.", label="single-handedness threshold" if a is a1 else None)
        a.legend(fontsize=7)
    fig.suptitle(f"chiral coupling sweep, θ = {ds.attrs.get('theta_deg', float('nan')):.2f}°, λ = "
                 f"{ds.attrs.get('network_period_A', float('nan')):.1f} Å; threshold: "
                 f"{thr if isinstance(thr, str) else f'{thr:.3g} J m²/C²'}; estimate (crude, κ = 1) {est:.3g}",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def dmi_map_values(ds: xr.Dataset) -> dict[str, float]:
    """The D of the map rows: 0, the threshold (if one was found) and the dimensional estimate (labels -> D)."""
    D = ds["dmi"].values
    pick = lambda v: float(D[np.argmin(np.abs(D - v))])  # noqa: E731
    out = {"reference": pick(0.0)}
    thr = ds.attrs.get("dmi_threshold")
    if isinstance(thr, (int, float)):
        out["threshold"] = pick(thr)
    if ds.attrs.get("dmi_estimate") is not None:
        out["estimate"] = pick(ds.attrs["dmi_estimate"])
    return out


def dmi_maps(ds: xr.Dataset, path, half: float | None = None):
    """P_xy below / above the interface (|P| colour, direction arrows) and E_projected (colour wheel) around the
    first node, at D = 0, the threshold (if any) and the estimate. Offsets in Å, [y, x], +x right, +y up."""
    rows = dmi_map_values(ds)
    x = ds["x"].values
    L = float(ds.attrs["supercell_length"])
    half = half or min(16.0, 0.36 * float(ds.attrs.get("network_period_A", L)))
    c = (float(ds["node_x"][0]), float(ds["node_y"][0]))
    fig, axes = plt.subplots(len(rows), 3, figsize=(11, 3.5 * len(rows)), squeeze=False)
    for row_ax, (label, d) in zip(axes, rows.items()):
        P = ds["P_interface"].sel(dmi=d).values
        E = ds["E_projected"].sel(dmi=d).values
        for ax, k, name in ((row_ax[0], 0, "below"), (row_ax[1], 1, "above")):
            im = node_zoom(ax, P[k, 0], P[k, 1], x, L, c, f"{label} (D = {d:.3g}): P_xy {name} the interface\n"
                           f"|P| colour (max {np.hypot(P[k, 0], P[k, 1]).max():.3g} C/m²), arrows = direction",
                           half=half)
            fig.colorbar(im, ax=ax, shrink=0.8)
        node_zoom(row_ax[2], E[0], E[1], x, L, c, f"{label} (D = {d:.3g}): E_projected (colour wheel)", "wheel", half)
    fig.suptitle(f"±{half:.0f} Å around a node (circle); x, y offsets in Å; threshold: {ds.attrs.get('dmi_threshold')}",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, path)
