"""Relax-stage figures: translation-scan energy surface, MD traces."""

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
    """MD temperature and potential energy traces (or a note that MD did not run)."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6.5, 5.0), sharex=True, layout="constrained")
    if "md_time" in ds.coords and ds.sizes.get("md_time", 0):
        t = ds["md_time"].values / 1000.0
        a1.plot(t, ds["md_temperature"].values, lw=1)
        a2.plot(t, ds["md_potential_energy"].values - ds["md_potential_energy"].values[0], lw=1)
        cfg = md_cfg or {}
        if cfg:
            for ax in (a1, a2):
                ax.axvspan(0, cfg.get("discard_ps", 0), color="0.85", label="discarded")
            a1.axhline(cfg.get("temperature_K", 300), color="k", ls="--", lw=0.8, label="thermostat")
        a1.legend(fontsize=8)
    else:
        a1.text(0.5, 0.5, "MD disabled (relax.md.enabled = false)", ha="center", transform=a1.transAxes)
    a1.set_ylabel("T (K)")
    a2.set_ylabel("E_pot - E_pot(0) (eV)")
    a2.set_xlabel("time (ps)")
    a1.set_title(f"Langevin MD, {ds.attrs.get('n_atoms', '')} atoms")
    save(fig, path)
