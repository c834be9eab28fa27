"""Supercell figures: plan view of the interface planes and the local stacking registry (moire)."""

from __future__ import annotations

import numpy as np

from twistox.core.plots import LAYER_COLOURS, plt


def registry_offset(atoms) -> tuple[np.ndarray, np.ndarray]:
    """Local stacking registry: in-plane distance (Å) of each top-interface-plane atom from the nearest
    site of the bottom layer's lattice equivalent to it in the untwisted stack. Returns (xy, distance)."""
    info = atoms.info
    ib, it = info["interface_planes"]
    a = info["a"]
    plane = atoms.arrays["plane"]
    top = plane == it
    xy = atoms.positions[top, :2]
    # positions of the same sites in the untwisted crystal: rotate back by the top layer's angle and
    # forward by the bottom layer's; the offset to the actual site, wrapped to the bottom lattice, is the
    # local registry (0 where the two lattices coincide)
    ang_b = np.radians(info["layer_angles_deg"][0])
    rb = np.array([[np.cos(ang_b), np.sin(ang_b)], [-np.sin(ang_b), np.cos(ang_b)]])
    frac_b = xy @ rb.T / a  # in bottom-layer lattice units
    ang_t = np.radians(info["layer_angles_deg"][1])
    rt = np.array([[np.cos(ang_t), np.sin(ang_t)], [-np.sin(ang_t), np.cos(ang_t)]])
    frac_t = xy @ rt.T / a  # in top-layer lattice units: site fraction within its own cell
    d = frac_b - frac_t
    d -= np.round(d)
    return xy, np.linalg.norm(d, axis=1) * a


def planview(atoms, planes_each_side: int = 1, title: str = "", tiles: int = 2):
    """Plan view of the interface planes, both layers coloured, supercell outlined; right panel: the local
    stacking registry of the top interface plane over the bottom lattice, which shows the moire."""
    info = atoms.info
    ib, it = info["interface_planes"]
    plane = atoms.arrays["plane"]
    sel = (plane > ib - planes_each_side) & (plane < it + planes_each_side)
    pos = atoms.positions[sel]
    num = atoms.numbers[sel]
    lay = atoms.arrays["layer"][sel]
    L = atoms.cell[0, 0]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12.5, 6.2))
    # marker size by species mass rank (lightest, e.g. the X anion: small; heaviest, e.g. the A cation: large)
    zs = np.unique(atoms.numbers)
    sizes = np.where(num == zs.min(), 6, np.where((num == zs.max()) & (len(zs) > 1), 30, 18))
    for k in (0, 1):
        for ix in range(tiles):
            for iy in range(tiles):
                m = lay == k
                ax.scatter(pos[m, 0] + ix * L, pos[m, 1] + iy * L, s=sizes[m], c=LAYER_COLOURS[k],
                           alpha=0.6, lw=0, label=("bottom layer" if k == 0 else "top layer") if ix == iy == 0 else None)
    ax.plot([0, L, L, 0, 0], [0, 0, L, L, 0], "k-", lw=1.2, label="supercell")
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_title(title or f"θ = {info.get('theta_deg', 0):.2f}°, Σ{info.get('sigma')}, λ = {info.get('moire_period', 0) / 10:.2f} nm")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    xy, dist = registry_offset(atoms)
    for ix in range(tiles):
        for iy in range(tiles):
            sc = ax2.scatter(xy[:, 0] + ix * L, xy[:, 1] + iy * L, c=dist, s=14, cmap="viridis",
                             vmin=0, vmax=info["a"] / np.sqrt(2))
    ax2.plot([0, L, L, 0, 0], [0, 0, L, L, 0], "w-", lw=1.2)
    ax2.set_aspect("equal")
    ax2.set_facecolor("0.15")
    ax2.set_xlabel("x (Å)")
    ax2.set_title("registry of top interface plane")
    fig.colorbar(sc, ax=ax2, label="in-plane offset from the bottom lattice (Å)", shrink=0.8)
    return fig
