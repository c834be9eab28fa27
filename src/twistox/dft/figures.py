"""DFT-stage figure: the labels (energy vs max force) and the cost per frame."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from twistox.core.plots import plt


def summary_figure(good: list[Atoms], statuses: list[dict]):
    """Two panels: energy per atom vs max force per frame by config type; labelling time per frame."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    kinds = sorted({a.info.get("config_type", "") for a in good})
    for k in kinds:
        sel = [a for a in good if a.info.get("config_type") == k]
        fmax = [np.linalg.norm(a.arrays["REF_forces"], axis=1).max() for a in sel]
        epa = [a.info["REF_energy"] / len(a) for a in sel]
        a1.scatter(fmax, epa, label=f"{k} ({len(sel)})", s=25)
    a1.set_xlabel("max |F| per frame (eV/Å)")
    a1.set_ylabel("energy per atom (eV)")
    a1.set_title("DFT labels")
    a1.legend(fontsize=8)
    ok = [s for s in statuses if s["status"] == "ok"]
    bad = [s for s in statuses if s["status"] != "ok"]
    a2.scatter([s["n_atoms"] for s in ok], [s["wall_s"] for s in ok], c="tab:green", label=f"ok ({len(ok)})")
    if bad:
        a2.scatter([s["n_atoms"] for s in bad], [s.get("wall_s", 0) for s in bad], c="tab:red", marker="x",
                   label=f"failed ({len(bad)})")
    a2.set_xlabel("atoms per frame")
    a2.set_ylabel("labelling time (s, one core)")
    a2.set_title("cost per frame")
    a2.legend(fontsize=8)
    fig.tight_layout()
    return fig
