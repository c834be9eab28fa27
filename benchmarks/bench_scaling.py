"""Scaling curves on this machine: time per step (and peak memory) vs problem size, with fitted
power laws t = a * size^b, for the three expensive stages.

- relax / MD / MLIP: one MACE force call (= one FIRE or MD step) vs atoms (SrTiO3 blocks,
  ~10^2 - 10^4 atoms), random-weight MACE of the toy shape (32 channels, max_L 0, float64); the
  cost of other model shapes relative to it is measured at one size (``model_ratio``).
- phase field: time per semi-implicit step and steps to converge vs grid points (n^2 x nz),
  the model of benchmarks/bench_phasefield.py; memory per grid point from the peak RSS.
- STEM: plan-view flexible-detector scan time vs probe positions x grid points x slices.

Times are CPU seconds of the single-threaded worker (``time.process_time``), not wall time: the
development machine is shared by other jobs (load average printed and stored), and CPU time of
one thread is what an idle core would take as wall time; the wall times are kept in the CSV.
Each stage runs in its own subprocess (sizes increasing, so ru_maxrss after each size is that
size's peak). Writes benchmarks/results/scaling.csv, benchmarks/results/scaling_fits.json (read by
``twistox plan``; with provenance) and docs/figures/scaling.png. Two sizes per stage are held out
of a first fit to state the prediction error; the stored fit uses all sizes.

    python benchmarks/bench_scaling.py            # ~4-6 min on 2 shared cores
    python benchmarks/bench_scaling.py --quick    # smaller sizes (tests / smoke)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def rss_mb() -> float:
    """Peak resident set size of this process so far [MB] (Linux ru_maxrss is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def perovskite_block(k: int, m: int):
    """Cubic SrTiO3 k x k x m unit cells (5 k^2 m atoms), a = 3.905 Å, periodic."""
    from ase import Atoms

    a = 3.905
    unit = Atoms("SrTiO3", scaled_positions=[(0, 0, 0), (.5, .5, .5), (.5, .5, 0), (.5, 0, .5), (0, .5, .5)],
                 cell=[a, a, a], pbc=True)
    at = unit.repeat((k, k, m))
    at.rattle(0.02, seed=1)
    return at


def mace_model(channels: int, max_L: int, dtype: str):
    """Random-weight ScaleShiftMACE of the given shape (2 interactions, correlation 3, r_max 5 Å)."""
    import mace  # noqa: F401
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    hidden = " + ".join(f"{channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(max_L + 1))
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=3, hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.array([-5.0, -8.0, -3.0]), avg_num_neighbors=30.0,
        atomic_numbers=[8, 22, 38], correlation=3, gate=torch.nn.functional.silu, pair_repulsion=True,
        atomic_inter_scale=1.0, atomic_inter_shift=0.0)
    return model.to(getattr(torch, dtype)).eval()


def worker_relax(sizes: list[tuple[int, int]], ratio_shapes: list[tuple[int, int]], device: str = "cpu",
                 dtype: str = "float64") -> list[dict]:
    """MACE force call time [s] and peak RSS [MB] per atom count, through MaceBatchEvaluator."""
    import torch

    from twistox.relax.evaluators import MaceBatchEvaluator

    rows = []
    model = mace_model(32, 0, dtype).to(device)
    for k, m in sizes:
        at = perovskite_block(k, m)
        ev = MaceBatchEvaluator([model], at)
        ev.evaluate(at.positions[None], [0])  # warm-up + neighbour list
        t, w = time.process_time(), time.perf_counter()
        ev.evaluate(at.positions[None] + 1e-4, [0])
        if device == "cuda":
            torch.cuda.synchronize()
        rows.append({"stage": "relax", "size": len(at), "t_step_s": time.process_time() - t,
                     "wall_s": time.perf_counter() - w, "peak_mb": rss_mb()})
    # cost of other model shapes relative to 32 ch / L0 at one size
    at = perovskite_block(*sizes[1])
    for ch, L in ratio_shapes:
        ev = MaceBatchEvaluator([mace_model(ch, L, dtype).to(device)], at)
        ev.evaluate(at.positions[None], [0])
        t = time.process_time()
        ev.evaluate(at.positions[None] + 1e-4, [0])
        rows.append({"stage": f"relax_model_{ch}ch_L{L}", "size": len(at), "t_step_s": time.process_time() - t,
                     "peak_mb": rss_mb()})
    return rows


def worker_phasefield(grids: list[tuple[int, int]], device: str = "cpu") -> list[dict]:
    """Semi-implicit phase field to convergence: ms per step, steps, setup, peak RSS per grid."""
    sys.path.insert(0, str(HERE))
    from bench_phasefield import PhaseFieldSolver, run

    rows = []
    for n, nz in grids:
        t = time.process_time()
        r, wall, setup = run(PhaseFieldSolver, n, nz, device, 10.0, 2000)
        cpu = time.process_time() - t
        rows.append({"stage": "phasefield", "size": n * n * nz, "t_step_s": cpu / max(r.steps, 1), "wall_s": wall,
                     "steps": int(r.steps), "setup_s": setup, "peak_mb": rss_mb()})
    return rows


def worker_stem(points: list[tuple[float, float]], thickness_nm: float = 2.0) -> list[dict]:
    """Plan-view flexible-detector scan: wall time vs probes x grid points x slices, peak RSS."""
    from twistox.stem.multislice import ProbeSettings, build_potential, configure_abtem
    from twistox.stem.planview import planview_radial
    from twistox.stem.sample import planview_sample
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    configure_abtem("cpu", "float32", 1)
    atoms = build_bilayer(nearest_csl(22.62, 400), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=10.0))
    atoms.info["rigid_positions"] = atoms.positions.copy()
    sample = planview_sample(atoms, 10 * thickness_nm, 4.0, "top")
    rows = []
    for pot_s, scan_s in points:
        s = ProbeSettings(energy=300e3, semiangle=30.0, cs=0.0, potential_sampling=pot_s, scan_sampling=scan_s,
                          slice_thickness=2.0, parametrization="lobato", supersampling=1)
        pot = build_potential(sample, s)
        t, w = time.process_time(), time.perf_counter()
        r = planview_radial(sample, s, 0.0, 100.0, 1.0, pot=pot)
        cpu, wall = time.process_time() - t, time.perf_counter() - w
        probes = int(r.sizes["x"] * r.sizes["y"])
        g = int(pot.gpts[0] * pot.gpts[1])
        rows.append({"stage": "stem", "size": probes * g * int(pot.num_slices), "t_step_s": cpu, "wall_s": wall, "probes": probes,
                     "gpts": g, "slices": int(pot.num_slices), "peak_mb": rss_mb()})
    return rows


def fit_power(x, y) -> tuple[float, float]:
    """Least-squares fit of log y = log a + b log x -> (a, b)."""
    b, loga = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return float(np.exp(loga)), float(b)


def fit_linear(x, y) -> tuple[float, float]:
    """y = c0 + c1 x (memory vs size) -> (c0 [MB], c1 [MB per unit]); slope clipped at >= 0."""
    c1, c0 = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(c0), float(max(c1, 0.0))


def fit_affine_rel(x, y) -> tuple[float, float]:
    """t = c0 + c1 x minimising the RELATIVE residuals (each size counts alike); c0, c1 >= 0.

    Fixed per-step cost (Python, graph set-up, dask) + work linear in the size (MACE edges ∝
    atoms; FFTs ∝ N log N ≈ N over these ranges). Fits the measured curves better than one power
    law, whose exponent is pulled down by the overhead-dominated small sizes."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    A = np.vstack([np.ones_like(x), x]).T / y[:, None]
    c0, c1 = np.linalg.lstsq(A, np.ones_like(y), rcond=None)[0]
    if c0 < 0:  # pure proportional fit
        c0, c1 = 0.0, float(np.sum(x / y) / np.sum((x / y) ** 2))
    return float(c0), float(max(c1, 0.0))


PLANS = {
    "full": {"relax": [(3, 3), (6, 3), (8, 4), (10, 5), (13, 6)],  # 135 ... 5070 atoms
             "ratio_shapes": [(16, 0), (64, 1)],
             "phasefield": [(12, 12), (16, 16), (24, 16), (32, 24), (40, 32)],
             "stem": [(0.12, 1.2), (0.12, 0.8), (0.12, 0.55), (0.08, 0.8), (0.08, 0.55)]},
    "quick": {"relax": [(2, 2), (3, 3), (4, 3), (5, 3)], "ratio_shapes": [(16, 0)],
              "phasefield": [(8, 8), (12, 8), (12, 12), (16, 8)],
              "stem": [(0.2, 2.5), (0.2, 1.8), (0.2, 1.4), (0.15, 1.8)]},
}


def run_worker(stage: str, plan: str) -> list[dict]:
    """Run one stage's sizes in a fresh single-threaded subprocess; rows as dicts."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, __file__, "--worker", stage, "--plan", plan], capture_output=True,
                         text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{stage} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(rows: list[dict]) -> dict:
    """Per stage: affine time model t = c0 + c1·size (all sizes; used by ``twistox plan``), power-law
    exponents (all sizes, and the 3 largest = the work-dominated regime), the hold-out check (affine fit
    without the two largest sizes, predicting them), linear memory fit."""
    fits = {}
    unit = {"relax": "atoms", "phasefield": "grid points n^2*nz", "stem": "probe positions x grid points x slices"}
    for stage in ("relax", "phasefield", "stem"):
        r = sorted((x for x in rows if x["stage"] == stage), key=lambda x: x["size"])
        x = [q["size"] for q in r]
        t = [q["t_step_s"] for q in r]
        c0, c1 = fit_affine_rel(x, t)
        h0, h1 = fit_affine_rel(x[:-2], t[:-2])
        hold = [{"size": q["size"], "measured_s": q["t_step_s"], "predicted_s": h0 + h1 * q["size"],
                 "error_pct": 100 * ((h0 + h1 * q["size"]) / q["t_step_s"] - 1)} for q in r[-2:]]
        a, b = fit_power(x, t)
        al, bl = fit_power(x[-3:], t[-3:])
        m0, m1 = fit_linear(x, [q["peak_mb"] for q in r])
        f = {"time": {"model": "affine", "c0": c0, "c1": c1, "unit": "CPU s per step (1 thread)" if stage != "stem"
                      else "CPU s per plan-view scan (1 thread)", "size": unit[stage]},
             "exponent": {"a": a, "b": b, "note": "power law over all sizes"},
             "exponent_large": {"a": al, "b": bl, "note": "power law over the 3 largest sizes"},
             "memory_mb": {"c0": m0, "c1": m1, "note": "peak RSS = c0 + c1*size (process incl. imports)"},
             "holdout": hold, "points": r}
        if stage == "phasefield":
            sa, sb = fit_power(x, [q["steps"] for q in r])
            f["steps"] = {"a": sa, "b": sb, "note": "steps to residual 10 V/m from a small random P"}
            f["setup_s"] = dict(zip(("c0", "c1"), fit_affine_rel(x, [q["setup_s"] for q in r])))
        fits[stage] = f
    base = fits["relax"]["points"][1]["t_step_s"]
    fits["relax"]["model_ratio"] = {"32ch_L0": 1.0} | {
        q["stage"].removeprefix("relax_model_"): q["t_step_s"] / base for q in rows if q["stage"].startswith("relax_model_")}
    return fits


def figure(fits: dict, path: Path, load: float) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, stage, xl, yl in zip(axs, ("relax", "phasefield", "stem"),
                                 ("atoms", "grid points (n² × nz)", "probe positions × grid points × slices"),
                                 ("s per MACE force call", "s per phase-field step", "s per plan-view scan")):
        f = fits[stage]
        x = np.array([p["size"] for p in f["points"]], float)
        y = np.array([p["t_step_s"] for p in f["points"]], float)
        ax.loglog(x, y, "o", label="measured")
        xx = np.geomspace(x.min() / 1.5, x.max() * 1.5, 50)
        ax.loglog(xx, f["time"]["c0"] + f["time"]["c1"] * xx, "-", label="fit c0 + c1·size (used by plan)")
        e = f["exponent_large"]
        ax.loglog(xx, e["a"] * xx ** e["b"], ":", label=f"∝ size^{e['b']:.2f} (3 largest); all: ^{f['exponent']['b']:.2f}")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl + " (CPU)")
        ax.set_title(stage)
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.suptitle(f"twistox scaling: CPU time of 1 thread on a shared 2-core machine (load avg {load:.1f} while measuring)",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=["relax", "phasefield", "stem"])
    ap.add_argument("--plan", default="full", choices=list(PLANS))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--refit", action="store_true", help="refit the stored scaling.csv, no new measurement")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "scaling.png")
    args = ap.parse_args()
    P = PLANS[args.plan]
    if args.worker:
        import torch

        torch.set_num_threads(1)
        rows = {"relax": lambda: worker_relax(P["relax"], P["ratio_shapes"]),
                "phasefield": lambda: worker_phasefield(P["phasefield"]),
                "stem": lambda: worker_stem(P["stem"])}[args.worker]()
        print(json.dumps(rows))
        return
    t0 = time.time()
    if args.refit:  # refit the stored CSV (same measurement, same provenance)
        old = json.loads((args.out / "scaling_fits.json").read_text())["provenance"]
        with open(args.out / "scaling.csv") as fh:
            rows = [{k: (v if k == "stage" else float(v)) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]
        fits = summarise(rows)
        fits["provenance"] = old | {"refit_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        load0, load1 = old["load_average_start"], old["load_average_end"]
    else:
        fits = None
    if fits is None:
        load0 = os.getloadavg()
        rows = []
        for stage in ("relax", "phasefield", "stem"):
            t = time.time()
            rows += run_worker(stage, args.plan)
            print(f"{stage}: {time.time() - t:.0f} s", flush=True)
        load1 = os.getloadavg()
        fits = summarise(rows)
        fits["provenance"] = {
        "script": "benchmarks/bench_scaling.py", "plan": args.plan, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(), "cpu_count": os.cpu_count(), "threads_per_job": 1, "device": "cpu",
        "load_average_start": load0, "load_average_end": load1, "wall_s": time.time() - t0,
        "note": "machine shared by other jobs while measuring (see load averages); times are upper bounds for an idle core",
        "python": platform.python_version()}
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "scaling.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, ["stage", "size", "t_step_s", "wall_s", "peak_mb", "steps", "setup_s", "probes",
                                    "gpts", "slices"])
            w.writeheader()
            for r in rows:
                w.writerow(r)
    (args.out / "scaling_fits.json").write_text(json.dumps(fits, indent=1))
    figure(fits, args.figure, load0[0])
    print(f"load average (1, 5, 15 min) at start {load0}, at end {load1}: machine shared by other jobs")
    print(f"{'stage':11s} {'size unit':42s} {'c0 [s]':>8s} {'c1 [s/unit]':>11s} {'b all':>6s} {'b large':>7s}  "
          "hold-out errors (affine fit w/o the 2 largest sizes)")
    for st in ("relax", "phasefield", "stem"):
        f = fits[st]
        err = ", ".join(f"{h['size']:.3g}: {h['error_pct']:+.0f}%" for h in f["holdout"])
        print(f"{st:11s} {f['time']['size']:42s} {f['time']['c0']:8.3g} {f['time']['c1']:11.3g} "
              f"{f['exponent']['b']:6.2f} {f['exponent_large']['b']:7.2f}  {err}")
    print("phase-field steps to converge ∝ points^%.2f; memory %.3g kB per grid point"
          % (fits["phasefield"]["steps"]["b"], 2**20 / 1e3 * fits["phasefield"]["memory_mb"]["c1"]))
    print("MACE model-shape cost ratios vs 32ch L0:", fits["relax"]["model_ratio"])
    print(f"total {time.time() - t0:.0f} s; wrote {args.out / 'scaling.csv'}, scaling_fits.json, {args.figure}")


if __name__ == "__main__":
    main()
