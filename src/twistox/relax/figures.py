"""Relax-stage figures: translation-scan energy surface, MD traces and committee force disagreement."""

from __future__ import annotations

import numpy as np

from twistox.core.plots import plt, save

def plot_translation_energy(ds, path) -> None:
    """Relaxed (and rigid) energy vs top-layer offset, meV per surface unit cell, best marked."""
    sigma = int(ds.attrs.get("sigma", 1))
    tx, ty = ds["tx"].values, ds["ty"].values
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), layout="constrained")
    n = len(tx)
    edges = (np.arange(n + 1) - 0.5) / n
    for ax, var, title in zip(axes, ("translation_energy", "translation_energy_rigid"), ("relaxed", "rigid")):
        E = ds[var].values
        rel = 1000.0 * (E - np.nanmin(E)) / sigma
        im = ax.pcolormesh(edges, edges, rel.T, cmap="viridis")
        fig.colorbar(im, ax=ax, label="ΔE (meV / surface cell)")
        k = np.unravel_index(np.nanargmin(E), E.shape)
        ax.plot(tx[k[0]], ty[k[1]], "r*", ms=14, label="minimum")
        ax.set_xlabel("offset along top [100] (cells)")
        ax.set_ylabel("offset along top [010] (cells)")
        ax.set_title(f"{title}: θ = {ds.attrs.get('theta_deg', 0):.2f}°, Σ{sigma}")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    save(fig, path)


def plot_md(ds, path, md_cfg: dict | None = None) -> None:
    """MD temperature and potential energy traces (or a note that MD did not run), and the committee force
    disagreement: its MD trace (max and 99th percentile over atoms), per-atom maps on the two interface planes
    and the histogram over all atoms of the relaxed structure (or a note why it is undefined)."""
    fig = plt.figure(figsize=(12.5, 8.0), layout="constrained")
    gs = fig.add_gridspec(3, 2, width_ratios=[1.5, 1.0])
    a1 = fig.add_subplot(gs[0, 0])
    a2 = fig.add_subplot(gs[1, 0], sharex=a1)
    a3 = fig.add_subplot(gs[2, 0], sharex=a1)
    cfg = md_cfg or {}
    if "md_time" in ds.coords and ds.sizes.get("md_time", 0):
        t = ds["md_time"].values / 1000.0
        a1.plot(t, ds["md_temperature"].values, lw=1)
        a2.plot(t, ds["md_potential_energy"].values - ds["md_potential_energy"].values[0], lw=1)
        if cfg:
            for ax in (a1, a2, a3):
                ax.axvspan(0, cfg.get("discard_ps", 0), color="0.85", label="discarded")
            a1.axhline(cfg.get("temperature_K", 300), color="k", ls="--", lw=0.8, label="thermostat")
        a1.legend(fontsize=8)
    else:
        a1.text(0.5, 0.5, "MD disabled (relax.md.enabled = false)", ha="center", transform=a1.transAxes)
    a1.set_ylabel("T (K)")
    a2.set_ylabel("E_pot - E_pot(0) (eV)")
    a1.set_title(f"Langevin MD, {ds.attrs.get('n_atoms', '')} atoms")
    thr = ds.attrs.get("committee_std_warn_eV_per_A")
    if "md_committee_time" in ds.coords:
        tc = ds["md_committee_time"].values / 1000.0
        a3.plot(tc, ds["md_committee_std_max"].values, "o-", ms=3, lw=1, label="max over atoms")
        a3.plot(tc, ds["md_committee_std_p99"].values, "s-", ms=3, lw=1, label="99th percentile")
        if thr is not None:
            a3.axhline(thr, color="r", ls="--", lw=0.8, label=f"warn {thr:g} eV/Å")
        a3.set_ylim(bottom=0)
        a3.legend(fontsize=8)
    else:
        a3.text(0.5, 0.5, "no committee force std along the MD\n" + str(ds.attrs.get("committee_std_status", "")),
                ha="center", va="center", fontsize=8, wrap=True, transform=a3.transAxes)
    a3.set_ylabel("committee force std (eV/Å)")
    a3.set_xlabel("time (ps)")
    _committee_panels(fig, gs, ds, thr)
    save(fig, path)


def _committee_panels(fig, gs, ds, thr) -> None:
    """Right column: per-atom committee force std of positions_relaxed on both interface planes + histogram."""
    sub = gs[:, 1].subgridspec(3, 1, height_ratios=[1.0, 1.0, 0.8])
    axes = [fig.add_subplot(sub[k]) for k in range(3)]
    std = ds["committee_force_std"].values if "committee_force_std" in ds else None
    if std is None or not np.isfinite(std).any():
        axes[0].set_title("committee force std (positions_relaxed)")
        axes[0].text(0.5, 0.5, str(ds.attrs.get("committee_std_status", "committee force std not evaluated")),
                     ha="center", va="center", fontsize=8, wrap=True, transform=axes[0].transAxes)
        for ax in axes:
            ax.set_axis_off()
        return
    pos = ds["positions_relaxed"].values
    L = np.diag(ds["cell"].values)[:2]
    planes = list(ds.attrs.get("interface_planes", []))
    vmax = float(np.nanmax(std))
    for ax, p, name in zip(axes[:2], planes, ("bottom", "top")):
        sel = ds["plane"].values == p
        xy = np.mod(pos[sel, :2], L)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=std[sel], s=12, cmap="magma", vmin=0.0, vmax=vmax)
        ax.set_xlim(0, L[0])
        ax.set_ylim(0, L[1])
        ax.set_aspect("equal")
        ax.set_ylabel("y (Å)")
        ax.set_title(f"committee force std, relaxed structure\n{name} interface plane {p}: max "
                     f"{np.nanmax(std[sel]):.3g} eV/Å", fontsize=9)
        fig.colorbar(sc, ax=ax, label="force std (eV/Å)")
    axes[1].set_xlabel("x (Å)")
    h = axes[2]
    h.hist(std, bins=40, color="0.4")
    h.set_yscale("log")
    h.axvline(float(ds.attrs.get("committee_std_p99", np.nan)), color="tab:blue", lw=1, label="99th percentile")
    if thr is not None:
        h.axvline(thr, color="r", ls="--", lw=0.8, label=f"warn {thr:g} eV/Å")
    k = ds.attrs.get("committee_size", "?")
    h.set_xlabel(f"per-atom committee force std, relaxed structure ({k} models; eV/Å)")
    h.set_ylabel("atoms")
    h.legend(fontsize=8)
