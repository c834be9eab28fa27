"""The analysis stage: topological defects of every field source of a sample, classified by network site,
plus the paper's continuum claims; what scripts/analysis.py calls (`run`).

Sources (twistox.analysis.sources / .experiment): ``dpc`` (E_proj from the simulated 4D-STEM COM),
``phasefield`` (E_projected), ``atomistic`` (B-site off-centring P per interface plane) and
``experiment`` (measured COM). Physical fields are analysed (E, not the COM, which is −E up to a
factor): winding numbers do not care, but CW/CCW flips under v → −v.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import xarray as xr

from twistox.analysis import claims as cl
from twistox.analysis import noise as nz
from twistox.analysis import periodicity as per
from twistox.analysis import topology as topo
from twistox.analysis.defects import find_defects
from twistox.analysis.nodes import Sites, find_sites, rescaled_supercell
from twistox.analysis.results import FieldResult, _jsonable, analysis_dataset, defect_table
from twistox.analysis.sources import DataError, VectorField, atomistic_fields, dpc_field, phasefield_field

log = logging.getLogger("twistox")


def settings(cfg: dict) -> dict:
    """The validated `analysis` config section with the schema's defaults filled in (the only defaults)."""
    from twistox.core.config import _check, _schema

    s = json.loads(json.dumps(cfg or {}))
    _check(s, _schema("analysis"), ("analysis",))
    return s


def cell_side(ds: xr.Dataset | None, default: float) -> float:
    """In-plane side (Å) of the cell an artifact lives in: its ``supercell_length`` attr (relax rescales the
    rigid supercell to the potential's a0, and every artifact of the relaxed structure records that
    side), else ``default`` (supercell.zarr's)."""
    if ds is None or "supercell_length" not in ds.attrs:
        return float(default)
    return float(ds.attrs["supercell_length"])


def analyse_field(vf: VectorField, s: dict) -> FieldResult:
    """Defects of one field: winding map on the full grid, significance against its noise floor."""
    if vf.n_nonfinite and s["nonfinite"] == "error":
        raise DataError(f"field {vf.name}: {vf.n_nonfinite} non-finite (NaN/inf) points; "
                        "config key 'analysis.nonfinite' is 'error' (allowed: mask, error)")
    h = float(min(vf.x[1] - vf.x[0], vf.y[1] - vf.y[0]))
    sm = s["smoothing_A"] / h if s["smoothing_A"] > 0 else 0.0
    floor = nz.field_floor(vf.source, vf.vx, vf.vy, vf.periodic, s["noise_floor"], vf.uncertainty)
    defects, wmap = find_defects(vf.vx, vf.vy, vf.x, vf.y, periodic=vf.periodic, smoothing_px=sm,
                                 merge_radius=s["merge_radius_A"], ring_radius=s["ring_radius_A"],
                                 min_strength=s["min_strength"], noise=floor.sigma, min_snr=s["min_snr"])
    grid = topo.Grid.from_coords(vf.x, vf.y, vf.periodic)
    px, py = grid.plaquette_centres()
    masked = int((~topo.plaquette_mask(vf.vx, vf.vy, vf.periodic)).sum())
    if masked:
        log.warning("%s: %d non-finite points mask %d plaquettes (%.1f Å²); windings there are not counted",
                    vf.name, vf.n_nonfinite, masked, masked * grid.dx * grid.dy)
    return FieldResult(vf, defects, wmap, px, py, sm, floor, masked, masked * grid.dx * grid.dy)


def match_sites(res: FieldResult, sites: Sites, s: dict) -> None:
    """Site class, node distances and node-loop windings of a result (minimum image, supercell period)."""
    nd = len(res.defects)
    if res.field.source == "experiment":
        # a measured map is not registered to the simulation cell: positions are not comparable
        res.node_d = res.d_aa = res.d_ab = res.d_site = np.full(nd, np.nan)
        res.site = [""] * nd
        return
    box = (sites.L, sites.L)
    res.node_d = topo.node_distances(res.defects, sites.node, box)
    res.d_aa = topo.node_distances(res.defects, sites.coincidence, box)
    res.d_ab = topo.node_distances(res.defects, sites.anticoincidence, box)
    res.site, res.d_site = sites.classify(np.array([[d.x, d.y] for d in res.defects]).reshape(-1, 2),
                                          s["match_radius_frac"] * sites.moire_period)
    if res.field.periodic and len(sites.node):
        loops = cl.node_loops(res.field, sites.node, s["node_loop_radius_frac"] * sites.moire_period)
        res.loops = cl.loop_summary(loops, res.floor.sigma, s["min_snr"], cl.neighbour_pairs(sites.node, sites.L))


def network_period(strain: xr.Dataset | None, results: list[FieldResult]) -> tuple[per.Period | None, str]:
    """Strongest period of the network: interlayer twist map, else |ε_xy| on the interface planes (strain.zarr),
    else |field| of the first periodic simulated source. Non-finite maps are skipped (said in the source)."""
    maps = []
    if strain is not None and "interlayer_twist" in strain:
        t = strain["interlayer_twist"].transpose("y", "x")
        maps.append((t.values, t["x"].values, t["y"].values, "strain interlayer_twist"))
    if strain is not None and "eps_xy" in strain:
        e = strain["eps_xy"]
        planes = [p for p in strain.attrs.get("interface_planes", []) if p in e["plane"].values] or list(e["plane"].values)
        maps.append((e.sel(plane=planes).transpose("plane", "y", "x").values.mean(axis=0), e["x"].values,
                     e["y"].values, "strain eps_xy"))
    maps += [(r.field.magnitude, r.field.x, r.field.y, f"|{r.field.name}|") for r in results
             if r.field.source != "experiment" and r.field.periodic]
    skipped = []
    for m, x, y, name in maps:
        if not np.isfinite(m).all():
            skipped.append(name)
            continue
        if np.ptp(m) > 0:
            p = per.dominant_period_2d(m, x[1] - x[0], y[1] - y[0], periodic=True)
            return p, name + (f" (skipped non-finite: {', '.join(skipped)})" if skipped else "")
    return None, ""


def cross_section_spacings(stem: xr.Dataset | None, min_period: float) -> dict[str, per.Spacing]:
    """Dark-line spacings of stem.zarr cross sections (cross_section_100, cross_section_110), keyed '100', '110'.

    The lateral axis is the last dim other than 'z'; extra dims (detector, defocus) take their first entry."""
    out: dict[str, per.Spacing] = {}
    for key in ("100", "110"):
        name = f"cross_section_{key}"
        if stem is None or name not in stem:
            continue
        da = stem[name]
        spatial = [d for d in da.dims if d in ("x", "y", "z", "s", "lateral")] or list(da.dims[-2:])
        da = da.isel({d: 0 for d in da.dims if d not in spatial})
        lat = [d for d in da.dims if d != "z"][-1]
        c = da[lat].values if lat in da.coords else np.arange(da.sizes[lat], dtype=float)
        img = np.asarray(da.transpose(..., lat).values, float)
        try:
            out[key] = per.line_spacing(img.reshape(-1, img.shape[-1]), float(c[1] - c[0]), min_period=min_period,
                                        periodic=True)
        except ValueError:
            continue
    return out


def phasefield_skyrmion(pf: xr.Dataset | None, floor: float) -> xr.DataArray | None:
    """Skyrmion number Q(z) of the phase-field P per z slice (Berg–Lüscher, periodic; |P| < floor masked)."""
    if pf is None or "P" not in pf or "z" not in pf["P"].dims:
        return None
    P = pf["P"].transpose("component", "z", "y", "x")
    labels = [str(v) for v in P["component"].values] if "component" in P.coords else ["x", "y", "z"]
    comp = [P.isel(component=labels.index(c)).values for c in ("x", "y", "z")]
    q = [topo.skyrmion_number(comp[0][k], comp[1][k], comp[2][k], floor=floor) for k in range(P.sizes["z"])]
    return xr.DataArray(np.array(q), dims=["pf_z"], coords={"pf_z": ("pf_z", P["z"].values, {"units": "Å"})},
                        attrs={"units": "1", "description": "skyrmion number of P per z slice (Berg-Luscher), "
                               f"plaquettes with |P| < {floor} C/m² masked"})


def sample_claims(results: list[FieldResult], pf: xr.Dataset | None, sites: Sites, s: dict
                  ) -> tuple[dict, xr.Dataset | None]:
    """The continuum-claims numbers of a sample (NaN where the source is missing)."""
    out = {k: float("nan") for k in ("pf_max_P_C_m2", "pf_P_decay_length_A", "pf_P_decay_length_below_A",
                                     "pf_P_decay_length_above_A", "pf_P_node_winding_mean", "pf_P_node_vortex_fraction",
                                     "pf_P_node_curl_fraction",
                                     "pf_alternate_fraction", "pf_reverse_fraction", "pf_Eproj_node_winding",
                                     "atomistic_node_winding", "atomistic_node_cw_fraction", "atomistic_cw_fraction",
                                     "dpc_node_winding", "pf_Eproj_node_site_winding")}
    ds = None
    if pf is not None and "P" in pf:
        summ, ds = cl.phasefield_claims(pf, sites.node, sites.L, s["node_loop_radius_frac"] * sites.moire_period,
                                        float(s["noise_floor"]["phasefield_P_C_m2"]), s["min_snr"])
        out.update(summ)
    by = {}
    for r in results:
        by.setdefault(r.field.source, []).append(r)
    for src, key in (("phasefield", "pf_Eproj_node_winding"), ("atomistic", "atomistic_node_winding"),
                     ("dpc", "dpc_node_winding")):
        w = [v for r in by.get(src, []) for v in r.loops.get("node_windings", []) if v is not None]
        out[key] = float(np.mean(w)) if w else float("nan")
    sw = [r.summary(0.0)["node_site_winding_mean"] for r in by.get("phasefield", [])]
    out["pf_Eproj_node_site_winding"] = float(np.nanmean(sw)) if np.isfinite(sw).any() else float("nan")
    at = by.get("atomistic", [])
    cw = sum(r.loops.get("node_cw", 0) for r in at)
    ccw = sum(r.loops.get("node_ccw", 0) for r in at)
    out["atomistic_node_cw_fraction"] = cw / (cw + ccw) if cw + ccw else float("nan")
    cw = sum(r.summary(0.0)["n_cw"] for r in at)
    ccw = sum(r.summary(0.0)["n_ccw"] for r in at)
    out["atomistic_cw_fraction"] = cw / (cw + ccw) if cw + ccw else float("nan")
    out["sites_source"] = sites.source
    return out, ds


@dataclass
class Outputs:
    """What the analysis rule writes: vortices.zarr dataset, vortices.csv table, figures by output name."""

    dataset: xr.Dataset
    table: object
    figures: dict
    results: list
    claims: dict


def beam_energy_eV(cfg: dict, stem: xr.Dataset | None, stem_cfg: dict | None) -> float:
    """config analysis.beam_energy_kV > stem.zarr attrs > stem.energy_kev > 300 kV (only for COM <-> E_proj)."""
    kv = cfg.get("beam_energy_kV") or (stem.attrs.get("energy_kev") if stem is not None else None) \
        or (stem_cfg or {}).get("energy_kev") or 300.0
    return float(kv) * 1e3


def run(supercell: xr.Dataset, *, stem: xr.Dataset | None, phasefield: xr.Dataset | None,
        strain: xr.Dataset | None, cfg: dict, sample: str, b_number: int, energy_eV: float,
        experiment: list[VectorField] = (), title: str = "") -> Outputs:
    """Analyse every available source of one sample (see module docstring)."""
    from twistox.analysis import figures

    s = settings(cfg)
    L = float(supercell.attrs["supercell_length"])
    fields: list[tuple[VectorField, float]] = []   # each source in its own artifact's cell (side in Å)
    side = {name: cell_side(ds, L) for name, ds in (("stem", stem), ("phasefield", phasefield), ("strain", strain))}
    if stem is not None and "dpc" in s["sources"]:
        fields.append((dpc_field(stem, side["stem"], energy_eV), side["stem"]))
    if phasefield is not None and "phasefield" in s["sources"]:
        fields.append((phasefield_field(phasefield, side["phasefield"], energy_eV), side["phasefield"]))
    if strain is not None and "atomistic" in s["sources"]:
        fields += [(f, side["strain"]) for f in atomistic_fields(strain, side["strain"])]
    fields += [(f, L) for f in experiment]
    # sites in the frame of the twist map (the relaxed cell), moved to each field's cell below
    frame = rescaled_supercell(supercell, side["strain"])
    sites = find_sites(frame, strain, s["nodes"], b_number, s["node_harmonics"], s["twist_flat_deg"])
    log.info("sites from %s: %s%s", sites.source, sites.counts(), f" ({sites.note})" if sites.note else "")
    reg = sites.registry()
    if sites.source == "interlayer_twist" and "domain_to_coincidence_A" in reg:
        log.info("domain centres %.2f Å max from the AA (coincidence) sites (%.3f λ), twist there %s deg; nodes "
                 "%.2f Å max from the anti-coincidence sites, twist there %s deg",
                 max(reg["domain_to_coincidence_A"]), reg["domain_to_coincidence_max_over_lambda"],
                 np.round(reg.get("twist_at_domain_deg", []), 2).tolist(),
                 max(reg.get("node_to_anticoincidence_A", [np.nan])), np.round(reg.get("twist_at_node_deg", []), 2).tolist())
    match_radius = s["match_radius_frac"] * sites.moire_period
    results = []
    for f, Lf in fields:
        r = analyse_field(f, s)
        match_sites(r, sites.scaled(Lf), s)
        q = r.summary(match_radius)
        log.info("%s: %d vortices (cw %d, ccw %d), %d antivortices significant at sigma %.3g %s (%s); "
                 "%d insignificant; total winding %d; node winding %s", f.name, q["n_vortices"], q["n_cw"],
                 q["n_ccw"], q["n_antivortices"], q["noise_sigma"], f.units, q["noise_method"],
                 q["n_insignificant"], q["total_winding"], q.get("node_winding_mean", "n/a"))
        results.append(r)
    period, period_src = network_period(strain, results)
    spacings = cross_section_spacings(stem, s["line_min_period_A"])
    sky = phasefield_skyrmion(phasefield, float(s["noise_floor"]["phasefield_P_C_m2"]))
    claims, pf_ds = sample_claims(results, phasefield, sites, s)
    ds = analysis_dataset(results, sites, s, match_radius)
    if pf_ds is not None:
        ds = ds.merge(pf_ds)
    if sky is not None:
        ds["phasefield_skyrmion_number"] = sky
    ds.attrs.update({
        "network_period": period.value if period else float("nan"),
        "network_period_uncertainty": period.uncertainty if period else float("nan"),
        "network_period_source": period_src, "claims": json.dumps(_jsonable(claims)),
        "beam_energy_eV": energy_eV, "theta_deg": supercell.attrs["theta_deg"], "sigma": supercell.attrs["sigma"],
    })
    for key, sp in spacings.items():
        ds.attrs.update({f"cross_section_{key}_spacing": sp.mean, f"cross_section_{key}_spacing_std": sp.std,
                         f"cross_section_{key}_n_lines": sp.n})
    figs = {"vortices": figures.fields_figure(results, sites, s["figure_tiles"], title),
            "periodicity": figures.periodicity_figure(results, spacings, stem, sites, period, period_src,
                                                      s["line_min_period_A"])}
    return Outputs(ds, defect_table(results, sample), figs, results, claims)
