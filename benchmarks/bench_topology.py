"""Speed of the topology analysis: vectorised winding map / skyrmion number against a per-plaquette
Python loop (the baseline, same run), and the full defect search on growing grids.

    python benchmarks/bench_topology.py              # small sizes, < 1 min on 2 CPU cores
    python benchmarks/bench_topology.py --n 128 512 1024
"""

import argparse
import time

import numpy as np

from twistox.analysis.defects import find_defects
from twistox.analysis.topology import skyrmion_number, winding_map


def lattice(n, periods=4, seed=0):
    L = 10.0 * periods
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    k = 2 * np.pi * periods / L
    rng = np.random.default_rng(seed)
    return x, -np.sin(k * Y) + 0.1 * rng.standard_normal(X.shape), np.sin(k * X) + 0.1 * rng.standard_normal(X.shape)


def winding_loop(vx, vy):
    """Baseline: one plaquette at a time (periodic)."""
    ny, nx = vx.shape
    phi = np.arctan2(vy, vx)
    out = np.zeros((ny, nx), int)
    for i in range(ny):
        for j in range(nx):
            c = [phi[i, j], phi[i, (j + 1) % nx], phi[(i + 1) % ny, (j + 1) % nx], phi[(i + 1) % ny, j]]
            s = sum((c[(q + 1) % 4] - c[q] + np.pi) % (2 * np.pi) - np.pi for q in range(4))
            out[i, j] = round(s / (2 * np.pi))
    return out


def best(f, repeat=3):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = f()
        t.append(time.perf_counter() - t0)
    return min(t), r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[64, 128, 256], help="grid sizes (n x n)")
    ap.add_argument("--loop-max", type=int, default=256, help="largest n for the slow loop baseline")
    a = ap.parse_args()
    print(f"{'n':>6} {'winding (ms)':>13} {'loop (ms)':>10} {'speed-up':>9} {'skyrmion (ms)':>14} "
          f"{'find_defects (ms)':>18} {'defects':>8}")
    for n in a.n:
        x, vx, vy = lattice(n)
        tw, w = best(lambda: winding_map(vx, vy))
        if n <= a.loop_max:
            tl, wl = best(lambda: winding_loop(vx, vy), 1)
            assert np.array_equal(w, wl), "vectorised and loop winding maps differ"
            loop, ratio = f"{tl * 1e3:10.1f}", f"{tl / tw:8.0f}x"
        else:
            loop, ratio = f"{'-':>10}", f"{'-':>9}"
        pz = np.full_like(vx, 0.3)
        ts, _ = best(lambda: skyrmion_number(vx, vy, pz))
        tf, (d, _) = best(lambda: find_defects(vx, vy, x, x))
        print(f"{n:6d} {tw * 1e3:13.2f} {loop} {ratio} {ts * 1e3:14.2f} {tf * 1e3:18.1f} {len(d):8d}")


if __name__ == "__main__":
    main()
