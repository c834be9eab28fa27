"""Figures of the report stage: the cross-angle overview and the continuum-claims table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twistox.report.stage import SOURCES

# The paper's statements each claims column is compared with (seed 000, Fig. 4 and text).
PAPER = {
    "pf_max_P_C_m2": ("max |P| phase field (C/m²)", "≈0.02 (5°), ≈0.005 (20°)"),
    "pf_P_decay_length_A": ("|P| 1/e decay from interface (Å)", "~20"),
    "pf_P_node_winding_mean": ("P winding at nodes (phase field)", "+1"),
    "pf_P_node_curl_fraction": ("curl share of node P loops (1 vortex, 0 source/sink)", "1 (vortices)"),
    "pf_alternate_fraction": ("node CW/CCW alternate laterally (fraction)", "1 (alternate)"),
    "pf_reverse_fraction": ("node sense reverses across interface (fraction)", "1 (reverse)"),
    "pf_Eproj_node_winding": ("E_projected winding on node loops (r = λ/4)", "−1"),
    "pf_Eproj_node_site_winding": ("E_projected defects at nodes: mean n", "−1"),
    "atomistic_node_winding": ("B-site off-centring winding at nodes", "+1"),
    "atomistic_node_cw_fraction": ("CW fraction of atomistic node vortices", "1 (CW only)"),
    "dpc_node_winding": ("DPC E_proj winding at nodes", "+1"),
    # issue 19: the chiral-coupling sweep (phasefield_dmi_sweep.zarr) at its largest D; experiment: one handedness
    "pf_dmi_majority_fraction_Dmax": ("majority-handedness fraction, max DMI D", "1 (experiment)"),
    "pf_dmi_Eproj_node_winding_Dmax": ("E_projected node winding, max DMI D", "+1 (experiment)"),
}


def _fmt(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


def claims_figure(df: pd.DataFrame):
    """Table: the paper's continuum claims (rows) against every sample (columns); n/a = source missing."""
    import matplotlib.pyplot as plt

    cols = [f"{r.system} {r.theta_deg:.2f}°\n({r.sites_source or 'no analysis'})" for r in df.itertuples()] \
        if len(df) else []
    cells = [[_fmt(df[k].iloc[i]) if k in df else "n/a" for i in range(len(df))] + [paper]
             for k, (_, paper) in PAPER.items()]
    fig, ax = plt.subplots(figsize=(4.5 + 1.6 * (len(cols) + 1), 0.42 * len(PAPER) + 1.4))
    ax.axis("off")
    tab = ax.table(cellText=cells, rowLabels=[lab for lab, _ in PAPER.values()], colLabels=cols + ["paper"],
                   loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.scale(1.0, 1.6)
    fig.suptitle("continuum claims: model vs paper (n/a: source missing or below its noise floor)", fontsize=10)
    fig.tight_layout()
    return fig


def overview_figure(df: pd.DataFrame):
    """Three panels across angles: measured network period vs geometric λ; max |P| per source;
    vortices / antivortices per supercell per source."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.9))
    th = df["theta_deg"].to_numpy(float)
    ax[0].plot(th, df["moire_period_A"], "k--o", label="geometric λ = a / 2 sin(θ/2)")
    ax[0].plot(th, df["network_period_A"], "rs", ms=8, mfc="none", label="measured network period")
    for key, mk in (("100", "^"), ("110", "v")):
        col = f"cross_section_{key}_spacing_A"
        if df[col].notna().any():
            ax[0].errorbar(th, df[col], yerr=df[f"cross_section_{key}_spacing_std_A"], fmt=mk, capsize=3,
                           label=f"cross-section [{key}] spacing")
    ax[0].set_xlabel("twist θ (°)")
    ax[0].set_ylabel("period (Å)")
    ax[0].legend(fontsize=7)
    for col, lab, mk in (("max_P_phasefield", "phase field", "o"), ("max_P_atomistic", "atomistic (Ti off-centring)", "s")):
        if df[col].notna().any():
            ax[1].plot(th, df[col], mk + "-", label=lab)
    ax[1].set_xlabel("twist θ (°)")
    ax[1].set_ylabel("max |P| (C/m²)")
    if ax[1].lines:
        ax[1].legend(fontsize=7)
    else:
        ax[1].text(0.5, 0.5, "no polarisation artifacts yet", ha="center", va="center", transform=ax[1].transAxes)
    w = 0.8 / len(SOURCES)
    xs = np.arange(len(df))
    for i, s in enumerate(SOURCES):
        v, a = df[f"{s}_vortices_per_cell"].to_numpy(float), df[f"{s}_antivortices_per_cell"].to_numpy(float)
        if np.isfinite(v).any():
            ax[2].bar(xs + i * w - 0.4 + w / 2, np.nan_to_num(v), w, label=f"{s} vortices (n=+1)", color=f"C{i}")
            ax[2].bar(xs + i * w - 0.4 + w / 2, -np.nan_to_num(a), w, color=f"C{i}", alpha=0.45, hatch="//")
    ax[2].axhline(0, color="k", lw=0.8)
    ax[2].set_xticks(xs, [f"{t:.2f}°" for t in th])
    ax[2].set_ylabel("per supercell: vortices (up) / antivortices (down)")
    if ax[2].patches:
        ax[2].legend(fontsize=7)
    fig.tight_layout()
    return fig
