"""The analysis stage: vortex defects of every field source of a sample, matched to the network nodes.

Sources (twistox.analysis.experiment.VectorField): ``dpc`` (E_proj from the simulated 4D-STEM COM),
``phasefield`` (E_projected), ``atomistic`` (Ti off-centring P, per interface plane) and
``experiment`` (measured COM). Physical fields are analysed (E, not the COM, which is −E
up to a factor): winding numbers do not care, but CW/CCW flips under v → −v.
Node sets: moiré coincidence (AA) and anti-coincidence (AB) sites from the supercell
geometry and, when strain.zarr exists, the maxima of |ε_xy| on the interface planes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from twistox.analysis import periodicity as per
from twistox.analysis import topology as topo
from twistox.analysis.experiment import VectorField

CSV_COLUMNS = ["sample", "source", "field", "plane", "x", "y", "winding", "helicity", "circulation", "kind",
               "strength", "node_distance", "d_coincidence", "d_anticoincidence"]


@dataclass
class Settings:
    """analysis.* config keys that steer the defect search (lengths in Å)."""

    smoothing_A: float = 0.0
    rel_threshold: float = 0.02
    merge_radius_A: float | None = None
    ring_radius_A: float | None = None
    min_strength: float = 0.2
    match_radius_frac: float = 0.25

    @classmethod
    def from_config(cls, cfg: dict) -> "Settings":
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


@dataclass
class FieldResult:
    """Defects and winding map of one VectorField, plus node distances and counts."""

    field: VectorField
    defects: list
    winding: np.ndarray
    px: np.ndarray
    py: np.ndarray
    smoothing_px: float
    node_d: np.ndarray = field(default_factory=lambda: np.zeros(0))
    d_aa: np.ndarray = field(default_factory=lambda: np.zeros(0))
    d_ab: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def summary(self, match_radius: float) -> dict:
        n = np.array([d.winding for d in self.defects], int)
        cells = max(self.field.n_cells, 1e-12)
        nd = self.node_d[np.isfinite(self.node_d)] if self.node_d.size else np.zeros(0)
        circ = [d.circulation for d in self.defects if d.winding > 0]
        return {
            "source": self.field.source, "plane": self.field.plane, "units": self.field.units,
            "periodic": self.field.periodic, "n_cells": self.field.n_cells, "smoothing_px": self.smoothing_px,
            "n_vortices": int((n > 0).sum()), "n_antivortices": int((n < 0).sum()),
            "vortices_per_cell": float((n > 0).sum() / cells), "antivortices_per_cell": float((n < 0).sum() / cells),
            "mean_winding": float(n.mean()) if n.size else float("nan"),
            "total_winding": int(self.winding.sum()),
            "n_cw": circ.count("cw"), "n_ccw": circ.count("ccw"),
            "max_magnitude": float(np.nanmax(self.field.magnitude)),
            "node_distance_mean": float(nd.mean()) if nd.size else float("nan"),
            "node_distance_median": float(np.median(nd)) if nd.size else float("nan"),
            "node_distance_max": float(nd.max()) if nd.size else float("nan"),
            "fraction_at_nodes": float((nd <= match_radius).mean()) if nd.size else float("nan"),
        }


def analyse_field(vf: VectorField, s: Settings) -> FieldResult:
    """Find the defects of one field with the configured smoothing, threshold, merge and ring radii."""
    h = float(min(vf.x[1] - vf.x[0], vf.y[1] - vf.y[0]))
    sm = s.smoothing_A / h if s.smoothing_A > 0 else 0.0
    defects, wmap = topo.find_defects(vf.vx, vf.vy, vf.x, vf.y, periodic=vf.periodic, rel_threshold=s.rel_threshold,
                                      smoothing_px=sm, merge_radius=s.merge_radius_A, ring_radius=s.ring_radius_A,
                                      min_strength=s.min_strength)
    grid = topo.Grid.from_coords(vf.x, vf.y, vf.periodic)
    px, py = grid.plaquette_centres()
    return FieldResult(vf, defects, wmap, px, py, sm)


@dataclass
class Nodes:
    """Network-node candidates (k, 2; Å, in [0, L)²) and which set is used for matching."""

    coincidence: np.ndarray
    anticoincidence: np.ndarray
    strain: np.ndarray | None
    used: str
    L: float
    moire_period: float

    @property
    def chosen(self) -> np.ndarray:
        return {"coincidence": self.coincidence, "anticoincidence": self.anticoincidence,
                "strain": self.strain}[self.used]


def find_nodes(supercell: xr.Dataset, strain: xr.Dataset | None, mode: str, b_number: int) -> Nodes:
    """Moiré sites from the supercell (B-site cation sublattice of each layer) and |ε_xy| maxima from strain.zarr.

    mode: 'auto' (strain maxima when strain.zarr is given, else coincidence sites), 'coincidence',
    'anticoincidence' or 'strain' (requires strain.zarr).
    """
    L = float(supercell.attrs["supercell_length"])
    a = float(supercell.attrs["a"])
    pos = supercell["positions"].values
    num = supercell["numbers"].values
    lay = supercell["layer"].values
    origins = []
    for k in (0, 1):
        sel = (num == b_number) & (lay == k)
        if not sel.any():
            raise ValueError(f"supercell has no B-site atoms (Z={b_number}) in layer {k}")
        origins.append(pos[sel][0])
    angles = supercell.attrs["layer_angles_deg"]
    aa = per.moire_sites(a, angles, origins, L)
    ab = per.moire_sites(a, angles, origins, L, shift=(0.5, 0.5))
    st = None
    if strain is not None and "eps_xy" in strain:
        e = strain["eps_xy"]
        planes = [p for p in strain.attrs.get("interface_planes", []) if p in e["plane"].values] or list(e["plane"].values)
        m = np.abs(e.sel(plane=planes).transpose("plane", "y", "x").values).mean(axis=0)
        if np.isfinite(m).all() and m.max() > 0:
            st = per.field_maxima(m, e["x"].values, e["y"].values)
    if mode == "auto":
        mode = "strain" if st is not None and len(st) else "coincidence"
    if mode == "strain" and (st is None or not len(st)):
        raise ValueError("analysis.nodes = 'strain' needs strain.zarr with a non-zero eps_xy map")
    return Nodes(aa, ab, st, mode, L, float(supercell.attrs["moire_period"]))


def match_nodes(res: FieldResult, nodes: Nodes) -> None:
    """Fill the node distances of a result (minimum image with the supercell period)."""
    if res.field.source == "experiment":
        # A measured map is not registered to the simulation cell: positions are not comparable.
        res.node_d = res.d_aa = res.d_ab = np.full(len(res.defects), np.nan)
        return
    box = (nodes.L, nodes.L)
    res.node_d = topo.node_distances(res.defects, nodes.chosen, box)
    res.d_aa = topo.node_distances(res.defects, nodes.coincidence, box)
    res.d_ab = topo.node_distances(res.defects, nodes.anticoincidence, box)


def defect_table(results: list[FieldResult], sample: str) -> pd.DataFrame:
    """vortices.csv rows (DESIGN.md columns first, then extras); an empty table keeps the header."""
    rows = []
    for r in results:
        for k, d in enumerate(r.defects):
            rows.append({"sample": sample, "source": r.field.source, "field": r.field.name,
                         "plane": r.field.plane if r.field.plane >= 0 else "", "x": d.x, "y": d.y,
                         "winding": d.winding, "helicity": d.helicity, "circulation": d.circulation, "kind": d.kind,
                         "strength": d.strength, "node_distance": r.node_d[k], "d_coincidence": r.d_aa[k],
                         "d_anticoincidence": r.d_ab[k]})
    first = ["source", "x", "y", "winding", "helicity", "circulation"]
    cols = first + [c for c in CSV_COLUMNS if c not in first]
    return pd.DataFrame(rows, columns=cols)


def network_period(strain: xr.Dataset | None, results: list[FieldResult]) -> tuple[per.Period | None, str]:
    """Strongest period of the network: |ε_xy| on the interface (strain.zarr) if present, else |field| of the
    first simulated source. Returns (Period or None, which map)."""
    if strain is not None and "eps_xy" in strain:
        e = strain["eps_xy"]
        planes = [p for p in strain.attrs.get("interface_planes", []) if p in e["plane"].values] or list(e["plane"].values)
        m = e.sel(plane=planes).transpose("plane", "y", "x").values.mean(axis=0)
        x, y = e["x"].values, e["y"].values
        if np.isfinite(m).all() and np.ptp(m) > 0:
            return per.dominant_period_2d(m, x[1] - x[0], y[1] - y[0], periodic=True), "strain eps_xy"
    for r in results:
        if r.field.source != "experiment" and r.field.periodic:
            m = np.nan_to_num(r.field.magnitude)
            if np.ptp(m) > 0:
                return (per.dominant_period_2d(m, r.field.x[1] - r.field.x[0], r.field.y[1] - r.field.y[0],
                                               periodic=True), f"|{r.field.name}|")
    return None, ""


def cross_section_spacings(stem: xr.Dataset | None, min_period: float) -> dict[str, per.Spacing]:
    """Dark-line spacings of stem.zarr cross sections (cross_section_100, cross_section_110), keyed '100', '110'.

    The lateral axis is the last dim other than 'z'; extra dims (detector, defocus) take their first entry."""
    out: dict[str, per.Spacing] = {}
    if stem is None:
        return out
    for key in ("100", "110"):
        name = f"cross_section_{key}"
        if name not in stem:
            continue
        da = stem[name]
        spatial = [d for d in da.dims if d in ("x", "y", "z", "s", "lateral")] or list(da.dims[-2:])
        da = da.isel({d: 0 for d in da.dims if d not in spatial})
        lat = [d for d in da.dims if d != "z"][-1]
        c = da[lat].values if lat in da.coords else np.arange(da.sizes[lat], dtype=float)
        dx = float(c[1] - c[0])
        img = np.asarray(da.transpose(..., lat).values, float)
        try:
            out[key] = per.line_spacing(img.reshape(-1, img.shape[-1]), dx, min_period=min_period, periodic=True)
        except ValueError:
            continue
    return out


def phasefield_skyrmion(pf: xr.Dataset | None, rel_threshold: float) -> xr.DataArray | None:
    """Skyrmion number Q(z) of the phase-field P (component, z, y, x) per z slice (Berg–Lüscher, periodic)."""
    if pf is None or "P" not in pf or "z" not in pf["P"].dims:
        return None
    P = pf["P"].transpose("component", "z", "y", "x")
    labels = [str(v) for v in P["component"].values] if "component" in P.coords else ["x", "y", "z"]
    comp = [P.isel(component=labels.index(c)).values for c in ("x", "y", "z")]
    q = [topo.skyrmion_number(comp[0][k], comp[1][k], comp[2][k], rel_threshold=rel_threshold)
         for k in range(P.sizes["z"])]
    return xr.DataArray(np.array(q), dims=["z"], coords={"z": P["z"].values},
                        attrs={"units": "1", "description": "skyrmion number of P per z slice (Berg-Luscher)"})


def analysis_dataset(results: list[FieldResult], nodes: Nodes, settings: Settings, period, period_source: str,
                     spacings: dict, skyrmion: xr.DataArray | None) -> xr.Dataset:
    """dpc.zarr: per field (prefix = field name) the vector map, extra maps (COM), winding map; node sets;
    network period and cross-section spacings; per-field summaries as JSON attrs."""
    ds = xr.Dataset()
    summaries = {}
    for r in results:
        f, p = r.field, r.field.name
        yd, xd, pyd, pxd = f"{p}_y", f"{p}_x", f"{p}_py", f"{p}_px"
        coords = {yd: (yd, f.y, {"units": "Å"}), xd: (xd, f.x, {"units": "Å"}), "xy": ["x", "y"]}
        ds[f"{p}_field"] = xr.DataArray(np.stack([f.vx, f.vy]), dims=["xy", yd, xd], coords=coords,
                                        attrs={"units": f.units, "description": f.description, "source": f.source})
        for name, (arr, units) in f.extra.items():
            ds[f"{p}_{name}"] = xr.DataArray(arr, dims=["xy", yd, xd], coords=coords, attrs={"units": units})
        ds[f"{p}_winding"] = xr.DataArray(
            r.winding.astype(np.int32), dims=[pyd, pxd],
            coords={pyd: (pyd, r.py, {"units": "Å"}), pxd: (pxd, r.px, {"units": "Å"})},
            attrs={"units": "1", "description": "plaquette winding number (corners (i,j)..(i+1,j+1), CCW)",
                   "smoothing_px": r.smoothing_px, "smoothing_A": settings.smoothing_A, "periodic": f.periodic})
        summaries[p] = r.summary(settings.match_radius_frac * nodes.moire_period)
    for name, arr in (("coincidence", nodes.coincidence), ("anticoincidence", nodes.anticoincidence),
                      ("strain", nodes.strain)):
        if arr is not None:
            ds[f"nodes_{name}"] = xr.DataArray(arr, dims=[f"node_{name}", "xy"], coords={"xy": ["x", "y"]},
                                               attrs={"units": "Å"})
    if skyrmion is not None:
        ds["phasefield_skyrmion_number"] = skyrmion.rename({"z": "pf_z"}).assign_coords(
            pf_z=("pf_z", skyrmion["z"].values, {"units": "Å"}))
    ds.attrs.update({
        "fields": [r.field.name for r in results], "summary": json.dumps(summaries),
        "nodes_used": nodes.used, "supercell_length": nodes.L, "moire_period": nodes.moire_period,
        "match_radius": settings.match_radius_frac * nodes.moire_period,
        "network_period": period.value if period else float("nan"),
        "network_period_uncertainty": period.uncertainty if period else float("nan"),
        "network_period_source": period_source,
        "settings": json.dumps(settings.__dict__),
    })
    for key, sp in spacings.items():
        ds.attrs[f"cross_section_{key}_spacing"] = sp.mean
        ds.attrs[f"cross_section_{key}_spacing_std"] = sp.std
        ds.attrs[f"cross_section_{key}_n_lines"] = sp.n
    return ds


# --------------------------------------------------------------------------- figures

def colour_wheel(vx: np.ndarray, vy: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """RGB image [y, x, 3]: hue = direction of v (0 along +x, counter-clockwise), value = |v| / vmax."""
    from matplotlib.colors import hsv_to_rgb

    mag = np.nan_to_num(np.hypot(vx, vy))
    vmax = vmax or (np.percentile(mag, 99.5) if mag.max() > 0 else 1.0)
    hue = (np.arctan2(np.nan_to_num(vy), np.nan_to_num(vx)) / (2 * np.pi)) % 1.0
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), np.clip(mag / vmax, 0, 1)], axis=-1))


_MARK = {"ccw": ("o", "white"), "cw": ("o", "lime"), "source": ("^", "white"), "sink": ("v", "white"),
         "vortex": ("o", "grey"), "antivortex": ("X", "magenta"), "higher-order": ("*", "red")}


def fields_figure(results: list[FieldResult], nodes: Nodes, tiles: int = 2, title: str = ""):
    """Colour-wheel map of every field with its defects (marker = kind, as in the paper's Fig. 4b,f-i),
    arrows of the field and the network nodes (+); periodic fields tiled tiles x tiles."""
    import matplotlib.pyplot as plt

    n = max(1, len(results))
    fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * n + 1.6, 4.6),
                             gridspec_kw={"width_ratios": [1] * n + [0.35]})
    axes = np.atleast_1d(axes)
    for ax, r in zip(axes[:n], results):
        f = r.field
        t = tiles if f.periodic else 1
        vx, vy = np.tile(f.vx, (t, t)), np.tile(f.vy, (t, t))
        dx, dy = f.x[1] - f.x[0], f.y[1] - f.y[0]
        x0, y0 = f.x[0] - dx / 2, f.y[0] - dy / 2
        lx, ly = f.x.size * dx, f.y.size * dy
        ax.imshow(colour_wheel(vx, vy), origin="lower", extent=[x0, x0 + t * lx, y0, y0 + t * ly],
                  interpolation="nearest")
        step = max(1, int(np.ceil(max(vx.shape) / 24)))
        X, Y = np.meshgrid(x0 + (np.arange(vx.shape[1]) + 0.5) * dx, y0 + (np.arange(vx.shape[0]) + 0.5) * dy)
        mag = np.hypot(vx, vy)
        scale = np.nanmax(mag) or 1.0
        ax.quiver(X[::step, ::step], Y[::step, ::step], (vx / scale)[::step, ::step], (vy / scale)[::step, ::step],
                  color="k", alpha=0.5, scale=30, width=0.004)
        if f.source != "experiment":
            # nodes are L-periodic: draw every image inside the (tiled) field
            nd = nodes.chosen
            reps = int(np.ceil(t * max(lx, ly) / nodes.L)) + 1
            img = np.array([p + (i * nodes.L, j * nodes.L) for i in range(-1, reps) for j in range(-1, reps) for p in nd])
            ax.plot(img[:, 0], img[:, 1], "+", color="w", ms=9, mew=1.5, ls="none")
        for i in range(t):
            for j in range(t):
                for d in r.defects:
                    m, c = _MARK.get(d.kind, ("o", "grey"))
                    ax.plot(d.x + i * lx, d.y + j * ly, m, mfc="none" if m == "o" else c, mec=c, ms=11, mew=2)
        if f.periodic and t > 1:
            ax.plot([x0, x0 + lx, x0 + lx, x0, x0], [y0, y0, y0 + ly, y0 + ly, y0], "w--", lw=1)
        s = r.summary(0.0)
        ax.set_title(f"{f.name} ({f.units})\n{s['n_vortices']} vortices (CW {s['n_cw']}, CCW {s['n_ccw']}), "
                     f"{s['n_antivortices']} antivortices", fontsize=9)
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
        ax.set_xlim(x0, x0 + t * lx)
        ax.set_ylim(y0, y0 + t * ly)
    if not results:
        axes[0].text(0.5, 0.5, "no field source available", ha="center", va="center", transform=axes[0].transAxes)
    # colour wheel key + marker legend
    key = axes[-1]
    g = np.linspace(-1, 1, 101)
    KX, KY = np.meshgrid(g, g)
    wheel = colour_wheel(KX, KY, 1.0)
    wheel[np.hypot(KX, KY) > 1] = 1.0
    key.imshow(wheel, origin="lower", extent=[-1, 1, -1, 1])
    key.set_title("direction", fontsize=8)
    key.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker=m, ls="none", mec=c, mfc="none" if m == "o" else c, color=c, label=k, ms=8, mew=2)
               for k, (m, c) in _MARK.items() if k != "higher-order"]
    handles.append(Line2D([], [], marker="+", ls="none", color="w", label=f"node ({nodes.used})", ms=8, mew=1.5))
    leg = key.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.05), fontsize=7, frameon=True,
                     facecolor="0.35", labelcolor="white")
    leg.get_frame().set_edgecolor("none")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def periodicity_figure(results: list[FieldResult], spacings: dict, stem: xr.Dataset | None, nodes: Nodes,
                       period, period_source: str, min_period: float):
    """Left: cross-section profiles with detected dark lines (if stem.zarr has cross sections).
    Right: azimuthally averaged power of each field magnitude vs spatial period, moiré λ marked."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    from scipy import ndimage

    drawn = False
    for key, sp in spacings.items():
        da = stem[f"cross_section_{key}"]
        spatial = [d for d in da.dims if d in ("x", "y", "z", "s", "lateral")] or list(da.dims[-2:])
        da = da.isel({d: 0 for d in da.dims if d not in spatial})
        lat = [d for d in da.dims if d != "z"][-1]
        c = da[lat].values if lat in da.coords else np.arange(da.sizes[lat], dtype=float)
        img = np.asarray(da.transpose(..., lat).values, float).reshape(-1, da.sizes[lat])
        prof = ndimage.gaussian_filter1d(img.mean(0), min_period / 4 / (c[1] - c[0]), mode="wrap")
        a1.plot(c - c[0], prof / prof.max(), label=f"[{key}] d = {sp.mean:.2f} ± {sp.std:.2f} Å (n={sp.n})")
        for p in sp.positions:
            a1.axvline(p, color=a1.lines[-1].get_color(), ls=":", lw=1)
        drawn = True
    if drawn:
        a1.legend(fontsize=7)
        a1.set_xlabel("lateral position (Å)")
        a1.set_ylabel("low-passed intensity (norm.)")
        a1.set_title("cross-section dark lines", fontsize=9)
    else:
        a1.text(0.5, 0.5, "no cross-section images\n(stem.zarr absent or without lines)", ha="center", va="center",
                transform=a1.transAxes)
        a1.set_axis_off()
    for r in results:
        m = np.nan_to_num(r.field.magnitude)
        m = m - m.mean()
        P = np.abs(np.fft.fft2(m)) ** 2
        ky = np.fft.fftfreq(m.shape[0], r.field.y[1] - r.field.y[0])
        kx = np.fft.fftfreq(m.shape[1], r.field.x[1] - r.field.x[0])
        K = np.hypot(*np.meshgrid(kx, ky))
        kk = np.unique(np.round(K[K > 0], 6))
        pw = np.array([P[np.isclose(K, k, atol=1e-6)].mean() for k in kk])
        keep = pw > 1e-4 * pw.max()           # drop round-off shells
        a2.semilogy(1 / kk[keep], pw[keep] / pw.max(), "o", ms=5, mfc="none", label=r.field.name)
    a2.axvline(nodes.moire_period, color="k", ls="--", lw=1, label=f"λ = {nodes.moire_period:.2f} Å")
    if period is not None:
        a2.axvline(period.value, color="r", ls=":", lw=1.5, label=f"network {period.value:.2f} Å ({period_source})")
    a2.set_xlabel("spatial period (Å)")
    a2.set_ylabel("power of |field| per |G| shell (norm.)")
    a2.set_ylim(5e-5, 2)
    a2.set_title("periodicity of the fields", fontsize=9)
    a2.legend(fontsize=7)
    fig.tight_layout()
    return fig
