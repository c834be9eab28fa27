"""Strain-stage figures: interface maps (crystal-frame eps_xy, local rotation, interlayer twist,
B-site off-centring), the Fourier fit, and the profile through the stack. Maps are [y, x], origin lower."""

from __future__ import annotations

import numpy as np
import xarray as xr

from twistox.core.plots import plt, save

from .fourier import fourier_grid

KIND = {0: "AO", 1: "BO2"}


def _tile(img: np.ndarray, tiles: int) -> np.ndarray:
    return np.tile(img, (tiles, tiles))


def _sym(v: np.ndarray) -> float:
    m = float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 0.0
    return m if m > 0 else 1.0


def _outline(ax, L: float) -> None:
    ax.plot([0, L, L, 0, 0], [0, 0, L, L, 0], "k-", lw=0.8)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")


def _plane_label(ds: xr.Dataset, p: int) -> str:
    d = ds.sel(plane=p)
    return f"plane {p} ({KIND.get(int(d['plane_kind']), '?')}, layer {int(d['plane_layer'])})"


def plot_interface_fields(ds: xr.Dataset, path, tiles: int = 2) -> None:
    """Crystal-frame eps_xy and local rotation of both interface planes, the interlayer twist map and the
    B-site off-centring (arrows; changed cages marked x) on the interfacial BO2 plane; tiled, cell outlined."""
    L = float(ds.attrs["supercell_length"])
    ext = [0, tiles * L, 0, tiles * L]
    ib, it = (int(p) for p in ds.attrs["interface_planes"])
    fig, axes = plt.subplots(2, 3, figsize=(16, 10), layout="constrained")
    exy = [ds["eps_xy"].sel(plane=p).values * 100 for p in (ib, it)]
    vm = max(_sym(e) for e in exy)
    for c, (p, e) in enumerate(zip((ib, it), exy)):
        im = axes[0, c].imshow(_tile(e, tiles), origin="lower", extent=ext, cmap="RdBu_r", vmin=-vm, vmax=vm)
        fig.colorbar(im, ax=axes[0, c], label="crystal-frame ε_xy (%)")
        axes[0, c].set_title(f"{_plane_label(ds, p)}: ε_xy in its layer's frame", fontsize=10)
        rot = np.degrees(ds["rotation"].sel(plane=p).values)
        vr = _sym(rot)
        im = axes[1, c].imshow(_tile(rot, tiles), origin="lower", extent=ext, cmap="PuOr", vmin=-vr, vmax=vr)
        fig.colorbar(im, ax=axes[1, c], label="local rotation ω (deg, CCW)")
        axes[1, c].set_title(f"{_plane_label(ds, p)}: local rotation (layer angle removed)", fontsize=10)
    tw = ds["interlayer_twist"].values
    im = axes[0, 2].imshow(_tile(tw, tiles), origin="lower", extent=ext, cmap="viridis")
    fig.colorbar(im, ax=axes[0, 2], label="local interlayer twist (deg)")
    axes[0, 2].set_title(f"interlayer twist θ + ω_top − ω_bottom (θ = {ds.attrs.get('theta_deg', 0):.2f}°)\n"
                         f"period {ds.attrs['network_period_twist']:.2f} Å", fontsize=10)
    _offcentring_panel(fig, axes[1, 2], ds, L, tiles, ext)
    for ax in axes.ravel():
        _outline(ax, L)
    fig.suptitle(f"interface planes {ib} | {it}: θ = {ds.attrs.get('theta_deg', 0):.2f}°, λ = "
                 f"{ds.attrs.get('moire_period', float('nan')):.2f} Å; network period from crystal ε_xy "
                 f"{ds.attrs['network_period_eps_xy']:.2f} Å, from the twist map {ds.attrs['network_period_twist']:.2f} Å")
    save(fig, path)


def _offcentring_panel(fig, ax, ds: xr.Dataset, L: float, tiles: int, ext) -> None:
    kinds = ds["plane_kind"].sel(plane=list(ds.attrs["interface_planes"])).values
    bo2 = [int(p) for p, k in zip(ds.attrs["interface_planes"], kinds) if k == 1]
    if not bo2:
        ax.set_title("no BO2 plane at the interface", fontsize=10)
        return
    p = bo2[0]
    mag = np.hypot(*np.moveaxis(ds["ti_offcentering"].sel(plane=p).values, -1, 0)) * 100
    im = ax.imshow(_tile(mag, tiles), origin="lower", extent=ext, cmap="magma")
    fig.colorbar(im, ax=ax, label="|δ_B| (pm)")
    sel = (ds["atom_plane"].values == p) & (ds["cage_changed"].values >= 0)
    xy = ds["atom_positions"].values[sel, :2]
    dv = ds["atom_ti_offcentering"].values[sel]
    bad = ds["cage_changed"].values[sel] == 1
    shifts = [L * np.array([i, j]) for i in range(tiles) for j in range(tiles)]
    txy = np.concatenate([xy + s for s in shifts])
    tdv = np.tile(np.where(bad[:, None], np.nan, dv), (tiles * tiles, 1))
    scale = float(np.nanmax(np.hypot(tdv[:, 0], tdv[:, 1]))) if np.isfinite(tdv).any() else 0.0
    scale = scale if scale > 0 else 1.0
    ax.quiver(txy[:, 0], txy[:, 1], tdv[:, 0], tdv[:, 1], color="cyan", angles="xy", scale_units="xy",
              scale=scale / (0.35 * float(ds.attrs.get("a", 3.9))), width=0.004)
    if bad.any():
        bxy = np.concatenate([xy[bad] + s for s in shifts])
        ax.plot(bxy[:, 0], bxy[:, 1], "x", color="red", ms=7, mew=1.5, label="changed cage (not in P)")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{_plane_label(ds, p)}: B-site off-centring δ\n(arrows ∝ δ, max {100 * scale:.2f} pm; "
                 f"{int(bad.sum())} changed cages)", fontsize=10)


def plot_fourier_fit(ds: xr.Dataset, path) -> None:
    """Crystal-frame eps_xy of the interface planes next to its truncated Fourier series and the residual."""
    L = float(ds.attrs["supercell_length"])
    n = ds.sizes["x"]
    planes = [int(p) for p in ds.attrs["interface_planes"]]
    N, Nsc = ds.attrs["fourier_order_moire"], ds.attrs["fourier_order_supercell"]
    fig, axes = plt.subplots(len(planes), 3, figsize=(13, 4.0 * len(planes)), squeeze=False, layout="constrained")
    for r, p in enumerate(planes):
        f = ds["eps_xy"].sel(plane=p).values * 100
        rec = fourier_grid(ds["fourier_coefficients_crystal"].sel(plane=p, field="eps_xy").values, L, n) * 100
        vm = _sym(f)
        for c, (img, title) in enumerate(((f, "gridded crystal ε_xy (%)"),
                                          (rec, f"Fourier series (%)\nN = {N} moiré = {Nsc} supercell harmonics"),
                                          (f - rec, "residual (%)"))):
            im = axes[r, c].imshow(img, origin="lower", extent=[0, L, 0, L], cmap="RdBu_r", vmin=-vm, vmax=vm)
            fig.colorbar(im, ax=axes[r, c])
            axes[r, c].set_title(f"{_plane_label(ds, p)}: {title}", fontsize=9)
            _outline(axes[r, c], L)
    save(fig, path)


def plot_plane_profile(ds: xr.Dataset, path) -> None:
    """Strain and rotation (rms over the plane), largest out-of-plane displacement and changed cages,
    against the plane height z: how far the interface's deformation reaches into each layer."""
    z = ds["plane_z"].values
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    for name, style in (("eps_xx", "o-"), ("eps_yy", "s-"), ("eps_xy", "^-")):
        axes[0].plot(z, 100 * np.sqrt((ds[name] ** 2).mean(("y", "x"))).values, style, label=f"rms crystal {name}")
    axes[0].set_ylabel("strain rms (%)")
    axes[0].legend(fontsize=8)
    axes[1].plot(z, np.degrees(np.sqrt((ds["rotation"] ** 2).mean(("y", "x"))).values), "o-", label="rms ω")
    axes[1].set_ylabel("local rotation rms (deg)")
    axes[2].plot(z, ds["max_dz"].values, "o-", label="max |z − z_rigid|")
    axes[2].plot(z, ds["max_dz_relative"].values, "s--", label="max beyond the plane's own shift")
    axes[2].set_ylabel("out-of-plane displacement (Å)")
    ax2 = axes[2].twinx()
    ax2.bar(z, ds["cage_changed_count"].values, width=0.3, color="tab:red", alpha=0.4, label="changed cages")
    ax2.set_ylabel("changed B-site cages")
    axes[2].legend(fontsize=8, loc="upper left")
    for ax in axes:
        ax.set_xlabel("plane z (Å)")
        if "interface_z" in ds.attrs:
            ax.axvline(float(ds.attrs["interface_z"]), color="k", lw=0.8, ls=":")
    fig.suptitle(f"through the stack (θ = {ds.attrs.get('theta_deg', 0):.2f}°; dotted: interface)")
    save(fig, path)
