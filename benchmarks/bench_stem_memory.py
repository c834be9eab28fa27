"""Peak memory of a 4D-STEM scan tile on CPU vs the model of twistox.stem.tiling (issue 17 item 4).

Each case runs in a fresh process (peak RSS = ru_maxrss): Sigma13 bilayer at reduced thickness,
pixelated detector over a tile of t x t probe positions, patterns held in memory (as
fourd.simulate_patterns does today). Prints measured vs predicted peak and the error.

    python benchmarks/bench_stem_memory.py      # ~1-2 min on 1 core
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


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        print(json.dumps(case(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))))
        return
    from twistox.stem.tiling import stem_memory_mb

    env = dict(os.environ, OMP_NUM_THREADS="1")
    print(f"{'tile':>6} {'grid':>10} {'slices':>6} {'det px':>8} {'measured MB':>12} {'predicted MB':>13} {'error':>7}")
    for tile, sampling, th in ((4, 0.1, 2.0), (16, 0.1, 2.0), (32, 0.1, 2.0)):
        out = subprocess.run([sys.executable, __file__, "--case", str(tile), str(sampling), str(th)], capture_output=True,
                             text=True, env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        pred = stem_memory_mb(tuple(r["gpts"]), r["slices"], tile * tile, r["det_pixels"], batch=8)
        print(f"{tile:>4}^2 {r['gpts'][0]:>5}x{r['gpts'][1]:<4} {r['slices']:6d} {r['det_pixels']:8d} {r['peak_mb']:12.0f} "
              f"{pred:13.0f} {100 * (pred / r['peak_mb'] - 1):+6.0f}%   (process base after imports {r['base_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
