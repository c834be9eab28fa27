"""Per-field results of the analysis and their outputs: vortices.csv rows and vortices.zarr.

vortices.zarr holds, per field `{name}` (dpc, phasefield, atomistic_p{plane}, experiment_k): `{name}_field`
(xy, {name}_y, {name}_x), extra maps (COM, mrad), `{name}_winding` (plaquette grid); the classified network
sites `sites_{node,wall_midpoint,domain}` and the geometric `nodes_coincidence`, `nodes_anticoincidence` (Å);
the low-passed `interlayer_twist` used for the sites; phase-field per-plane node loops; attrs `summary`
(JSON per field) and `claims` (JSON of the continuum-claims numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from twistox.analysis.nodes import CLASSES, Sites
from twistox.analysis.noise import Floor
from twistox.analysis.sources import VectorField

CSV_COLUMNS = ["source", "x", "y", "winding", "helicity", "circulation", "sample", "field", "plane", "kind",
               "strength", "node_distance", "d_coincidence", "d_anticoincidence", "site", "d_site",
               "ring_magnitude", "snr", "significant"]
NAN = float("nan")


@dataclass
class FieldResult:
    """Defects, winding map, noise floor, masking and site classes of one VectorField."""

    field: VectorField
    defects: list
    winding: np.ndarray
    px: np.ndarray
    py: np.ndarray
    smoothing_px: float
    floor: Floor
    masked_plaquettes: int
    masked_area_A2: float
    node_d: np.ndarray = field(default_factory=lambda: np.zeros(0))
    d_aa: np.ndarray = field(default_factory=lambda: np.zeros(0))
    d_ab: np.ndarray = field(default_factory=lambda: np.zeros(0))
    site: list = field(default_factory=list)
    d_site: np.ndarray = field(default_factory=lambda: np.zeros(0))
    loops: dict = field(default_factory=dict)

    @property
    def significant(self) -> list:
        return [d for d in self.defects if d.significant]

    def summary(self, match_radius: float) -> dict:
        """Counts of significant defects (vortices n > 0, antivortices n < 0), site fractions, noise, masking."""
        sig = np.array([d.significant for d in self.defects], bool)
        n = np.array([d.winding for d in self.defects], int)[sig] if sig.size else np.zeros(0, int)
        cells = max(self.field.n_cells, 1e-12)
        nd = self.node_d[sig] if self.node_d.size else np.zeros(0)
        nd = nd[np.isfinite(nd)]
        circ = [d.circulation for d in self.significant if d.winding > 0]
        sites = [s for s, ok in zip(self.site, sig) if ok] if self.site else []
        area = self.winding.size * float(self.px[1] - self.px[0]) * float(self.py[1] - self.py[0]) \
            if self.px.size > 1 and self.py.size > 1 else NAN
        out = {
            "source": self.field.source, "plane": self.field.plane, "units": self.field.units,
            "periodic": self.field.periodic, "n_cells": self.field.n_cells, "smoothing_px": self.smoothing_px,
            "n_vortices": int((n > 0).sum()), "n_antivortices": int((n < 0).sum()),
            "n_insignificant": int((~sig).sum()),
            "vortices_per_cell": float((n > 0).sum() / cells), "antivortices_per_cell": float((n < 0).sum() / cells),
            "mean_winding": float(n.mean()) if n.size else NAN,
            "total_winding": int(self.winding.sum()),
            "n_cw": circ.count("cw"), "n_ccw": circ.count("ccw"),
            "cw_fraction": circ.count("cw") / (circ.count("cw") + circ.count("ccw"))
            if circ.count("cw") + circ.count("ccw") else NAN,
            "max_magnitude": float(np.nanmax(self.field.magnitude)) if np.isfinite(self.field.magnitude).any() else NAN,
            "node_distance_mean": float(nd.mean()) if nd.size else NAN,
            "node_distance_median": float(np.median(nd)) if nd.size else NAN,
            "node_distance_max": float(nd.max()) if nd.size else NAN,
            "fraction_at_nodes": float((nd <= match_radius).mean()) if nd.size else NAN,
            "n_nonfinite": self.field.n_nonfinite, "masked_plaquettes": self.masked_plaquettes,
            "masked_area_A2": self.masked_area_A2,
            "masked_fraction": self.masked_area_A2 / area if area and np.isfinite(area) else NAN,
            **self.floor.as_dict(), **self.loops,
        }
        for c in CLASSES + ("other",):
            out[f"fraction_{c}"] = sites.count(c) / len(sites) if sites else NAN
        # windings of the significant defects classified at a node (the loop winding may enclose several)
        at_node = [d.winding for d, s in zip(self.significant, sites) if s == "node"]
        out["node_site_winding_mean"] = float(np.mean(at_node)) if at_node else NAN
        return out


def defect_table(results: list[FieldResult], sample: str) -> pd.DataFrame:
    """vortices.csv rows (every defect, with its `significant` flag); an empty table keeps the header."""
    rows = []
    for r in results:
        for k, d in enumerate(r.defects):
            rows.append({"sample": sample, "source": r.field.source, "field": r.field.name,
                         "plane": r.field.plane if r.field.plane >= 0 else "", "x": d.x, "y": d.y,
                         "winding": d.winding, "helicity": d.helicity, "circulation": d.circulation, "kind": d.kind,
                         "strength": d.strength, "node_distance": r.node_d[k], "d_coincidence": r.d_aa[k],
                         "d_anticoincidence": r.d_ab[k], "site": r.site[k] if r.site else "",
                         "d_site": r.d_site[k] if r.d_site.size else NAN, "ring_magnitude": d.ring_magnitude,
                         "snr": d.snr, "significant": d.significant})
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None      # JSON has no NaN: null
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def analysis_dataset(results: list[FieldResult], sites: Sites, settings: dict, match_radius: float) -> xr.Dataset:
    """vortices.zarr without the sample-level attrs (added by the stage)."""
    ds = xr.Dataset()
    summaries = {}
    for r in results:
        f, p = r.field, r.field.name
        yd, xd, pyd, pxd = f"{p}_y", f"{p}_x", f"{p}_py", f"{p}_px"
        coords = {yd: (yd, f.y, {"units": "Å"}), xd: (xd, f.x, {"units": "Å"}), "xy": ["x", "y"]}
        ds[f"{p}_field"] = xr.DataArray(np.stack([f.vx, f.vy]), dims=["xy", yd, xd], coords=coords,
                                        attrs={"units": f.units, "description": f.description, "source": f.source,
                                               "n_nonfinite": f.n_nonfinite})
        for name, (arr, units) in f.extra.items():
            ds[f"{p}_{name}"] = xr.DataArray(arr, dims=["xy", yd, xd], coords=coords, attrs={"units": units})
        ds[f"{p}_winding"] = xr.DataArray(
            r.winding.astype(np.int32), dims=[pyd, pxd],
            coords={pyd: (pyd, r.py, {"units": "Å"}), pxd: (pxd, r.px, {"units": "Å"})},
            attrs={"units": "1", "description": "plaquette winding number (corners (i,j)..(i+1,j+1), CCW); "
                   "no |v| threshold, non-finite corners masked (0)", "smoothing_px": r.smoothing_px,
                   "smoothing_A": settings["smoothing_A"], "periodic": f.periodic,
                   "masked_plaquettes": r.masked_plaquettes, "masked_area_A2": r.masked_area_A2})
        summaries[p] = r.summary(match_radius)
    named = {"nodes_coincidence": sites.coincidence, "nodes_anticoincidence": sites.anticoincidence,
             **{f"sites_{c}": sites.of(c) for c in CLASSES}}
    for name, arr in named.items():
        ds[name] = xr.DataArray(arr.reshape(-1, 2), dims=[name.replace("nodes_", "node_"), "xy"],
                                coords={"xy": ["x", "y"]}, attrs={"units": "Å"})
    if sites.twist is not None:
        ds["interlayer_twist"] = xr.DataArray(
            sites.twist, dims=["twist_y", "twist_x"], coords={"twist_y": ("twist_y", sites.y, {"units": "Å"}),
                                                              "twist_x": ("twist_x", sites.x, {"units": "Å"})},
            attrs={"units": "deg", "description": "low-passed local interlayer twist the sites were found on"})
    ds.attrs.update({
        "fields": [r.field.name for r in results], "summary": json.dumps(_jsonable(summaries)),
        "sites_source": sites.source, "sites_note": sites.note, "site_counts": json.dumps(sites.counts()),
        "site_registry": json.dumps(sites.registry()),
        "nodes_used": sites.source, "supercell_length": sites.L, "moire_period": sites.moire_period,
        "match_radius": match_radius, "settings": json.dumps(_jsonable(settings)),
    })
    return ds
