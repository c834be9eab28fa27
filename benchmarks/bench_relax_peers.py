"""Relaxation peers side by side: ASE FIRE, torch-sim batched FIRE and twistox ``fire_relax``,
all with the SAME random-weight MACE model on the SAME rigid twisted bilayers.

Prints atoms·steps/s (fixed number of steps, fmax = 0 so nobody stops early) for one structure and
for a batch of B top-layer translations (the scan use case), and the steps each optimiser needs
to reach fmax = 0.05 eV/Å from the rigid structure (``--converge``).

    python benchmarks/bench_relax_peers.py                       # toy: Sigma13, 130 atoms, ~1-2 min, 1 core
    python benchmarks/bench_relax_peers.py --theta 10 --cells 2 --device cuda --batch 8

torch-sim (PyPI ``torch-sim-atomistic``, optional extra ``twistox[bench]``) installs beside the
stack without touching torch or e3nn (checked with ``pip install --dry-run``: torch 2.13.0,
e3nn 0.4.4, mace-torch 0.3.16 kept). Its ``MaceModel`` wraps the same torch module;
``md_flavor="ase_fire"`` (ASE's update) is used with max_step = 0.1 Å as for the others.
Without torch-sim its rows say "not installed".

torch-sim 0.3 has one ``pbc`` flag for all three directions and ``atoms_to_state`` sets it to
``all(atoms.pbc)``: the bilayer's (T, T, F) became an isolated cluster (27 % fewer edges at Σ13,
other energies), which made torch-sim look faster. Its states are built with pbc = (T, T, T)
instead, exact here because the vacuum is wider than r_max; the script checks that torch-sim's
and twistox's energies and forces of the first structure agree before timing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_relax import tiny_mace  # noqa: E402  (same random-weight MACE as bench_relax.py)


def torchsim_runner(model_module, atoms_list, device: str, dtype, max_step: float):
    """(init, step, state) of torch-sim's batched ASE-flavour FIRE for ``atoms_list``; None if absent."""
    try:
        import torch_sim as ts
        from torch_sim.models.mace import MaceModel
    except ImportError:
        return None
    import torch

    model = MaceModel(model=model_module, device=torch.device(device), dtype=dtype, compute_forces=True,
                      compute_stress=False)
    init, step = ts.optimizers.fire(model, max_step=max_step, md_flavor="ase_fire")
    return init, step, ts.io.atoms_to_state(atoms_list, torch.device(device), dtype)


def periodic(atoms):
    """Copy with pbc (T, T, T) for torch-sim (one pbc flag); exact only if the vacuum exceeds r_max."""
    a = atoms.copy()
    a.pbc = True
    return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--theta", type=float, default=22.62)
    ap.add_argument("--cells", type=int, default=1)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--converge", action="store_true", help="also count steps to fmax = 0.05 eV/Å")
    ap.add_argument("--wall", action="store_true", help="time with the wall clock (default on CPU: process CPU time)")
    args = ap.parse_args()

    import torch
    from ase.optimize import FIRE
    from mace.calculators import MACECalculator

    from twistox.core.device import tune_malloc
    from twistox.relax.evaluators import MaceBatchEvaluator
    from twistox.relax.fire import fire_relax
    from twistox.relax.scan import translate_top_layer
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    torch.set_num_threads(args.threads)
    tune_malloc()
    dtype = getattr(torch, args.dtype)
    csl = nearest_csl(args.theta, 400)
    atoms = build_bilayer(csl, BilayerSpec(bottom_cells=args.cells, top_cells=args.cells, vacuum=12.0))
    n, B, S = len(atoms), args.batch, args.steps
    with tempfile.TemporaryDirectory() as tmp:
        path = tiny_mace(Path(tmp) / "bench.model", args.channels, 5.0)
        calc = MACECalculator(model_paths=str(path), device=args.device, default_dtype=args.dtype)
    ev = MaceBatchEvaluator.from_calculator(calc, atoms, skin=0.5)
    cands = np.stack([translate_top_layer(atoms, (i / B, 0.0)) for i in range(B)])
    batch_atoms = []
    for c in cands:
        a = atoms.copy()
        a.positions = c
        batch_atoms.append(a)
    ts_one = torchsim_runner(calc.models[0], [periodic(atoms)], args.device, dtype, 0.1)
    ts_batch = torchsim_runner(calc.models[0], [periodic(a) for a in batch_atoms], args.device, dtype,
                               0.1) if ts_one else None
    if ts_one:  # same physics in both: same energy and forces of the rigid structure
        e_tw, f_tw = ev.evaluate(atoms.positions[None], [10**6])
        s0 = ts_one[0](ts_one[2])
        de = abs(float(s0.energy[0]) - e_tw[0])
        df = float(np.abs(s0.forces.detach().cpu().numpy() - f_tw[0]).max())
        tol = 1e-8 if args.dtype == "float64" else 1e-3
        if de > tol * n or df > tol:
            raise SystemExit(f"torch-sim and twistox disagree on the rigid structure: |dE| {de:.3g} eV, "
                             f"|dF| {df:.3g} eV/Å; the timings would compare different models")
        print(f"torch-sim vs twistox on the rigid structure: |dE| {de:.2g} eV, max |dF| {df:.2g} eV/Å")
    print(f"structure: Sigma{csl.sigma} ({csl.theta_deg:.2f} deg), {n} atoms; MACE {args.channels} ch random weights, "
          f"{args.dtype}, {args.device}, {args.threads} thread(s); {S} steps, batch {B}")

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()

    def run_ase():
        a = atoms.copy()
        a.calc = calc
        FIRE(a, maxstep=0.1, logfile=None).run(fmax=0.0, steps=S)

    def run_ts(r):
        init, step, st = r
        s = init(st)
        for _ in range(S):
            s = step(s)

    paths = {"ASE FIRE + MACECalculator, 1 structure": (run_ase, 1),
             "twistox fire_relax, 1 structure": (lambda: fire_relax(ev, atoms.positions[None], 0.0, S, 0.1), 1),
             f"twistox fire_relax, batch of {B}": (lambda: fire_relax(ev, cands, 0.0, S, 0.1, batch_size=B), B)}
    if ts_one:
        paths["torch-sim fire (ase_fire), 1 structure"] = (lambda: run_ts(ts_one), 1)
        paths[f"torch-sim fire (ase_fire), batch of {B}"] = (lambda: run_ts(ts_batch), B)
    for fn, _ in paths.values():  # warm-up: graph building, first allocations
        fn()
    best = dict.fromkeys(paths, np.inf)
    # alternate paths, keep the best round each; CPU time of this process (all its threads), not
    # wall time: on a shared machine wall time measures the other jobs too (use --wall on a quiet one)
    clock = time.perf_counter if args.wall or args.device == "cuda" else time.process_time
    for _ in range(args.repeats):
        for name, (fn, _) in paths.items():
            sync()
            t = clock()
            fn()
            sync()
            best[name] = min(best[name], clock() - t)
    base = n * S / best["ASE FIRE + MACECalculator, 1 structure"]
    print(f"{'path':44s} {'atoms*steps/s':>14s} {'x ASE':>7s}   ({'wall' if clock is time.perf_counter else 'CPU'} time)")
    for name, (_, mult) in paths.items():
        rate = mult * n * S / best[name]
        print(f"{name:44s} {rate:14.0f} {rate / base:7.2f}")
    if not ts_one:
        print("torch-sim: not installed (pip install 'twistox[bench]')")

    if args.converge:
        a = atoms.copy()
        a.calc = calc
        opt = FIRE(a, maxstep=0.1, logfile=None)
        opt.run(fmax=0.05, steps=1000)
        r = fire_relax(ev, atoms.positions[None], fmax=0.05, max_steps=1000, maxstep=0.1)
        line = f"steps to fmax 0.05 eV/Å: ASE {opt.nsteps}, twistox {int(r.steps[0])}"
        if ts_one:
            init, step, st = ts_one
            s = init(st)
            k = 0
            while k < 1000 and float(s.forces.norm(dim=1).max()) > 0.05:
                s = step(s)
                k += 1
            line += f", torch-sim {k}"
        print(line)


if __name__ == "__main__":
    main()
