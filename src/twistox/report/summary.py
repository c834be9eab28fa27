"""The cross-angle report: one summary row per sample from whatever artifacts exist, and overview figures.

A column whose stage has not produced its artifact is NaN, never estimated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from twistox.core.io import read_dataset

SOURCES = ("dpc", "phasefield", "atomistic", "experiment")


def _max_norm(da, comp_dim: str) -> float:
    v = np.asarray(da.values, float)
    ax = da.dims.index(comp_dim)
    return float(np.nanmax(np.sqrt(np.nansum(v**2, axis=ax))))


def sample_row(system: str, sample: str, sample_dir: str | Path) -> dict:
    """Summary of one sample: geometry (supercell.zarr), |P| maxima (phasefield.zarr, strain.zarr),
    network period, cross-section spacings and vortex statistics per source (dpc.zarr)."""
    d = Path(sample_dir)
    row: dict = {"system": system, "sample": sample}
    sc = read_dataset(d / "supercell.zarr")
    row.update({"theta_requested_deg": sc.attrs.get("theta_requested_deg", np.nan),
                "theta_deg": sc.attrs.get("theta_deg", np.nan), "sigma": sc.attrs.get("sigma", np.nan),
                "m": sc.attrs.get("m", np.nan), "n": sc.attrs.get("n", np.nan),
                "moire_period_A": sc.attrs.get("moire_period", np.nan),
                "supercell_length_A": sc.attrs.get("supercell_length", np.nan), "n_atoms": sc.attrs.get("n_atoms", np.nan)})
    row["max_P_phasefield"] = np.nan
    if (d / "phasefield.zarr").exists():
        pf = read_dataset(d / "phasefield.zarr")
        if "P" in pf:
            row["max_P_phasefield"] = _max_norm(pf["P"], "component" if "component" in pf["P"].dims else pf["P"].dims[0])
    row["max_P_atomistic"] = np.nan
    if (d / "strain.zarr").exists():
        st = read_dataset(d / "strain.zarr")
        if "polarization" in st:
            P = st["polarization"]
            planes = [p for p in st.attrs.get("interface_planes", []) if p in P["plane"].values]
            P = P.sel(plane=planes) if planes else P
            if np.isfinite(P.values).any():
                row["max_P_atomistic"] = _max_norm(P, "xy" if "xy" in P.dims else P.dims[-1])
    for k in ("network_period_A", "network_period_err_A", "cross_section_100_spacing_A",
              "cross_section_100_spacing_std_A", "cross_section_110_spacing_A", "cross_section_110_spacing_std_A"):
        row[k] = np.nan
    row["network_period_source"] = ""
    for s in SOURCES:
        for k in ("vortices_per_cell", "antivortices_per_cell", "mean_winding", "n_cw", "n_ccw",
                  "node_distance_mean_A"):
            row[f"{s}_{k}"] = np.nan
    if (d / "dpc.zarr").exists():
        ds = read_dataset(d / "dpc.zarr")
        a = ds.attrs
        row["network_period_A"] = a.get("network_period", np.nan)
        row["network_period_err_A"] = a.get("network_period_uncertainty", np.nan)
        row["network_period_source"] = a.get("network_period_source", "")
        for key in ("100", "110"):
            row[f"cross_section_{key}_spacing_A"] = a.get(f"cross_section_{key}_spacing", np.nan)
            row[f"cross_section_{key}_spacing_std_A"] = a.get(f"cross_section_{key}_spacing_std", np.nan)
        summ = json.loads(a.get("summary", "{}"))
        for s in SOURCES:
            parts = [v for v in summ.values() if v["source"] == s]
            if not parts:
                continue
            # several fields of one source (atomistic planes, experiment files): pool their defects
            cells = sum(p["n_cells"] for p in parts)
            nv = sum(p["n_vortices"] for p in parts)
            na = sum(p["n_antivortices"] for p in parts)
            row[f"{s}_vortices_per_cell"] = nv / cells if cells else np.nan
            row[f"{s}_antivortices_per_cell"] = na / cells if cells else np.nan
            row[f"{s}_mean_winding"] = (nv - na) / (nv + na) if nv + na else np.nan
            row[f"{s}_n_cw"] = sum(p["n_cw"] for p in parts)
            row[f"{s}_n_ccw"] = sum(p["n_ccw"] for p in parts)
            nd = [p["node_distance_mean"] for p in parts if np.isfinite(p["node_distance_mean"])]
            row[f"{s}_node_distance_mean_A"] = float(np.mean(nd)) if nd else np.nan
    return row


def summary_table(samples: list[tuple[str, str, str | Path]]) -> pd.DataFrame:
    """One row per (system, sample, directory), sorted by system and twist angle."""
    df = pd.DataFrame([sample_row(*s) for s in samples])
    return df.sort_values(["system", "theta_deg"]).reset_index(drop=True) if len(df) else df


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
