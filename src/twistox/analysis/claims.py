"""The paper's continuum claims, measured on every available source of one sample.

- phase field P: max |P| (C/m²) and the 1/e decay length of max_xy |P|(z) away from the interface (Å);
  per z plane, the winding and circulation of the in-plane P on a loop around each network node:
  do node vortices alternate CW/CCW between neighbouring nodes, and does each node's sense reverse
  across the interface (paper Fig. 4e)?
- winding of every 2D source on the node loops: E_projected of the phase field (paper: n = −1),
  B-site off-centring P of the atomistic source (paper: n = +1, CW only), DPC E_proj (paper: +1).

A node loop is a CCW circle of radius `radius` (Å) around the node (twistox.analysis.topology.loop_winding);
its winding counts when the mean |v| on it reaches min_snr × the source's noise floor, else NaN.
Circulation > 0 is CCW seen from +z (x right, y up). A quantity without its source is NaN.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from twistox.analysis.sources import VectorField
from twistox.analysis.topology import Grid, Loop, loop_winding

NAN = float("nan")


def node_loops(vf: VectorField, nodes: np.ndarray, radius: float) -> list[Loop]:
    """Loop (winding, helicity, circulation, |v|) of the field around each node (k, 2; Å)."""
    grid = Grid.from_coords(vf.x, vf.y, vf.periodic)
    return [loop_winding(vf.vx, vf.vy, grid, c, radius) for c in np.asarray(nodes, float).reshape(-1, 2)]


def neighbour_pairs(nodes: np.ndarray, L: float) -> list[tuple[int, int]]:
    """Nearest-neighbour node pairs (i, j) of the periodic node lattice (images included, so a cell with one
    node pairs it with itself: such a periodic cell forbids alternation)."""
    nodes = np.asarray(nodes, float).reshape(-1, 2)
    if not len(nodes):
        return []
    shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], float) * L
    d = nodes[:, None, None, :] + shifts[None, None, :, :] - nodes[None, :, None, :]
    r = np.hypot(d[..., 0], d[..., 1])
    r[r < 1e-6 * L] = np.inf
    dmin = r.min()
    return sorted({(min(i, j), max(i, j)) for i, j, _ in zip(*np.nonzero(r <= 1.05 * dmin))})


def alternation(circ: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    """Fraction of neighbour pairs with opposite circulation sign (NaN if a circulation is NaN or no pair)."""
    if not pairs or not np.isfinite(circ).all():
        return NAN
    return float(np.mean([np.sign(circ[i]) == -np.sign(circ[j]) != 0 for i, j in pairs]))


def loop_summary(loops: list[Loop], floor: float, min_snr: float, pairs: list[tuple[int, int]]) -> dict:
    """Node-loop statistics of one field: mean winding, counts, CW/CCW of n = +1 loops, alternation."""
    sig = np.array([lp.mean_magnitude >= min_snr * floor and lp.mean_magnitude > 0 for lp in loops], bool)
    n = np.array([lp.winding for lp in loops], float)
    c = np.array([lp.circulation for lp in loops], float)
    vort = sig & (n == 1)
    cw, ccw = int((vort & (c < 0)).sum()), int((vort & (c > 0)).sum())
    return {"node_loops": len(loops), "node_loops_significant": int(sig.sum()),
            "node_winding_mean": float(n[sig].mean()) if sig.any() else NAN,
            "node_windings": [int(v) if s else None for v, s in zip(n, sig)],
            "node_n_plus": int((sig & (n == 1)).sum()), "node_n_minus": int((sig & (n == -1)).sum()),
            "node_cw": cw, "node_ccw": ccw, "node_cw_fraction": cw / (cw + ccw) if cw + ccw else NAN,
            # 1 = pure curl (CW/CCW vortex), 0 = purely radial (source/sink): how vortex-like the n = +1 nodes are
            "node_curl_fraction": float(np.abs(c[vort]).mean()) if vort.any() else NAN,
            "node_alternation": alternation(np.where(vort, c, np.nan), pairs) if len(loops) else NAN}


def decay_length(z: np.ndarray, p: np.ndarray, z0: float) -> tuple[float, float]:
    """1/e decay length (Å) of a profile p(z) away from z0 on each side (below, above): the distance from the
    plane nearest z0 to where p falls to 1/e of its value there (log-linear interpolation); NaN when it
    does not fall that far within the data."""
    out = []
    for side in (-1, 1):
        sel = np.flatnonzero((z - z0) * side > 0)
        if sel.size < 2:
            out.append(NAN)
            continue
        order = sel[np.argsort(np.abs(z[sel] - z0))]
        d, v = np.abs(z[order] - z0), p[order]
        target = v[0] / np.e
        below = np.flatnonzero(v <= target)
        if v[0] <= 0 or not below.size:
            out.append(NAN)
            continue
        k = below[0]
        if v[k] <= 0:
            out.append(float(d[k] - d[0]))
            continue
        t = np.log(v[k - 1] / target) / np.log(v[k - 1] / v[k])
        out.append(float(d[k - 1] + t * (d[k] - d[k - 1]) - d[0]))
    return out[0], out[1]


def phasefield_claims(pf: xr.Dataset, nodes: np.ndarray, L: float, radius: float, floor: float,
                      min_snr: float) -> tuple[dict, xr.Dataset]:
    """max |P|, decay length, per-plane node windings/circulations of the in-plane P, alternation and reversal.

    Returns (summary dict, dataset with `pf_P_profile` (pf_z; C/m²), `pf_node_winding` and
    `pf_node_circulation` (pf_z, node))."""
    P = pf["P"].transpose("component", "z", "y", "x")
    labels = [str(v) for v in P["component"].values] if "component" in P.coords else ["x", "y", "z"]
    comp = {c: np.asarray(P.isel(component=labels.index(c)).values, float) for c in ("x", "y", "z")}
    mag = np.sqrt(comp["x"] ** 2 + comp["y"] ** 2 + comp["z"] ** 2)
    z = np.asarray(P["z"].values, float)
    zi = float(pf.attrs.get("interface_z", 0.5 * (z[0] + z[-1])))
    prof = np.nanmax(mag.reshape(z.size, -1), axis=1)
    below, above = decay_length(z, prof, zi)
    x, y = P["x"].values, P["y"].values
    pairs = neighbour_pairs(nodes, L)
    wind = np.full((z.size, len(nodes)), np.nan)
    circ = np.full((z.size, len(nodes)), np.nan)
    weight = np.zeros((z.size, len(nodes)))
    for k in range(z.size):
        vf = VectorField("pf_P", "phasefield_P", comp["x"][k], comp["y"][k], x, y, "C/m²", True, 1.0)
        for j, lp in enumerate(node_loops(vf, nodes, radius)):
            if lp.mean_magnitude >= min_snr * floor and lp.mean_magnitude > 0:
                wind[k, j], circ[k, j], weight[k, j] = lp.winding, lp.circulation, lp.mean_magnitude
    alt = [alternation(np.where(wind[k] == 1, circ[k], np.nan), pairs) for k in range(z.size)]
    alt = np.array([a for a in alt if np.isfinite(a)])
    # net sense of each node in the lower and the upper layer: |v|-weighted circulation of its n = +1 loops
    w1 = np.where(wind == 1, weight * np.nan_to_num(circ), 0.0)
    lo, hi = w1[z < zi].sum(0), w1[z > zi].sum(0)
    ok = (lo != 0) & (hi != 0)
    summ = {
        "pf_max_P_C_m2": float(np.nanmax(mag)) if np.isfinite(mag).any() else NAN,
        "pf_P_decay_length_below_A": below, "pf_P_decay_length_above_A": above,
        "pf_P_decay_length_A": float(np.nanmean([below, above])) if np.isfinite([below, above]).any() else NAN,
        "pf_P_node_winding_mean": float(np.nanmean(wind)) if np.isfinite(wind).any() else NAN,
        "pf_P_node_vortex_fraction": float((wind == 1).sum() / np.isfinite(wind).sum()) if np.isfinite(wind).any() else NAN,
        # mean |<P.t>|/<|P|> of the n = +1 node loops: 1 = pure curl, 0 = radial (source/sink-like)
        "pf_P_node_curl_fraction": float(np.abs(circ[wind == 1]).mean()) if (wind == 1).any() else NAN,
        "pf_alternate_fraction": float(alt.mean()) if alt.size else NAN,
        "pf_reverse_fraction": float((np.sign(lo[ok]) == -np.sign(hi[ok])).mean()) if ok.any() else NAN,
        "pf_nodes_per_cell": len(nodes), "pf_interface_z_A": zi,
    }
    ds = xr.Dataset({
        "pf_P_profile": (("pf_z",), prof, {"units": "C/m²", "description": "max over (x, y) of |P| per z plane"}),
        "pf_node_winding": (("pf_z", "node"), wind, {"units": "1", "description":
                            "winding of in-plane P on the loop around each node (NaN: below the noise floor)"}),
        "pf_node_circulation": (("pf_z", "node"), circ, {"units": "1", "description":
                                "<P.t>/<|P|> on the node loop: > 0 CCW seen from +z"}),
    }, coords={"pf_z": ("pf_z", z, {"units": "Å"}), "node": np.arange(len(nodes))})
    return summ, ds
