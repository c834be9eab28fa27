"""Check the paper's continuum (phase-field) claims on the analytic square screw-dislocation network.

    OMP_NUM_THREADS=1 python benchmarks/continuum_claims.py            # both cases, ~3 min each on 1 core
    python benchmarks/continuum_claims.py --cases sigma265 --thickness 200 --nz 100 --dxy 0.5   # paper-size

The eigenstrain is twistox.phasefield.network (Gaussian shear walls of width w, coherence eta, Burgers
vector a, each harmonic decaying as exp(-|q| d) into both layers: profile 'elastic'); the slab is SrTiO3
at 300 K with the schema's material constants. Reported per case (one CSV row,
benchmarks/results/continuum_claims.csv): max |P| (C/m²) against the paper (0.02 at 5 deg, 0.005 at 20 deg),
the e-folding length of max_xy |P| from the interface (paper ~2 nm), the in-plane P defects at the
network nodes just below and above the interface (winding, CW/CCW; paper: vortices alternating CW/CCW
laterally and reversing across the interface), and the winding of E_projected at the nodes (paper n = -1).
Defects come from twistox.analysis.topology.find_defects (read-only use).
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from twistox.analysis.topology import find_defects
from twistox.phasefield import stage
from twistox.phasefield.network import network_nodes
from twistox.phasefield.settings import validated
from twistox.supercell.lattice import nearest_csl

A_STO = 3.905  # Å, cubic SrTiO3
CASES = {"sigma265": (5.0, 0.02), "sigma149": (20.0, 0.005)}  # requested angle (deg), paper's |P| (C/m²)
OUT = Path(__file__).resolve().parent / "results" / "continuum_claims.csv"


def strain_stub(theta_deg: float) -> xr.Dataset:
    """The attrs of a strain.zarr the analytic-network eigenstrain needs (no fields)."""
    csl = nearest_csl(theta_deg)
    return xr.Dataset(attrs={"supercell_length": csl.supercell_length(A_STO), "moire_period": csl.moire_period(A_STO),
                             "a": A_STO, "frame_angle_deg": csl.frame_angle_deg,
                             "layer_angles_deg": list(csl.layer_angles_deg), "theta_deg": csl.theta_deg,
                             "sigma": csl.sigma})


def decay_length(z: np.ndarray, pmax: np.ndarray, zi: float, side: int) -> float:
    """Distance (Å) from the peak of max_xy |P| (on one side of the interface) at which it first falls to 1/e
    of the peak (inf if it does not within the layer)."""
    sel = (z - zi) * side > 0
    d, p = np.abs(z[sel] - zi), pmax[sel]
    o = np.argsort(d)
    d, p = d[o], p[o]
    k0 = int(np.argmax(p))
    d, p = d[k0:] - d[k0], p[k0:]
    target = p[0] / math.e
    below = np.flatnonzero(p < target)
    if below.size == 0:
        return float("inf")
    k = below[0]
    # log-linear interpolation between the last point above and the first below 1/e
    return float(d[k - 1] + (d[k] - d[k - 1]) * math.log(p[k - 1] / target) / math.log(p[k - 1] / p[k]))


def defects_at(points: np.ndarray, vx: np.ndarray, vy: np.ndarray, x: np.ndarray, L: float, radius: float):
    """For each point, the nearest defect of (vx, vy) within radius (Å): (winding, circulation, helicity)."""
    defs, _ = find_defects(vx, vy, x, x, periodic=True)
    out = []
    for p in points:
        best, dmin = None, radius
        for d in defs:
            dd = np.array([d.x, d.y]) - p
            dd -= L * np.round(dd / L)
            r = float(np.hypot(*dd))
            if r <= dmin:
                best, dmin = d, r
        out.append((0, "none", "none") if best is None else (best.winding, best.circulation, best.kind))
    return out, defs


def node_parity(nodes: np.ndarray, period: float, frame_deg: float) -> np.ndarray:
    """Checkerboard sublattice (0/1) of each node in the crystal frame of the interface."""
    r = math.radians(frame_deg)
    s = nodes[:, 0] * math.cos(r) + nodes[:, 1] * math.sin(r)
    t = -nodes[:, 0] * math.sin(r) + nodes[:, 1] * math.cos(r)
    return (np.round(s / period - 0.5) + np.round(t / period - 0.5)).astype(int) % 2


def config(a: argparse.Namespace, coherence: float) -> dict:
    return validated({"thickness_A": a.thickness, "nz": a.nz, "dxy_A": a.dxy, "max_steps": a.max_steps,
                      "checkpoint_every": 0, "log_every": 10 ** 6,
                      "eigenstrain": {"source": "analytic_network", "profile": "elastic",
                                      "network": {"wall_width_A": a.wall, "coherence": coherence}}})


def max_gradient_per_nm(pf: dict, strain: xr.Dataset) -> float:
    """Largest in-plane gradient (1/nm) of the interfacial eigenstrain (any component) on the slab grid."""
    eig, grid, _ = stage.build_eigenstrain(pf, strain)
    e = eig[:2, :2, grid.interface_cell]
    dx = grid.dx * 1e9
    return float(max(np.hypot(*np.gradient(e[i, j], dx)).max() for i in range(2) for j in range(2)))


def on_lines(defs, period: float, frame_deg: float, tol: float) -> tuple[int, int]:
    """(number of winding -1 defects within tol (Å) of a dislocation line, number of -1 defects)."""
    r = math.radians(frame_deg)
    neg = [d for d in defs if d.winding == -1]
    hit = 0
    for d in neg:
        s = d.x * math.cos(r) + d.y * math.sin(r)
        t = -d.x * math.sin(r) + d.y * math.cos(r)
        ds_ = abs((s / period - 0.5) - round(s / period - 0.5)) * period
        dt_ = abs((t / period - 0.5) - round(t / period - 0.5)) * period
        hit += min(ds_, dt_) <= tol
    return hit, len(neg)


def run_case(name: str, a: argparse.Namespace, match_gradient: float | None = None) -> dict:
    theta, paper_P = CASES[name]
    strain = strain_stub(theta)
    eta = a.coherence
    if match_gradient:  # eta such that the interfacial eigenstrain gradient equals the paper's ~0.03 nm^-1
        eta = a.coherence * match_gradient / max_gradient_per_nm(config(a, a.coherence), strain)
    pf = config(a, eta)
    t0 = time.time()
    ds, res = stage.run(pf, strain, "cpu", seed=0)
    wall_s = time.time() - t0
    P = ds["P"].values
    z, x = ds["z"].values, ds["x"].values
    zi, L = ds.attrs["interface_z"], ds.attrs["supercell_length"]
    lam, phi = ds.attrs["network_period_A"], ds.attrs["network_frame_angle_deg"]
    mag = np.sqrt((P ** 2).sum(0))
    pmax_z = mag.max((1, 2))
    ib = int(np.flatnonzero(z < zi)[-1])
    eig = ds["eigenstrain"].values
    exy_c = np.abs(eig[0, 0, ib + 1] * -math.sin(math.radians(2 * phi)) + eig[0, 1, ib + 1] * math.cos(math.radians(2 * phi)))
    geo = network_nodes(L, lam, phi)
    nodes, aa, mid = geo["nodes"], geo["aa"], geo["midpoints"]
    par = node_parity(nodes, lam, phi)
    rad = 0.3 * lam
    below, _ = defects_at(nodes, P[0, ib], P[1, ib], x, L, rad)
    above, _ = defects_at(nodes, P[0, ib + 1], P[1, ib + 1], x, L, rad)
    ep = ds["E_projected"].values
    eproj, edefs = defects_at(nodes, ep[0], ep[1], x, L, rad)
    eproj_aa, _ = defects_at(aa, ep[0], ep[1], x, L, rad)
    eproj_mid, _ = defects_at(mid, ep[0], ep[1], x, L, 0.2 * lam)
    below_aa, bdefs = defects_at(aa, P[0, ib], P[1, ib], x, L, rad)
    below_mid, _ = defects_at(mid, P[0, ib], P[1, ib], x, L, 0.2 * lam)

    def alternates(side):
        c = [d[1] for d in side]
        by = {p: {c[i] for i in range(len(c)) if par[i] == p} for p in (0, 1)}
        return (all(ci in ("cw", "ccw") for ci in c) and len(by[0]) == 1 and len(by[1]) == 1 and by[0] != by[1])

    reverses = all({b[1], t[1]} == {"cw", "ccw"} for b, t in zip(below, above))
    fmt = lambda side: " ".join(f"{w:+d}{c if c != 'none' else ''}" for w, c, _ in side)  # noqa: E731
    kinds = lambda side: " ".join(f"{w:+d}{k}" for w, _, k in side)  # noqa: E731
    return {
        "case": name, "sigma": int(strain.attrs["sigma"]), "theta_deg": round(strain.attrs["theta_deg"], 3),
        "L_A": round(L, 3), "period_A": round(lam, 3), "grid": "x".join(map(str, ds.attrs["grid"])),
        "thickness_A": a.thickness, "wall_width_A": a.wall, "coherence": round(eta, 5),
        "max_grad_eigenstrain_per_nm": max_gradient_per_nm(pf, strain), "paper_strain_gradient_per_nm": 0.03,
        "f11_f12_f44_V": f"{ds.attrs['f11_V']:g}/{ds.attrs['f12_V']:g}/{ds.attrs['f44_V']:g}",
        "max_eps_st_interface": float(exy_c.max()),
        "converged": bool(res.converged), "steps": int(res.steps), "wall_s": round(wall_s, 1),
        "max_abs_P_C_m2": float(mag.max()), "paper_max_abs_P_C_m2": paper_P,
        "P_ratio_model_over_paper": float(mag.max() / paper_P),
        "decay_1e_below_A": decay_length(z, pmax_z, zi, -1), "decay_1e_above_A": decay_length(z, pmax_z, zi, +1),
        "peak_P_distance_A": float(abs(z[int(np.argmax(pmax_z))] - zi)), "paper_decay_A": 20.0,
        "max_abs_P_profile": " ".join(f"{v:.3g}" for v in pmax_z),
        "nodes": len(nodes), "P_defects_at_nodes_below": fmt(below), "P_defects_at_nodes_above": fmt(above),
        "alternate_laterally_below": alternates(below), "alternate_laterally_above": alternates(above),
        "reverse_across_interface": reverses,
        "P_defects_below_at_AA": kinds(below_aa), "P_defects_below_at_wall_midpoints": kinds(below_mid),
        "P_defects_below_total": f"{sum(d.winding > 0 for d in bdefs)}+ {sum(d.winding < 0 for d in bdefs)}-",
        "E_projected_at_nodes": kinds(eproj), "E_projected_at_AA": kinds(eproj_aa),
        "E_projected_at_wall_midpoints": kinds(eproj_mid),
        "E_projected_antivortices_on_lines": "{}/{}".format(*on_lines(edefs, lam, phi, 0.1 * lam)),
        "E_projected_defects_total": int(sum(d.winding for d in edefs)), "paper_E_projected_winding": -1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--thickness", type=float, default=80.0, help="stack thickness (Å); paper 200")
    ap.add_argument("--nz", type=int, default=40)
    ap.add_argument("--dxy", type=float, default=1.5, help="in-plane spacing (Å); paper-like 0.5")
    ap.add_argument("--wall", type=float, default=3.0, help="wall width w (Å)")
    ap.add_argument("--coherence", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--match-gradient", type=float, nargs="*", default=[0.03],
                    help="also run with eta set so the interfacial eigenstrain gradient is this (1/nm); none: skip")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for name in a.cases:
        for mg in [None] + list(a.match_gradient or []):
            row = run_case(name, a, mg)
            rows.append(row)
            print("\n".join(f"{k:>34}: {v}" for k, v in row.items()), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
