"""The report stage: one summary row per sample from whatever artifacts exist (what scripts/report.py calls).

A column whose stage has not produced its artifact is NaN, never estimated. The analysis artifact is
vortices.zarr; dpc.zarr (its name until this release) is still read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from twistox.core.io import read_dataset

SOURCES = ("dpc", "phasefield", "atomistic", "experiment")
# continuum-claims numbers (vortices.zarr attrs "claims"; twistox.analysis.stage.sample_claims)
CLAIMS = ("pf_max_P_C_m2", "pf_P_decay_length_A", "pf_P_node_winding_mean", "pf_P_node_curl_fraction",
          "pf_alternate_fraction", "pf_reverse_fraction", "pf_Eproj_node_winding", "pf_Eproj_node_site_winding",
          "atomistic_node_winding", "atomistic_node_cw_fraction", "atomistic_cw_fraction", "dpc_node_winding")


# image_inference.zarr attrs (twistox.imaging.inference.stage) -> summary columns "image_<attr>"
IMAGE_ATTRS = ("theta_deg", "theta_uncertainty_deg", "theta_error_deg", "local_twist_correlation",
               "gpa_layer0_exy_correlation", "gpa_layer1_exy_correlation",
               "gpa_mean_lattice_exy_correlation_layer0", "gpa_mean_lattice_exy_correlation_layer1")


def analysis_artifact(sample_dir: str | Path) -> Path | None:
    """The sample's analysis artifact: vortices.zarr, else the legacy dpc.zarr (one release), else None."""
    for name in ("vortices.zarr", "dpc.zarr"):
        if (Path(sample_dir) / name).exists():
            return Path(sample_dir) / name
    return None


def _max_norm(da, comp_dim: str) -> float:
    v = np.asarray(da.values, float)
    ax = da.dims.index(comp_dim)
    return float(np.nanmax(np.sqrt(np.nansum(v**2, axis=ax))))


def sample_row(system: str, sample: str, sample_dir: str | Path) -> dict:
    """Summary of one sample: geometry (supercell.zarr), |P| maxima (phasefield.zarr, strain.zarr),
    network period, cross-section spacings, vortex statistics per source and the continuum-claims numbers
    (vortices.zarr, or a legacy dpc.zarr), the image-derived twist (image_inference.zarr)."""
    d = Path(sample_dir)
    row: dict = {"system": system, "sample": sample}
    sc = read_dataset(d / "supercell.zarr")
    row.update({"theta_requested_deg": sc.attrs.get("theta_requested_deg", np.nan),
                "theta_deg": sc.attrs.get("theta_deg", np.nan), "sigma": sc.attrs.get("sigma", np.nan),
                "m": sc.attrs.get("m", np.nan), "n": sc.attrs.get("n", np.nan),
                "moire_period_A": sc.attrs.get("moire_period", np.nan),
                "supercell_length_A": sc.attrs.get("supercell_length", np.nan), "n_atoms": sc.attrs.get("n_atoms", np.nan)})
    # committee force disagreement (relaxed.zarr; eV/Å): final-structure max and p99 over atoms, MD largest max
    rel = read_dataset(d / "relaxed.zarr").attrs if (d / "relaxed.zarr").exists() else {}
    for col, key in (("relax_committee_std_max_eV_per_A", "committee_std_max"),
                     ("relax_committee_std_p99_eV_per_A", "committee_std_p99"),
                     ("relax_md_committee_std_max_eV_per_A", "md_committee_std_max"),
                     ("boundary_energy_rigid_J_m2", "boundary_energy_rigid_J_m2"),  # twistox.relax.boundary
                     ("boundary_energy_relaxed_J_m2", "boundary_energy_relaxed_J_m2")):
        row[col] = float(rel.get(key, np.nan))
    row["max_P_phasefield"] = np.nan
    if (d / "phasefield.zarr").exists():
        pf = read_dataset(d / "phasefield.zarr")
        if "P" in pf:
            row["max_P_phasefield"] = _max_norm(pf["P"], "component" if "component" in pf["P"].dims else pf["P"].dims[0])
    row["max_P_atomistic"] = np.nan
    st = read_dataset(d / "strain.zarr") if (d / "strain.zarr").exists() else None
    art = analysis_artifact(d)
    ds = read_dataset(art) if art is not None else None
    row.update(network_row(st, ds))
    if st is not None:
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
    row["sites_source"] = ""
    for s in SOURCES:
        for k in ("vortices_per_cell", "antivortices_per_cell", "mean_winding", "n_cw", "n_ccw",
                  "node_distance_mean_A", "n_insignificant", "masked_area_A2", "fraction_node"):
            row[f"{s}_{k}"] = np.nan
    for k in CLAIMS:
        row[k] = np.nan
    if ds is not None:
        a = ds.attrs
        row["network_period_A"] = a.get("network_period", np.nan)
        row["network_period_err_A"] = a.get("network_period_uncertainty", np.nan)
        row["network_period_source"] = a.get("network_period_source", "")
        for key in ("100", "110"):
            row[f"cross_section_{key}_spacing_A"] = a.get(f"cross_section_{key}_spacing", np.nan)
            row[f"cross_section_{key}_spacing_std_A"] = a.get(f"cross_section_{key}_spacing_std", np.nan)
        row["sites_source"] = a.get("sites_source", a.get("nodes_used", ""))
        claims = json.loads(a.get("claims", "{}"))
        for k in CLAIMS:
            v = claims.get(k)
            row[k] = float(v) if v is not None else np.nan
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
            row[f"{s}_n_insignificant"] = sum(p.get("n_insignificant", 0) for p in parts)
            row[f"{s}_masked_area_A2"] = sum(p.get("masked_area_A2", 0.0) or 0.0 for p in parts)
            fr = [p.get("fraction_node") for p in parts if p.get("fraction_node") is not None]
            row[f"{s}_fraction_node"] = float(np.nanmean(fr)) if fr else np.nan
            row[f"{s}_n_ccw"] = sum(p["n_ccw"] for p in parts)
            nd = [p["node_distance_mean"] for p in parts if p["node_distance_mean"] is not None
                  and np.isfinite(p["node_distance_mean"])]
            row[f"{s}_node_distance_mean_A"] = float(np.mean(nd)) if nd else np.nan
    row.update(image_inference_row(d))
    row.update(dmi_sweep_row(d))
    return row


NETWORK_COLUMNS = ("network_period_eps_xy_interface_A", "network_period_twist_A", "cage_changed_total", "max_dz_A",
                   "domain_to_aa_max_A", "domain_to_aa_max_over_lambda", "twist_domain_mean_deg",
                   "twist_node_mean_deg")


def network_row(strain: xr.Dataset | None, analysis: xr.Dataset | None) -> dict:
    """The relaxed network in numbers (issue 12 item 7): crystal-frame eps_xy period of the two interface planes
    together and interlayer-twist period (strain.zarr attrs ``network_period_eps_xy``, ``_twist``), changed B cages and largest |dz| over all planes; domain
    centres' largest distance to the AA (coincidence) sites and the unfiltered twist at domain centres and
    nodes (vortices.zarr site_registry, only when the sites come from the twist map). NaN where absent (None)."""
    row: dict = {k: np.nan for k in NETWORK_COLUMNS}
    if strain is not None:
        st, a = strain, strain.attrs
        row["network_period_eps_xy_interface_A"] = float(a.get("network_period_eps_xy", np.nan))
        row["network_period_twist_A"] = float(a.get("network_period_twist", np.nan))
        row["cage_changed_total"] = float(a.get("cage_changed_total", np.nan))
        if "max_dz" in st:
            row["max_dz_A"] = float(np.nanmax(st["max_dz"].values))
    if analysis is not None:
        reg = json.loads(analysis.attrs.get("site_registry", "{}"))
        if reg.get("source") == "interlayer_twist" and reg.get("domain_to_coincidence_A"):
            row["domain_to_aa_max_A"] = float(max(reg["domain_to_coincidence_A"]))
            row["domain_to_aa_max_over_lambda"] = float(reg["domain_to_coincidence_max_over_lambda"])
            for cls in ("domain", "node"):
                v = reg.get(f"twist_at_{cls}_deg")
                row[f"twist_{cls}_mean_deg"] = float(np.mean(v)) if v else np.nan
    return row


DMI_COLUMNS = ("pf_dmi_values", "pf_dmi_threshold", "pf_dmi_estimate", "pf_dmi_majority_fraction_D0",
               "pf_dmi_majority_fraction_Dmax", "pf_dmi_Eproj_node_winding_D0", "pf_dmi_Eproj_node_winding_Dmax")


def dmi_sweep_row(sample_dir: str | Path) -> dict:
    """Summary of phasefield_dmi_sweep.zarr (issue 19): swept D (J m²/C²), the single-handedness threshold (a number
    or "none found"), the crude estimate G θ/a, the interface majority-handedness fraction and the mean net E_projected
    winding at the nodes at D = 0 and at the largest D. NaN / "" where the artifact is absent."""
    row: dict = {k: np.nan for k in DMI_COLUMNS}
    row["pf_dmi_values"] = row["pf_dmi_threshold"] = ""
    p = Path(sample_dir) / "phasefield_dmi_sweep.zarr"
    if not p.exists():
        return row
    ds = read_dataset(p)
    D = ds["dmi"].values
    thr = ds.attrs.get("dmi_threshold", "none found")
    row["pf_dmi_values"] = " ".join(f"{v:g}" for v in D)
    row["pf_dmi_threshold"] = thr if isinstance(thr, str) else f"{float(thr):g}"
    row["pf_dmi_estimate"] = float(ds.attrs.get("dmi_estimate", np.nan))
    i0, imax = int(np.argmin(np.abs(D))), int(np.argmax(D))
    frac = ds["interface_majority_fraction"].values
    wind = ds["E_defects_nodes"].values.mean(axis=1)
    row["pf_dmi_majority_fraction_D0"], row["pf_dmi_majority_fraction_Dmax"] = float(frac[i0]), float(frac[imax])
    row["pf_dmi_Eproj_node_winding_D0"], row["pf_dmi_Eproj_node_winding_Dmax"] = float(wind[i0]), float(wind[imax])
    return row


def image_inference_row(sample_dir: str | Path) -> dict:
    """Twist and image-vs-truth numbers of image_inference.zarr as columns ``image_<attr>`` (IMAGE_ATTRS;
    θ in deg, correlations dimensionless); NaN where the artifact or the attr is absent."""
    row = {f"image_{k}": np.nan for k in IMAGE_ATTRS}
    p = Path(sample_dir) / "image_inference.zarr"
    if p.exists():
        a = read_dataset(p).attrs
        for k in IMAGE_ATTRS:
            v = a.get(k)
            row[f"image_{k}"] = float(v) if v is not None else np.nan
    return row


def summary_table(samples: list[tuple[str, str, str | Path]]) -> pd.DataFrame:
    """One row per (system, sample, directory), sorted by system and twist angle."""
    df = pd.DataFrame([sample_row(*s) for s in samples])
    return df.sort_values(["system", "theta_deg"]).reset_index(drop=True) if len(df) else df


def run(samples: list[tuple[str, str, str | Path]]):
    """Summary table and figures of all samples: (DataFrame, {output name: figure})."""
    from twistox.report import figures

    df = summary_table(samples)
    return df, {"overview": figures.overview_figure(df), "claims": figures.claims_figure(df)}
