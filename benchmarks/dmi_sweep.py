"""Does a chiral gradient coupling (electric DMI, twistox.phasefield.dmi) select one vortex handedness?

Sweep ``phasefield.material.dmi`` on the phase field driven by the analytic square screw-dislocation network
(twistox.phasefield.network, theta = 4.98 deg, lambda = 44.95 Å, frame 0, supercell = 2 x 2 network cells:
4 nodes, 4 AA sites), SrTiO3 at 300 K, paper's flexo/Landau constants. For each D:
  * handedness at every node in the last cell below / first cell above the interface and of the P integrated
    through the whole slab (single column, what Ti off-centring seen in projection gives): circulation
    <P.t> on a ring r = 3..9 Å around the node (t = z x r: + = CCW seen from +z), its sign, and the radial
    part <P.r> (+ = source);
  * the fraction of the 8 interface (node, layer) vortices with the majority handedness, and of the 4 projected;
  * the winding number of E_projected around each node (circle r = 6 Å, 96 points; +1 source/sink/vortex,
    -1 antivortex);
  * max |P| and the free-energy split (aJ per supercell).
Also: the mirror image (theta -> -theta, eigenstrain mirrored: both flip) at one D, which must flip every
handedness; and the relaxation with the coupling alone (no eigenstrain) to locate the spontaneous threshold.

Controls: the top layer's eigenstrain x 1/3 (breaks the layer-swapping C2 axis) at D = 0 and 0.2, and the
softest-mode stiffness without eigenstrain (spontaneous instability of the interface).

    OMP_NUM_THREADS=1 python benchmarks/dmi_sweep.py            # ~10 min on 1 core; CSV + docs/figures
    OMP_NUM_THREADS=1 python benchmarks/dmi_sweep.py --coherence 0.126 --values 0 0.022 0.07 0.1 0.2 0.3 \
        --mirror-at --asym --spontaneous --no-figures --out benchmarks/results/dmi_sweep_eta0.126.csv  # paper gradient
    python benchmarks/dmi_sweep.py --figures-only               # re-plot from the CSV (reruns the 4 map values)
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch

from twistox.phasefield import Grid, PhaseFieldSolver, RelaxSettings, SlabEnergy
from twistox.phasefield import sweep
from twistox.phasefield.dmi import critical_dmi
from twistox.phasefield.eigenstrain import fourier_field
from twistox.phasefield.materials import Material, alpha1_pertsev
from twistox.phasefield.figures import node_zoom
from twistox.phasefield.network import network_coefficients

ROOT = Path(__file__).resolve().parents[1]
A = 1e-10
STO = Material(alpha1=alpha1_pertsev(300.0), alpha11=1.70e9, alpha12=1.37e9, G=1e-10, c11=3.36e11, c12=1.07e11,
               c44=1.27e11, Q11=0.066, Q12=-0.0135, Q44=0.0096, f11=2.0, f12=1.0, f44=1.0, eps_b=10.0)
THETA = 2 * math.degrees(math.atan(1 / 23))     # 4.98 deg (Sigma 265)
A_LAT = 3.905                                    # Å
LAM = A_LAT / (2 * math.sin(math.radians(THETA / 2)))  # 44.95 Å network period (b / lambda = theta)
COHERENCE = [1.0]  # network.coherence eta (set by --coherence)


def build(n: int, nz: int, thickness_A: float, cells: int, mirror: bool, top_scale: float = 1.0):
    """Grid, eigenstrain (3, 3, nz, n, n) and node / AA positions (Å) of a cells x cells network supercell."""
    L = cells * LAM
    grid = Grid(L=L * A, n=n, nz=nz, thickness=thickness_A * A, interface_cell=nz // 2)
    c_top = network_coefficients(L, LAM, 0.0, wall_width=2.0, burgers=A_LAT, coherence=COHERENCE[0], order=6)
    N = (c_top.shape[-1] - 1) // 2
    hs = np.arange(-N, N + 1)
    q = 2 * np.pi * np.hypot(hs[:, None], hs[None, :]) / L      # 1/Å
    x_A = grid.x_centres().numpy() / A
    z_A = grid.z_centres().numpy() / A
    zi = grid.interface_z() / A
    eig = np.zeros((3, 3, nz, n, n))
    for m in range(nz):
        d = abs(z_A[m] - zi)
        sgn = top_scale if z_A[m] > zi else -1.0                # bottom layer carries -eps (network.py)
        f = fourier_field(sgn * c_top * np.exp(-q * d)[None], hs, hs, L, x_A)   # elastic decay e^{-|q| d}
        eig[0, 0, m], eig[1, 1, m] = f[0], f[1]
        eig[0, 1, m] = eig[1, 0, m] = f[2]
    if mirror:   # x -> -x: the mirror-image structure (twist -theta); eps_xy odd, eps_xx, eps_yy even
        eig = eig[..., ::-1].copy()
        eig[0, 1] *= -1
        eig[1, 0] *= -1
    return grid, eig, sweep.network_sites(L, LAM, 0.0)


def analyse(energy: SlabEnergy, res, sites) -> dict:
    """twistox.phasefield.sweep.analyse at the Σ265 radii (3-9 Å ring, 6 Å loop, 8 Å defects), CSV-formatted."""
    row = sweep.analyse(energy, res, sites)
    row.pop("circ_net_interface")  # (circ_bottom + circ_top) / 2, not a column of this CSV
    return {k: (" ".join(str(w) for w in v) if isinstance(v, list) else v) for k, v in row.items()}


def softest_mode(d: float, args, steps: int = 40) -> dict:
    """Without eigenstrain F(P) = P.H P / 2 + O(P^4): after `steps` TDGL steps from 5e-5 C/m² noise, P is
    dominated by the softest modes, and 2F / sum |P|² dV is an upper bound of H's lowest eigenvalue
    (J m/C²; 2 alpha1 = 3.7e8 at D = 0). It crosses 0 where the paraelectric interface turns unstable by itself."""
    grid, _, _ = build(args.n, args.nz, args.thickness, args.cells, False)
    mat = STO.with_(dmi=d, dmi_decay_A=args.decay)
    energy = SlabEnergy(grid, (mat, mat), (-THETA / 2, THETA / 2))
    solver = PhaseFieldSolver(energy, RelaxSettings(dt=10.0, dt_grow=1.5, dt_max=200.0, residual_tol_V_per_m=1e-30,
                                                    max_steps=steps, min_steps=steps, checkpoint_every=0,
                                                    log_every=1000))
    P0 = torch.as_tensor(np.random.default_rng(1).uniform(-5e-5, 5e-5, (3, grid.nz, grid.n, grid.n)))
    t0 = time.time()
    r = solver.relax(P0)
    norm = float((r.P ** 2).sum()) * grid.dV
    return {"dmi": d, "eig_scale": 0.0, "mirror": False, "top_scale": 1.0, "wall_s": round(time.time() - t0, 1),
            "softest_stiffness_J_m_per_C2": 2 * float(r.energy[-1]) * 1e-18 / norm,
            "max_abs_P": float(r.P.abs().max()), "steps": int(r.steps), "stop": r.stop_reason}


def run_one(d: float, args, mirror=False, eig_scale=1.0, seed=0, top_scale=1.0):
    grid, eig, sites = build(args.n, args.nz, args.thickness, args.cells, mirror, top_scale)
    angles = (THETA / 2, -THETA / 2) if mirror else (-THETA / 2, THETA / 2)
    mat = STO.with_(dmi=d, dmi_decay_A=args.decay)
    energy = SlabEnergy(grid, (mat, mat), angles, torch.as_tensor(eig * eig_scale))
    solver = PhaseFieldSolver(energy, RelaxSettings(dt=10.0, dt_grow=1.5, dt_max=200.0, residual_tol_V_per_m=args.tol,
                                                    max_steps=args.steps, checkpoint_every=0, log_every=1000))
    P0 = torch.as_tensor(np.random.default_rng(seed).uniform(-5e-5, 5e-5, (3, grid.nz, grid.n, grid.n)))
    t0 = time.time()
    res = solver.relax(P0)
    row = {"dmi": d, "coherence": COHERENCE[0], "mirror": mirror, "eig_scale": eig_scale, "top_scale": top_scale,
           "wall_s": round(time.time() - t0, 1)}
    row.update(analyse(energy, res, sites))
    return row, res, energy, sites


def figures(rows, maps, d_est, d_thr, out_dir: Path, d_est_high: float | None = None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def f(r, k):
        return float(r[k])

    base = [r for r in rows if str(r["mirror"]) == "False" and f(r, "eig_scale") == 1.0 and f(r, "top_scale") == 1.0]
    soft = [r for r in rows if f(r, "eig_scale") == 0.0]
    D = np.array([f(r, "dmi") for r in base])
    lo = D[D > 0].min() / 3
    xs = np.where(D > 0, D, lo)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.9))
    a1, a2, a3, a4 = axes
    a1.semilogx(xs, [f(r, "interface_majority_fraction") for r in base], "o-",
                label="interface cells (8 node vortices)")
    a1.semilogx(xs, [f(r, "projected_majority_fraction") for r in base], "s--",
                label="∫P dz (4 nodes, single column)")
    asym = [r for r in rows if f(r, "top_scale") != 1.0]
    a1.semilogx([max(f(r, "dmi"), lo) for r in asym], [f(r, "projected_majority_fraction") for r in asym], "k^",
                ms=9, label="∫P dz, top eigenstrain ×1/3 (control)")
    a1.set_ylabel("fraction of nodes with majority handedness")
    a1.set_ylim(-0.05, 1.1)
    a1.legend(fontsize=7)
    a2.semilogx(xs, [f(r, "circ_bottom") for r in base], "o-", label="circulation, bottom cell")
    a2.semilogx(xs, [f(r, "circ_top") for r in base], "o-", label="circulation, top cell")
    a2.semilogx(xs, [f(r, "circ_projected") for r in base], "s--", label="circulation, ∫P dz")
    a2.semilogx(xs, [f(r, "radial_bottom") for r in base], "r:", marker=".", label="radial (+ source), both cells")
    a2.axhline(0, color="k", lw=0.5)
    a2.set_ylabel("<P·t̂>, <P·r̂> / <|P|> at nodes (+ CCW)")
    a2.legend(fontsize=7)
    for key, mk, lab in (("E_defects_nodes", "o-", "nodes"), ("E_defects_aa", "s--", "AA sites"),
                         ("E_defects_walls", "^:", "wall midpoints")):
        a3.semilogx(xs, [np.mean([int(w) for w in str(r[key]).split()]) for r in base], mk, label=lab)
    extra = ROOT / "benchmarks" / "results" / "dmi_sweep_eta0.126.csv"   # the paper-gradient sweep, if run
    if extra.exists():
        with open(extra) as fh:
            er = [r for r in csv.DictReader(fh) if f(r, "eig_scale") == 1.0 and f(r, "top_scale") == 1.0
                  and r["mirror"] == "False"]
        De = np.array([f(r, "dmi") for r in er])
        a3.semilogx(np.where(De > 0, De, lo), [np.mean([int(w) for w in r["E_defects_nodes"].split()]) for r in er],
                    "kD-", ms=4, lw=0.8, label="nodes, η = 0.126 (paper gradient)")
        a1.semilogx(np.where(De > 0, De, lo), [f(r, "interface_majority_fraction") for r in er], "kD-", ms=4,
                    lw=0.8, label="interface, η = 0.126")
        a1.legend(fontsize=7)
        a3.legend(fontsize=7)
    a3.axhline(1, color="g", lw=0.6, ls=":")
    a3.axhline(-1, color="r", lw=0.6, ls=":")
    a3.set_ylabel("net winding of E_projected within 8 Å")
    a3.set_ylim(-3.5, 1.8)
    a3.legend(fontsize=7)
    if soft:
        Ds = np.array([f(r, "dmi") for r in soft])
        a4.semilogx(np.where(Ds > 0, Ds, lo), [f(r, "softest_stiffness_J_m_per_C2") / 1e8 for r in soft], "o-")
        a4.axhline(0, color="k", lw=0.5)
        a4.set_ylabel("softest-mode stiffness, no eigenstrain (1e8 J m/C²)")
    for a in axes:
        a.set_xlabel("D (J m²/C²)  [D = 0 at left edge]", fontsize=8)
        a.axvline(d_est, color="b", lw=0.8, ls="--")
        if d_est_high:
            a.axvspan(d_est, d_est_high, color="b", alpha=0.07)
        if d_thr:
            a.axvline(d_thr, color="m", lw=0.8, ls="--")
    fig.suptitle(f"Electric DMI sweep on the analytic screw network, θ = {THETA:.2f}°, λ = {LAM:.1f} Å, "
                 "SrTiO3 300 K (blue: dimensional estimate, mean twist → node rotation; magenta: bulk threshold "
                 "√(2α1G))", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "dmi_sweep_handedness.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(len(maps), 3, figsize=(11, 3.5 * len(maps)), squeeze=False)
    for row_ax, (label, (res, energy, sites)) in zip(axes, maps.items()):
        g = energy.grid
        x = g.x_centres().numpy() / A
        L = g.L / A
        P = res.P.numpy()
        c = sites["nodes"][0]
        with torch.no_grad():
            Ep = energy.projected_field(res.phi).numpy()
        for ax, iz, name in ((row_ax[0], g.interface_cell - 1, "bottom"), (row_ax[1], g.interface_cell, "top")):
            im = node_zoom(ax, P[0, iz], P[1, iz], x, L, c, f"{label}: P_xy, {name} interface cell\n"
                           f"|P| colour (max {np.hypot(P[0, iz], P[1, iz]).max():.3g} C/m²), arrows = direction")
            fig.colorbar(im, ax=ax, shrink=0.8)
        node_zoom(row_ax[2], Ep[0], Ep[1], x, L, c, f"{label}: E_projected (colour wheel)", colour="wheel")
    fig.suptitle("±16 Å around a node (circle); x, y offsets in Å", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "dmi_sweep_P_maps.png", dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--values", type=float, nargs="*", default=[0.0, 0.01, 0.022, 0.05, 0.07, 0.1, 0.2, 0.3, 0.5])
    ap.add_argument("--map-values", type=float, nargs="*", default=[0.0, 0.022, 0.3, 0.5], help="D of the P-map rows")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--nz", type=int, default=16)
    ap.add_argument("--thickness", type=float, default=64.0)
    ap.add_argument("--cells", type=int, default=2)
    ap.add_argument("--decay", type=float, default=3.905, help="dmi_decay_A (Å)")
    ap.add_argument("--tol", type=float, default=1000.0,
                    help="residual tolerance (V/m); P error ~ tol/(2 alpha1) = 3e-6 C/m2")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--mirror-at", type=float, nargs="*", default=[0.2])
    ap.add_argument("--asym", type=float, nargs="*", default=[0.0, 0.2],
                    help="D values run with the top layer's eigenstrain x 1/3 (layer asymmetry, no C2 axis)")
    ap.add_argument("--spontaneous", type=float, nargs="*", default=[0.0, 0.2, 0.3, 0.4, 0.5, 0.6],
                    help="D values relaxed without eigenstrain (threshold of the coupling alone)")
    ap.add_argument("--estimate", type=float, default=0.022, help="estimated D (J m²/C²): G theta / a, mean twist")
    ap.add_argument("--estimate-high", type=float, default=0.16, help="G omega_node / a, relative rotation at a node")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--figures-only", action="store_true", help="read --out, rerun only the --map-values, plot")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dmi_sweep.csv"))
    ap.add_argument("--coherence", type=float, default=1.0,
                    help="network coherence eta (1: fully coherent, peak eps ~0.1, P ~6x the paper; 0.126: the paper's "
                         "0.03 nm^-1 gradient, see 'Continuum claims')")
    args = ap.parse_args()
    COHERENCE[0] = args.coherence
    torch.set_num_threads(1)
    rows, keep = [], {}
    if args.figures_only:
        with open(args.out) as fh:
            rows = list(csv.DictReader(fh))
        maps = {}
        for d in args.map_values:
            _, res, energy, sites = run_one(d, args)
            maps[f"D = {d:g}"] = (res, energy, sites)
        fig_dir = ROOT / "docs" / "figures"
        figures(rows, maps, args.estimate, critical_dmi(STO.alpha1, STO.G), fig_dir, args.estimate_high)
        print("figures in", fig_dir)
        return
    print(f"theta {THETA:.3f} deg, lambda {LAM:.2f} Å, bulk threshold sqrt(2 a1 G) = "
          f"{critical_dmi(STO.alpha1, STO.G):.3f} J m2/C2; grid {args.n}^2 x {args.nz}, L = {args.cells * LAM:.1f} Å")
    jobs = [(d, False, 1.0) for d in args.values] + [(d, True, 1.0) for d in args.mirror_at]
    jobs = [(d, m, s, 1.0) for d, m, s in jobs] + [(d, False, 1.0, 1 / 3) for d in args.asym]
    for d in args.spontaneous:
        rows.append(softest_mode(d, args))
        print(rows[-1], flush=True)
    for d, mirror, scale, top in jobs:
        row, res, energy, sites = run_one(d, args, mirror, scale, top_scale=top)
        rows.append(row)
        if not mirror and scale == 1.0 and top == 1.0:
            keep[d] = (res, energy, sites)
        print({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()
               if not k.startswith("F_") or k in ("F_dmi_aJ", "F_total_aJ")}, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    print("wrote", out)
    if not args.no_figures:
        fig_dir = ROOT / "docs" / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        maps = {f"D = {d:g}": keep[d] for d in args.map_values if d in keep}
        figures(rows, maps, args.estimate, critical_dmi(STO.alpha1, STO.G), fig_dir)
        print("figures in", fig_dir)


if __name__ == "__main__":
    main()
