"""Figures of the electronic stage: PDOS by region (Fig. 4j left) and the window LDOS map over the strain map."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

_COLOURS = {"node": "tab:red", "line": "tab:orange", "domain": "tab:purple", "interface_near": "tab:blue",
            "bulk_like": "tab:gray"}


def plot_pdos(ds: xr.Dataset, path: str) -> None:
    """Left: total DOS and PDOS per atom group, each per atom of the group (so regions of different size
    compare); right: PDOS per element/l channel. Energies E − E_v (eV); window shaded."""
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    E = ds["energy"].values
    win = float(ds.attrs["ldos_window_eV"])
    n_at = ds["group_atoms"].values
    for g, n in zip(ds["group"].values, n_at):
        if n:
            ax[0].plot(ds["pdos_group"].sel(group=g).values / n, E, color=_COLOURS.get(str(g)), label=f"{g} ({n})")
    ax[0].set_xlabel("PDOS per atom (states/eV)")
    for c in ds["channel"].values:
        ax[1].plot(ds["pdos_channel"].sel(channel=c).values, E, label=str(c))
    ax[1].plot(ds["dos_total"].values, E, "k", lw=0.8, label="total")
    ax[1].set_xlabel("DOS (states/eV per cell)")
    for a in ax:
        a.axhspan(-win, 0, color="gold", alpha=0.3, lw=0)
        a.axhline(0, color="k", lw=0.5)
        a.axhline(float(ds.attrs["gap_eV"]), color="k", lw=0.5, ls="--")
        a.legend(fontsize=7, loc="upper right")
        a.set_xlim(left=0)
    ax[0].set_ylabel("E − E_v (eV)")
    fig.suptitle(f"gap {ds.attrs['gap_eV']:.2f} eV ({ds.attrs['xc']}+U {ds.attrs['hubbard_u']}), window "
                 f"[E_v − {win} eV, E_v] shaded")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ldos_map(ds: xr.Dataset, strain: xr.Dataset | None, path: str) -> None:
    """Window LDOS map [y, x] (x right, y up, Å) beside the interlayer twist map, region outlines on both."""
    x, y = ds["x"].values, ds["y"].values
    ext = (0, x[-1] + x[0], 0, y[-1] + y[0])
    panels = [("window LDOS (e/Å²)", ds["ldos_window"].values, "magma")]
    if strain is not None and "interlayer_twist" in strain:
        panels.append(("interlayer twist (deg)", strain["interlayer_twist"].values, "viridis"))
    fig, ax = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    code = ds["region"].values
    for a, (title, img, cmap) in zip(ax[0], panels):
        im = a.imshow(img, origin="lower", extent=ext, cmap=cmap)
        if code.max() > 0:
            a.contour(x, y, code, levels=[0.5, 1.5], colors=["w", "c"], linewidths=0.8)
        a.set_title(title + "\nwhite: line edge, cyan: node edge", fontsize=9)
        a.set_xlabel("x (Å)")
        a.set_ylabel("y (Å)")
        fig.colorbar(im, ax=a, shrink=0.8)
    at = ds.attrs
    fig.suptitle(f"window share on lines {at['ldos_fraction_lines']:.2f} (area {at['area_fraction_lines']:.2f}), "
                 f"nodes {at['ldos_fraction_nodes']:.2f} (area {at['area_fraction_nodes']:.2f})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
