"""Sweep of the chiral Lifshitz (electric DMI) coefficient D: does it select one vortex handedness? (issue 19)

For each D the slab is relaxed from the same seeded noise and analysed at the network sites (nodes = line
crossings, AA = domain centres, walls = wall midpoints; twistox.phasefield.network.network_nodes):
  * handedness of the node vortices in the last cell below / first cell above the interface and of ∫P dz (single
    column): circulation <P.t> / <|P|> on a ring r_in..r_out around the node, t = z x r (+ = CCW seen from +z), and
    the radial part <P.r> / <|P|> (+ = source); a node counts CW / CCW only when |circulation| > 0.1;
  * the majority fraction max(n_CW, n_CCW) / n of the interface (node, layer) vortices and of the projected nodes;
  * the winding of E_projected on a CCW circle around each node and the net plaquette winding within r_defect of
    each site (periodic map, sums to 0);
  * max |P|, max |P_z| and the free-energy split (aJ per supercell, twistox.phasefield.energy.TERMS).
Frames: arrays [y, x], x, y in Å, rotations CCW about +z positive.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy import ndimage

from .energy import TERMS, SlabEnergy
from .network import network_nodes
from .solver import PhaseFieldSolver, RelaxResult, RelaxSettings

A = 1e-10  # m per Å
COUNT_MIN = 0.1  # |circulation| / <|P|> below which a node has no handedness
# analysis radii as fractions of the network period lambda (3, 9, 6, 8 Å at lambda = 44.95 Å, benchmarks/dmi_sweep.py)
RADII_PER_PERIOD = {"r_in": 3.0 / 44.95, "r_out": 9.0 / 44.95, "r_loop": 6.0 / 44.95, "r_defect": 8.0 / 44.95}


def radii_for(period_A: float) -> dict:
    """Analysis radii (Å) for a network of period lambda (Å), scaled from the Σ265 choice."""
    return {k: v * period_A for k, v in RADII_PER_PERIOD.items()}


def network_sites(L_A: float, period_A: float, frame_angle_deg: float) -> dict[str, np.ndarray]:
    """Node, AA and wall-midpoint positions (k, 2) in Å of the square network in a supercell of side L."""
    s = network_nodes(L_A, period_A, frame_angle_deg)
    return {"nodes": s["nodes"], "aa": s["aa"], "walls": s["midpoints"]}


def _offsets(x: np.ndarray, centre) -> tuple[np.ndarray, np.ndarray]:
    L = x[1] - x[0] + x[-1] - x[0]
    return np.broadcast_arrays((x[None, :] - centre[0] + L / 2) % L - L / 2, (x[:, None] - centre[1] + L / 2) % L - L / 2)


def ring_stats(vx: np.ndarray, vy: np.ndarray, x: np.ndarray, centre, r_in=3.0, r_out=9.0) -> tuple[float, float]:
    """(<v.t>, <v.r>) / <|v|> on grid points with r_in <= r <= r_out (Å) of a periodic [y, x] field (t = z x r)."""
    dx, dy = _offsets(x, centre)
    r = np.hypot(dx, dy)
    sel = (r >= r_in) & (r <= r_out)
    if not sel.any():
        raise ValueError(f"ring_stats: no grid point with {r_in:.3g} <= r <= {r_out:.3g} Å (grid too coarse)")
    rx, ry = dx[sel] / r[sel], dy[sel] / r[sel]
    px, py = vx[sel], vy[sel]
    norm = np.hypot(px, py).mean() + 1e-300
    return float((px * -ry + py * rx).mean() / norm), float((px * rx + py * ry).mean() / norm)


def loop_winding(vx: np.ndarray, vy: np.ndarray, x: np.ndarray, centre, radius=6.0, npts=96) -> int:
    """Winding of a periodic [y, x] field on a CCW circle around centre (Å): (1/2pi) sum wrap(d phase)."""
    dx = x[1] - x[0]
    t = np.linspace(0, 2 * np.pi, npts, endpoint=False)
    cx = (centre[0] + radius * np.cos(t) - x[0]) / dx
    cy = (centre[1] + radius * np.sin(t) - x[0]) / dx
    sx = ndimage.map_coordinates(vx, [cy, cx], order=1, mode="grid-wrap")
    sy = ndimage.map_coordinates(vy, [cy, cx], order=1, mode="grid-wrap")
    ph = np.arctan2(sy, sx)
    d = np.diff(np.append(ph, ph[0]))
    return int(np.rint(((d + np.pi) % (2 * np.pi) - np.pi).sum() / (2 * np.pi)))


def plaquette_winding(vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Winding of every plaquette (i, j)->(i, j+1)->(i+1, j+1)->(i+1, j) (CCW from +z) of a periodic [y, x] field."""
    ph = np.arctan2(vy, vx)
    wrap = lambda a: (a + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
    ex = wrap(np.roll(ph, -1, 1) - ph)
    ey = wrap(np.roll(ph, -1, 0) - ph)
    return np.rint((ex + np.roll(ey, -1, 1) - np.roll(ex, -1, 0) - ey) / (2 * np.pi)).astype(int)


def _signs(c) -> np.ndarray:
    c = np.asarray(c, float)
    return np.where(np.abs(c) > COUNT_MIN, np.sign(c), 0)


def analyse(energy: SlabEnergy, res: RelaxResult, sites: dict, radii: dict | None = None) -> dict:
    """Handedness, windings, |P| and energy split of one relaxed state; per-site lists are lists of ints."""
    rd = {"r_in": 3.0, "r_out": 9.0, "r_loop": 6.0, "r_defect": 8.0, **(radii or {})}
    g = energy.grid
    P = res.P.detach().cpu().numpy()
    x = g.x_centres().numpy() / A
    ib, it = g.interface_cell - 1, g.interface_cell
    Pint = P.sum(1) * g.dz / A                 # ∫P dz through the slab (C/m² Å)
    with torch.no_grad():
        Ep = energy.projected_field(res.phi).cpu().numpy()
    ring = lambda vx, vy, c: ring_stats(vx, vy, x, c, rd["r_in"], rd["r_out"])  # noqa: E731
    loop = lambda vx, vy, c: loop_winding(vx, vy, x, c, rd["r_loop"])  # noqa: E731
    hand = {"bottom": [], "top": [], "projected": []}
    radial = {"bottom": [], "top": []}
    for c in sites["nodes"]:
        for name, (vx, vy) in (("bottom", P[:2, ib]), ("top", P[:2, it]), ("projected", Pint[:2])):
            circ, rad = ring(vx, vy, c)
            hand[name].append(circ)
            if name in radial:
                radial[name].append(rad)
    row: dict = {
        "E_winding_nodes": [loop(Ep[0], Ep[1], c) for c in sites["nodes"]],
        "P_winding_nodes_bottom": [loop(*P[:2, ib], c) for c in sites["nodes"]],
        "E_winding_aa": [loop(Ep[0], Ep[1], c) for c in sites["aa"]],
        "aa_circ_bottom": float(np.mean([ring(*P[:2, ib], c)[0] for c in sites["aa"]])),
        "E_winding_walls": [loop(Ep[0], Ep[1], c) for c in sites["walls"]],
    }
    wmap = plaquette_winding(Ep[0], Ep[1])
    if int(wmap.sum()) != 0:
        raise RuntimeError("periodic winding map of E_projected must sum to 0")
    xc = x + 0.5 * (x[1] - x[0])          # plaquette centres
    for cls in ("nodes", "aa", "walls"):
        row[f"E_defects_{cls}"] = [int(wmap[np.hypot(*_offsets(xc, c)) < rd["r_defect"]].sum()) for c in sites[cls]]
    row["E_plaquettes"] = f"+{int((wmap > 0).sum())} / -{int((wmap < 0).sum())}"
    iface = _signs(hand["bottom"] + hand["top"])
    row["interface_ccw"], row["interface_cw"] = int((iface > 0).sum()), int((iface < 0).sum())
    row["interface_majority_fraction"] = max(row["interface_ccw"], row["interface_cw"]) / iface.size
    proj = _signs(hand["projected"])
    row["projected_ccw"], row["projected_cw"] = int((proj > 0).sum()), int((proj < 0).sum())
    row["projected_majority_fraction"] = max(row["projected_ccw"], row["projected_cw"]) / proj.size
    for k in hand:
        row[f"circ_{k}"] = float(np.mean(hand[k]))
    row["circ_net_interface"] = float(np.mean(hand["bottom"] + hand["top"]))  # 0 under the layer-swapping C2
    for k in radial:
        row[f"radial_{k}"] = float(np.mean(radial[k]))
    mag = np.sqrt((P ** 2).sum(0))
    row["max_abs_P"] = float(mag.max())
    row["max_abs_Pz"] = float(np.abs(P[2]).max())
    prof = mag.max(axis=(1, 2))
    row["interface_P"] = float(max(prof[ib], prof[it]))
    row["max_abs_P_1nm_away"] = float(max(prof[np.abs(g.z_centres().numpy() - g.interface_z()) > 1e-9], default=0))
    row["E_proj_max_V"] = float(np.hypot(Ep[0], Ep[1]).max())
    for k, v in zip(TERMS, res.energy_terms[:, -1]):
        row[f"F_{k}_aJ"] = float(v)
    row["F_total_aJ"] = float(res.energy[-1])
    row.update(steps=int(res.steps), stop=res.stop_reason, rejected=int(res.rejected),
               residual_V_per_m=float(res.residual[-1]) if len(res.residual) else float("nan"))
    return row


def dmi_sweep(make_energy: Callable[[float], SlabEnergy], values, sites: dict, settings: RelaxSettings,
              P0: torch.Tensor, radii: dict | None = None, log: logging.Logger | None = None
              ) -> tuple[pd.DataFrame, dict]:
    """Relax from the same P0 (3, nz, n, n) C/m² at every D (J m²/C²) of ``values``; ``make_energy(D)`` builds the
    SlabEnergy. Returns (one row per D, sorted, from ``analyse``; {D: (RelaxResult, SlabEnergy)})."""
    log = log or logging.getLogger("twistox.phasefield")
    rows, states = [], {}
    for d in sorted(float(v) for v in values):
        energy = make_energy(d)
        res = PhaseFieldSolver(energy, settings, log).relax(P0.clone().to(energy.device))
        row = {"dmi": d, "wall_s": round(float(res.wall_s), 2), **analyse(energy, res, sites, radii)}
        rows.append(row)
        states[d] = (res, energy)
        log.info("D = %.4g J m2/C2: majority fraction interface %.3g, projected %.3g; E_proj node winding %s; "
                 "max|P| %.4g C/m2; %s after %d steps", d, row["interface_majority_fraction"],
                 row["projected_majority_fraction"], row["E_defects_nodes"], row["max_abs_P"], row["stop"],
                 row["steps"])
    return pd.DataFrame(rows), states


def single_handedness_threshold(df: pd.DataFrame, column: str = "interface_majority_fraction") -> float | None:
    """Smallest swept D from which on every larger D has ``column`` = 1 (one handedness at all nodes), provided
    D = min has not; None when no such D (or when the texture is single-handed already at the smallest D)."""
    d = df.sort_values("dmi")
    f = d[column].to_numpy(float)
    D = d["dmi"].to_numpy(float)
    if len(f) == 0 or f[0] >= 1 - 1e-9:
        return None
    ok = f >= 1 - 1e-9
    for i in range(len(f)):
        if ok[i:].all():
            return float(D[i])
    return None


def node_rotation_rad(period_A: float, burgers_A: float, wall_width_A: float, coherence: float, order: int) -> float:
    """Relative rotation (rad) of the two lattices at a node of the analytic network (network.py): each layer
    turns by eta b/4 * 2 (1/lambda) sum_{0<|m|<=N} exp(-2 pi^2 m^2 w^2/lambda^2) (both Gaussians peak at a node;
    the m = 0 part cancels the rigid -theta/2 when b/lambda = theta); twice that between the layers."""
    s = sum(math.exp(-2 * math.pi ** 2 * m * m * wall_width_A ** 2 / period_A ** 2) for m in range(1, order + 1))
    return 2 * (coherence * burgers_A / 4 * 2 * 2 * s / period_A)


def dmi_estimate(G: float, omega_rad: float, a_A: float, kappa: float = 1.0) -> float:
    """Dimensional estimate D ≈ kappa G omega / a (J m²/C²): G in J m³/C², omega the axial (relative rotation) angle
    of the interface in rad, a the lattice constant in Å, kappa ≲ 1 unknown (docs/stages/phasefield.md)."""
    return kappa * G * abs(omega_rad) / (a_A * A)


# per-D scalar columns written as variables of phasefield_dmi_sweep.zarr: (name, units, long name)
SCALARS = (
    ("interface_majority_fraction", "1", "fraction of interface (node, layer) vortices with the majority handedness"),
    ("projected_majority_fraction", "1", "fraction of nodes whose ∫P dz has the majority handedness"),
    ("interface_ccw", "1", "CCW interface node vortices"), ("interface_cw", "1", "CW interface node vortices"),
    ("projected_ccw", "1", "CCW nodes of ∫P dz"), ("projected_cw", "1", "CW nodes of ∫P dz"),
    ("circ_bottom", "1", "<P.t>/<|P|> at nodes, cell below the interface (+ CCW)"),
    ("circ_top", "1", "<P.t>/<|P|> at nodes, cell above the interface (+ CCW)"),
    ("circ_projected", "1", "<P.t>/<|P|> of ∫P dz at nodes (+ CCW)"),
    ("circ_net_interface", "1", "net circulation: mean of bottom and top node circulations (+ CCW)"),
    ("radial_bottom", "1", "<P.r>/<|P|> at nodes below (+ source)"), ("radial_top", "1", "<P.r>/<|P|> above"),
    ("max_abs_P", "C/m²", "max |P|"), ("max_abs_Pz", "C/m²", "max |P_z|"),
    ("E_proj_max_V", "V", "max |E_projected|"), ("F_total_aJ", "aJ", "total free energy"),
    ("steps", "1", "relaxation steps"), ("residual_V_per_m", "V/m", "final RMS |dF/dP|"),
)
PER_SITE = (("E_winding_nodes", "node", "winding of E_projected on a CCW circle r_loop around each node"),
            ("E_defects_nodes", "node", "net plaquette winding of E_projected within r_defect of each node"),
            ("E_defects_aa", "aa", "net plaquette winding of E_projected within r_defect of each AA site"),
            ("E_defects_walls", "wall", "net plaquette winding of E_projected within r_defect of each wall midpoint"),
            ("P_winding_nodes_bottom", "node", "winding of P_xy below the interface around each node"))


def to_dataset(df: pd.DataFrame, states: dict, sites: dict, attrs: dict) -> xr.Dataset:
    """phasefield_dmi_sweep.zarr: per-D numbers (dim dmi), per-site windings, energy split (dmi, term), and the
    maps P of the two interface cells (dmi, layer, component, y, x) C/m² and E_projected (dmi, xy, y, x) V."""
    D = df["dmi"].to_numpy(float)
    first = next(iter(states.values()))[1]
    g = first.grid
    x = g.x_centres().numpy() / A
    ib = g.interface_cell - 1
    Pmaps, Emaps = [], []
    for d in D:
        res, energy = states[d]
        Pmaps.append(res.P.detach().cpu().numpy()[:, ib:ib + 2].transpose(1, 0, 2, 3))
        with torch.no_grad():
            Emaps.append(energy.projected_field(res.phi).cpu().numpy())
    data = {k: (("dmi",), df[k].to_numpy(float), {"units": u, "long_name": n}) for k, u, n in SCALARS}
    for k, dim, n in PER_SITE:
        data[k] = (("dmi", dim), np.array([list(v) for v in df[k]], dtype=int), {"long_name": n})
    data["energy_terms"] = (("dmi", "term"), df[[f"F_{t}_aJ" for t in TERMS]].to_numpy(float), {"units": "aJ"})
    data["stop_reason"] = (("dmi",), df["stop"].astype(str).to_numpy())
    data["P_interface"] = (("dmi", "layer", "component", "y", "x"), np.array(Pmaps),
                           {"units": "C/m²", "long_name": "P in the cells just below (0) / above (1) the interface"})
    data["E_projected"] = (("dmi", "xy", "y", "x"), np.array(Emaps),
                           {"units": "V", "long_name": "∫E_xy dz through slab and vacuum"})
    coords = {"dmi": ("dmi", D, {"units": "J m²/C²"}), "term": list(TERMS), "layer": ["below", "above"],
              "component": ["x", "y", "z"], "xy": ["x", "y"], "x": ("x", x, {"units": "Å"}),
              "y": ("y", x, {"units": "Å"}),
              "node_x": (("node",), sites["nodes"][:, 0]), "node_y": (("node",), sites["nodes"][:, 1]),
              "aa_x": (("aa",), sites["aa"][:, 0]), "aa_y": (("aa",), sites["aa"][:, 1]),
              "wall_x": (("wall",), sites["walls"][:, 0]), "wall_y": (("wall",), sites["walls"][:, 1])}
    return xr.Dataset(data, coords=coords, attrs=dict(attrs))


def run_sample(pf: dict, strain: xr.Dataset, device: str, seed: int, log: logging.Logger | None = None
               ) -> xr.Dataset:
    """The optional rule phasefield_dmi_sweep: the sample's own model (eigenstrain source, grid, material) relaxed
    at every D of ``phasefield.dmi_sweep.values`` plus D = 0 and the dimensional estimate; pf is validated."""
    from twistox.core.config import ConfigError

    from .materials import material_from_config
    from .settings import check_config
    from .stage import build_eigenstrain, initial_polarisation

    log = log or logging.getLogger("twistox.phasefield")
    check_config(pf)
    values = [float(v) for v in pf["dmi_sweep"]["values"]]
    if not values:
        raise ConfigError("config key 'phasefield.dmi_sweep.values': empty list = sweep off; give D values (J m²/C²)")
    angles = tuple(float(a) for a in strain.attrs["layer_angles_deg"])
    theta = angles[1] - angles[0]
    if abs(theta) < 1e-9:
        raise ConfigError("config key 'phasefield.dmi_sweep.values': the sample is untwisted (theta = 0), where the "
                          "chiral term vanishes; leave the sweep off ([]) for it")
    eig, grid, attrs = build_eigenstrain(pf, strain)
    mat0 = material_from_config(pf["material"], pf["temperature_K"])
    L = grid.L / A
    if attrs.get("eigenstrain_source") == "analytic_network":
        period, phi = attrs["network_period_A"], attrs["network_frame_angle_deg"]
    else:
        period = float(strain.attrs["moire_period"])
        phi = float(strain.attrs.get("frame_angle_deg", np.mean(angles)))
    try:
        sites = network_sites(L, period, phi)
    except ValueError as exc:
        raise ConfigError(f"config key 'phasefield.dmi_sweep.values': no network sites for this sample ({exc})") from None
    a_lat = float(strain.attrs.get("a", 3.905))
    est = {"dmi_estimate_mean_twist": dmi_estimate(mat0.G, math.radians(theta), a_lat)}
    if attrs.get("eigenstrain_source") == "analytic_network":
        om = node_rotation_rad(period, attrs["network_burgers_A"], attrs["network_wall_width_A"],
                               attrs["network_coherence"], int(attrs["moire_order"]))
        est.update(node_rotation_rad=om, dmi_estimate_node_rotation=dmi_estimate(mat0.G, om, a_lat))
    d_est = est["dmi_estimate_mean_twist"]
    run_values = sorted(set(values) | {0.0, d_est})
    settings = RelaxSettings.from_config(pf)
    settings.checkpoint_every = 0
    P0 = initial_polarisation(grid, pf["initial_amplitude"], seed)
    eig_t = torch.as_tensor(eig)

    def make_energy(d: float) -> SlabEnergy:
        m = mat0.with_(dmi=d)
        return SlabEnergy(grid, (m, m), angles, eig_t, device=device)

    log.info("DMI sweep over D = %s J m2/C2 (estimate G theta/a = %.4g), %d nodes, grid %d^2 x %d", run_values, d_est,
             len(sites["nodes"]), grid.n, grid.nz)
    df, states = dmi_sweep(make_energy, run_values, sites, settings, P0, radii_for(period), log)
    thr = single_handedness_threshold(df)
    out_attrs = {
        "dmi_values_requested": values, "dmi_threshold": thr if thr is not None else "none found",
        "dmi_threshold_definition": "smallest swept D from which every larger swept D has all interface node vortices "
                                    "of one handedness (interface_majority_fraction = 1) while the smallest D has not",
        **est,
        "dmi_estimate": d_est,
        "dmi_estimate_note": "crude dimensional estimate D ~ kappa G omega / a with kappa = 1 (unknown, <~1), omega = "
                             "theta (mean twist); dmi_estimate_node_rotation uses the relative rotation at a node "
                             "(analytic network only). Order of magnitude only, not fitted to atomistic data.",
        "critical_dmi_bulk": math.sqrt(2 * mat0.alpha1 * mat0.G) if mat0.alpha1 > 0 else 0.0,
        "network_period_A": float(period), "frame_angle_deg": float(phi), "supercell_length": L,
        "layer_angles_deg": list(angles), "theta_deg": theta, "dmi_decay_A": float(mat0.dmi_decay_A),
        "grid": [grid.nz, grid.n, grid.n], "count_min_circulation": COUNT_MIN, **radii_for(period),
        **{k: v for k, v in attrs.items() if isinstance(v, (int, float, str))},
    }
    return to_dataset(df, states, sites, out_attrs)
