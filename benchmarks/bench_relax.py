"""Relaxation throughput (atoms x steps / s): twistox's batched FIRE + MACE path vs plain ASE FIRE.

Both relax the same rigid twisted bilayer with the same MACE model for a fixed number of
steps (fmax = 0, so neither stops early). twistox's path is measured for one structure
(neighbour-list reuse, no per-step ASE/AtomicData overhead) and for a batch of B
translation candidates in one forward pass (the scan use case). Also reported: steps each
optimiser needs to reach fmax = 0.05 eV/Å (per-atom vs whole-system step cap).

    python benchmarks/bench_relax.py                          # toy: Sigma13, 130 atoms, ~1 min
    python benchmarks/bench_relax.py --theta 10 --cells 2 --steps 20 --device cuda --batch 8

The model is a random-weight MACE of the requested width (cost per atom like a trained one
of the same size); no weights are downloaded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")


def tiny_mace(path: Path, channels: int, r_max: float, zs=(8, 22, 38)) -> Path:
    import mace  # noqa: F401  (configures torch.load for e3nn)
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=r_max, num_bessel=8, num_polynomial_cutoff=5, max_ell=3, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=len(zs),
        hidden_irreps=o3.Irreps(f"{channels}x0e"), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.array([-5.0, -8.0, -3.0]), avg_num_neighbors=30.0, atomic_numbers=list(zs),
        correlation=3, gate=torch.nn.functional.silu, pair_repulsion=True, atomic_inter_scale=1.0,
        atomic_inter_shift=0.0)
    torch.save(model, path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--theta", type=float, default=22.62, help="twist angle (deg); nearest CSL is used")
    ap.add_argument("--cells", type=int, default=1, help="unit cells per layer")
    ap.add_argument("--steps", type=int, default=8, help="FIRE steps timed per optimiser")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; the best time of each path is kept")
    ap.add_argument("--batch", type=int, default=4, help="translation candidates per batched forward pass")
    ap.add_argument("--channels", type=int, default=32, help="MACE channels (toy trainings use 32)")
    ap.add_argument("--r-max", type=float, default=5.0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--converge", action="store_true", help="also count steps to fmax = 0.05 eV/Å (slower)")
    ap.add_argument("--wall", action="store_true", help="time with the wall clock (default on CPU: process CPU time)")
    args = ap.parse_args()

    import torch
    from ase.optimize import FIRE
    from mace.calculators import MACECalculator

    from twistox.supercell.lattice import nearest_csl
    from twistox.core.device import tune_malloc
    from twistox.relax.evaluators import MaceBatchEvaluator
    from twistox.relax.fire import fire_relax
    from twistox.relax.scan import translate_top_layer
    from twistox.supercell.builder import BilayerSpec, build_bilayer

    if args.device == "cpu":
        torch.set_num_threads(1)
    print("glibc malloc tuned for both paths:", tune_malloc())
    csl = nearest_csl(args.theta, 400)
    atoms = build_bilayer(csl, BilayerSpec(bottom_cells=args.cells, top_cells=args.cells, vacuum=12.0))
    n = len(atoms)
    with tempfile.TemporaryDirectory() as tmp:
        path = tiny_mace(Path(tmp) / "bench.model", args.channels, args.r_max)
        calc = MACECalculator(model_paths=str(path), device=args.device, default_dtype=args.dtype)
    print(f"structure: theta = {csl.theta_deg:.2f} deg, Sigma{csl.sigma}, {n} atoms; MACE {args.channels} channels, "
          f"r_max {args.r_max} Å, {args.dtype}, {args.device}; {args.steps} steps")

    # warm-up both paths (graph building, first-call allocations)
    a = atoms.copy()
    a.calc = calc
    a.get_forces()
    ev = MaceBatchEvaluator.from_calculator(calc, atoms, skin=0.5)
    ev.evaluate(atoms.positions[None], [99])

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()

    B = args.batch
    cands = np.stack([translate_top_layer(atoms, (i / B, 0.0)) for i in range(B)])

    def run_ase():
        a = atoms.copy()
        a.calc = calc
        FIRE(a, maxstep=0.1, logfile=None).run(fmax=0.0, steps=args.steps)

    def run_one():
        fire_relax(ev, atoms.positions[None], fmax=0.0, max_steps=args.steps, maxstep=0.1)

    def run_batch():
        fire_relax(ev, cands, fmax=0.0, max_steps=args.steps, maxstep=0.1, batch_size=B)

    # the paths alternate and each keeps its best of --repeats rounds: on a shared machine
    # a burst of other load then slows one round, not one path. On CPU the clock is this
    # process's CPU time (wall time there also measures the other jobs; --wall on a quiet machine)
    clock = time.perf_counter if args.wall or args.device == "cuda" else time.process_time
    best = {"ase": np.inf, "one": np.inf, "batch": np.inf}
    for _ in range(args.repeats):
        for name, fn in (("ase", run_ase), ("one", run_one), ("batch", run_batch)):
            sync()
            t = clock()
            fn()
            sync()
            best[name] = min(best[name], clock() - t)
    ase_rate = n * args.steps / best["ase"]
    one_rate = n * args.steps / best["one"]
    b_rate = B * n * args.steps / best["batch"]

    print(f"{'path':44s} {'atoms*steps/s':>14s} {'ratio':>7s}   ({'wall' if clock is time.perf_counter else 'CPU'} time)")
    print(f"{'ASE FIRE + MACECalculator (baseline)':44s} {ase_rate:14.0f} {1.0:7.2f}")
    print(f"{'twistox fire_relax, 1 structure':44s} {one_rate:14.0f} {one_rate / ase_rate:7.2f}")
    print(f"{f'twistox fire_relax, batch of {B} candidates':44s} {b_rate:14.0f} {b_rate / ase_rate:7.2f}")
    print(f"neighbour-list builds in twistox path: {ev.n_builds} for {ev.n_calls} structure evaluations")

    if args.converge:
        a = atoms.copy()
        a.calc = calc
        opt = FIRE(a, maxstep=0.1, logfile=None)
        opt.run(fmax=0.05, steps=2000)
        r = fire_relax(ev, atoms.positions[None], fmax=0.05, max_steps=2000, maxstep=0.1)
        print(f"steps to fmax 0.05 eV/Å: ASE FIRE (whole-system step cap) {opt.nsteps}, "
              f"twistox (per-atom cap) {int(r.steps[0])}")


if __name__ == "__main__":
    main()
