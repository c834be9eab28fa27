"""Figure helpers shared by the stages (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LAYER_COLOURS = ("tab:blue", "tab:orange")


def save(fig, path: str | Path, dpi: int = 130) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def planview(atoms, planes_each_side: int = 1, title: str = "", tiles: int = 2):
    """Plan view of the interface planes, both layers coloured, supercell outlined."""
    info = atoms.info
    ib, it = info["interface_planes"]
    plane = atoms.arrays["plane"]
    sel = (plane > ib - planes_each_side) & (plane < it + planes_each_side)
    pos = atoms.positions[sel]
    num = atoms.numbers[sel]
    lay = atoms.arrays["layer"][sel]
    L = atoms.cell[0, 0]
    fig, ax = plt.subplots(figsize=(6.4, 6.4))
    sizes = np.where(num == 8, 6, np.where(num > 30, 30, 18))
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
    return fig
