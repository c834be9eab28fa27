"""Peak memory of STEM scans on CPU: the model of twistox.stem.tiling, and one piece vs tiled (issue 17 item 4).

Each case runs in a fresh process (peak RSS = ru_maxrss): Sigma13 bilayer at reduced thickness (2 nm).

1. Calibration: pixelated detector over a tile of t x t probe positions, patterns held in memory;
   measured vs predicted peak.
2. 4D-STEM over a 32 x 32 scan, COM of both modes: all patterns held then com_map (the pre-tiling
   path), fourd_maps in one piece (budget None), fourd_maps under a budget (tiles); peak RSS, tiles,
   max |COM difference| to the all-held result.
3. Plan view (flexible detector 0-200 mrad, 0.05 Å potential): one piece vs under a budget.

    python benchmarks/bench_stem_memory.py              # all (~5-10 min on 1 core)
    python benchmarks/bench_stem_memory.py --stream     # parts 2 and 3 only
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time


def case(tile: int, sampling: float, thickness_nm: float) -> dict:
    import abtem
    import numpy as np

    from twistox.stem.multislice import ProbeSettings, build_potential, configure_abtem, make_probe, to_numpy
    from twistox.stem.sample import planview_sample
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    configure_abtem("cpu", "float32", 1)
    atoms = build_bilayer(nearest_csl(22.62, 400), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=10.0))
    atoms.info["rigid_positions"] = atoms.positions.copy()
    sample = planview_sample(atoms, 10 * thickness_nm, 4.0, "top").repeat((2, 2, 1))
    s = ProbeSettings(energy=300e3, semiangle=1.0, potential_sampling=sampling, scan_sampling=0.25, slice_thickness=2.0,
                      parametrization="lobato", supersampling=1)
    pot = build_potential(sample, s)
    probe = make_probe(pot, s)
    scan = abtem.GridScan(start=(0, 0), end=(0.25 * tile, 0.25 * tile), gpts=(tile, tile), endpoint=False)
    t = time.perf_counter()
    dp = probe.scan(pot, scan=scan, detectors=abtem.PixelatedDetector(max_angle=None), max_batch=8, lazy=True).compute()
    arr = to_numpy(dp.array)
    return {"tile": tile, "gpts": list(pot.gpts), "slices": int(pot.num_slices), "det_pixels": int(np.prod(arr.shape[-2:])),
            "base_mb": base, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.perf_counter() - t}


def _sigma13(thickness_nm: float, repeat: int):
    from twistox.stem.sample import planview_sample
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    atoms = build_bilayer(nearest_csl(22.62, 400), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=10.0))
    atoms.info["rigid_positions"] = atoms.positions.copy()
    one = planview_sample(atoms, 10 * thickness_nm, 4.0, "top")
    return one, one.repeat((repeat, repeat, 1))


def stream_case(kind: str, budget: float | None) -> dict:
    """4D-STEM COM over a 32 x 32 scan of the 2x2-tiled Sigma13 cell; ``kind`` 'held' (all patterns,
    then com_map, the pre-tiling path) or 'stream' (fourd_maps under ``budget`` MB)."""
    import numpy as np

    from twistox.stem.fourd import com_map, fourd_maps, fourd_plan, simulate_patterns
    from twistox.stem.multislice import ProbeSettings, configure_abtem
    from twistox.stem.sample import to_sample_frame

    configure_abtem("cpu", "float32", 1)
    one, cell = _sigma13(2.0, 2)
    L, Ly = float(one.cell[0, 0]), float(one.cell[1, 1])
    s = ProbeSettings(energy=300e3, semiangle=1.0, potential_sampling=0.1, scan_sampling=L / 32, slice_thickness=2.0,
                      parametrization="lobato", supersampling=1, max_batch=8)
    fd = {"max_angle_mrad": None, "dose": None, "com_mask_factor": 1.5, "com_disc": "mean", "com_radius": "semiangle"}
    t = time.perf_counter()
    plan = fourd_plan([cell], s, (L, Ly), fd, budget)[0]
    if kind == "held":
        pat = to_sample_frame(simulate_patterns(cell, s, (L, Ly), None), "top", ky_dim="ky")
        com = {m: com_map(pat, m, fd, s.semiangle).values for m in ("bright_field", "whole")}
        tiles = 1
    else:
        ds = fourd_maps([cell], s, (L, Ly), fd, 1, "top", budget)
        com = {m: ds[f"com_{m}"].values for m in ("bright_field", "whole")}
        tiles = plan.n_tiles
    np.save(f"/tmp/bench_stem_memory_{kind}_{budget}.npy", np.stack([com["bright_field"], com["whole"]]))
    return {"kind": kind, "budget": budget, "tiles": tiles, "tile": list(plan.tile), "predicted_mb": plan.peak_mb,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": time.perf_counter() - t,
            "com_max_mrad": float(np.abs(com["bright_field"]).max())}


def planview_case(budget: float | None) -> dict:
    import numpy as np

    from twistox.stem.multislice import ProbeSettings, configure_abtem
    from twistox.stem.planview import integrate_range, planview_plan, planview_radial

    configure_abtem("cpu", "float32", 1)
    one, _ = _sigma13(2.0, 1)
    s = ProbeSettings(energy=300e3, semiangle=30.0, potential_sampling=0.05, scan_sampling=float(one.cell[0, 0]) / 16,
                      slice_thickness=2.0, parametrization="lobato", supersampling=1)
    if budget == -1:  # tight: room for 4 scan rows beyond the fixed terms (the output is small in plan view)
        from twistox.stem.tiling import SAFETY

        p0 = planview_plan(one, s, 200.0, 1.0, None)
        budget = (p0.fixed_mb + 4 * p0.scan[1] * p0.per_probe_mb) / SAFETY
    t = time.perf_counter()
    plan = planview_plan(one, s, 200.0, 1.0, budget)
    r = planview_radial(one, s, 0.0, 200.0, 1.0, budget_mb=budget)
    haadf = integrate_range(r, 60, 200).values
    np.save(f"/tmp/bench_stem_memory_pv_{plan.n_tiles > 1}.npy", haadf)
    return {"kind": "planview", "budget": budget, "tiles": plan.n_tiles, "tile": list(plan.tile),
            "predicted_mb": plan.peak_mb, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.perf_counter() - t}


def _run(env, *args) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def stream(env) -> None:
    import numpy as np

    print(f"{'4D-STEM 32x32 probes':28s} {'budget MB':>9} {'tiles':>6} {'predicted MB':>12} {'peak RSS MB':>11} "
          f"{'s':>6} {'max|dCOM| mrad':>14}")
    ref = None
    for kind, budget in (("held", None), ("stream", None), ("stream", 700.0)):
        r = _run(env, "--stream-case", kind, str(budget))
        com = np.load(f"/tmp/bench_stem_memory_{kind}_{budget}.npy")
        ref = com if ref is None else ref
        print(f"{'all patterns held' if kind == 'held' else 'fourd_maps':28s} {str(budget):>9} {r['tiles']:6d} "
              f"{r['predicted_mb']:12.0f} {r['peak_mb']:11.0f} {r['seconds']:6.1f} {np.abs(com - ref).max():14.2e}"
              f"   (|COM| up to {r['com_max_mrad']:.3f} mrad)")
    ref = None
    for budget in (None, -1):
        r = _run(env, "--planview-case", str(budget))
        h = np.load(f"/tmp/bench_stem_memory_pv_{r['tiles'] > 1}.npy")
        ref = h if ref is None else ref
        print(f"{'plan view 16x16, 0.05 Å':28s} {str(r['budget'] and round(r['budget'])):>9} {r['tiles']:6d} {r['predicted_mb']:12.0f} "
              f"{r['peak_mb']:11.0f} {r['seconds']:6.1f}   max rel. HAADF diff {np.abs(h / ref - 1).max():.1e}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        print(json.dumps(case(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] in ("--stream-case", "--planview-case"):
        budget = None if sys.argv[-1] == "None" else float(sys.argv[-1])
        r = stream_case(sys.argv[2], budget) if sys.argv[1] == "--stream-case" else planview_case(budget)
        print(json.dumps(r))
        return
    from twistox.stem.tiling import stem_memory_mb

    env = dict(os.environ, OMP_NUM_THREADS="1")
    if "--stream" in sys.argv:
        stream(env)
        return
    print(f"{'tile':>6} {'grid':>10} {'slices':>6} {'det px':>8} {'measured MB':>12} {'predicted MB':>13} {'error':>7}")
    for tile, sampling, th in ((4, 0.1, 2.0), (16, 0.1, 2.0), (32, 0.1, 2.0)):
        out = subprocess.run([sys.executable, __file__, "--case", str(tile), str(sampling), str(th)], capture_output=True,
                             text=True, env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        pred = stem_memory_mb(tuple(r["gpts"]), r["slices"], tile * tile, r["det_pixels"], batch=8)
        print(f"{tile:>4}^2 {r['gpts'][0]:>5}x{r['gpts'][1]:<4} {r['slices']:6d} {r['det_pixels']:8d} {r['peak_mb']:12.0f} "
              f"{pred:13.0f} {100 * (pred / r['peak_mb'] - 1):+6.0f}%   (process base after imports {r['base_mb']:.0f} MB)")
    stream(env)


if __name__ == "__main__":
    main()
