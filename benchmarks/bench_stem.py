"""Plan-view STEM: twistox's path vs the same simulation written directly with abTEM, in one run.

Same specimen, same requested potential sampling, same scan, same detector and foci. The plain
version is abTEM's tutorial style (Potential(sampling=...), one probe.scan per focus, defaults);
twistox picks an FFT-friendly grid, builds the potential once for all foci and uses
cache-sized probe batches. Prints wall times and the ratio plain / twistox (> 1: twistox faster).

    python benchmarks/bench_stem.py                      # toy: Sigma13, 2 nm, ~1 min on 1 core
    python benchmarks/bench_stem.py --theta 10 --thickness-nm 5 --scan 0.3
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from twistox.stem.multislice import ProbeSettings, build_potential, configure_abtem  # noqa: E402
from twistox.stem.planview import planview_radial  # noqa: E402
from twistox.stem.sample import planview_sample  # noqa: E402
from twistox.supercell.lattice import nearest_csl  # noqa: E402
from twistox.supercell.builder import BilayerSpec, build_bilayer  # noqa: E402


def specimen(theta: float, thickness_nm: float):
    atoms = build_bilayer(nearest_csl(theta, 400), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=10.0))
    atoms.info["rigid_positions"] = atoms.positions.copy()
    return planview_sample(atoms, 10 * thickness_nm, 4.0, "top")


def plain_abtem(sample, sampling, scan, foci, outer):
    import abtem

    out = []
    L = sample.cell[0, 0]
    pot = abtem.Potential(sample, sampling=sampling, slice_thickness=2.0, parametrization="lobato",
                          projection="infinite")
    for df in foci:
        probe = abtem.Probe(energy=300e3, semiangle_cutoff=30.0, Cs=1590.0, defocus=df)
        probe.grid.match(pot)
        gscan = abtem.GridScan(start=(0, 0), end=(L, L), sampling=scan)
        det = abtem.FlexibleAnnularDetector(step_size=1.0, outer=outer)
        out.append(probe.scan(pot, scan=gscan, detectors=det).compute().array)
    return out, pot.gpts


def ours(sample, sampling, scan, foci, outer, supersampling=1):
    s = ProbeSettings(energy=300e3, semiangle=30.0, cs=1590.0, potential_sampling=sampling, scan_sampling=scan,
                      slice_thickness=2.0, parametrization="lobato", supersampling=supersampling)
    pot = build_potential(sample, s)
    out = [planview_radial(sample, s, df, outer, 1.0, pot=pot).values for df in foci]
    return out, pot.gpts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--theta", type=float, default=22.62, help="twist angle (deg); default Sigma13")
    ap.add_argument("--thickness-nm", type=float, default=2.0)
    ap.add_argument("--sampling", type=float, default=0.05, help="potential sampling (Å)")
    ap.add_argument("--scan", type=float, default=0.6, help="scan step (Å)")
    ap.add_argument("--outer", type=float, default=120.0, help="detector outer angle (mrad)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import abtem

    sample = specimen(args.theta, args.thickness_nm)
    foci = [0.0, sample.info["interface_depth"] + 4.0]
    print(f"specimen: {len(sample)} atoms, L = {sample.cell[0, 0]:.2f} Å, {sample.info['sample_thickness']:.1f} Å thick; "
          f"sampling {args.sampling} Å, scan {args.scan} Å, {len(foci)} foci, {args.threads} thread(s)")
    # plain: abTEM defaults (float32, FFTW with FFTW_MEASURE planning, 128 MB chunks)
    abtem.config.set({"device": "cpu", "fftw.threads": args.threads})
    t = time.perf_counter()
    ref, g_ref = plain_abtem(sample, args.sampling, args.scan, foci, args.outer)
    t_plain = time.perf_counter() - t
    configure_abtem("cpu", "float32", args.threads)
    t = time.perf_counter()
    got, g_ours = ours(sample, args.sampling, args.scan, foci, args.outer)
    t_ours = time.perf_counter() - t
    # same physics: the HAADF (60 mrad - outer) of both agree to the grid difference
    h_ref = np.array([r[..., 60:int(args.outer), 0].sum(-1) for r in ref])
    h_got = np.array([g[..., 60:int(args.outer)].sum(-1).T for g in got])
    diff = np.abs(h_ref - h_got).max() / np.abs(h_ref).max()
    print(f"plain abTEM : grid {g_ref}, {t_plain:7.2f} s")
    print(f"twistox     : grid {g_ours}, {t_ours:7.2f} s   (HAADF max rel. difference {diff:.3f})")
    print(f"ratio plain / twistox = {t_plain / t_ours:.2f}")
    t = time.perf_counter()
    ours(sample, args.sampling, args.scan, foci, args.outer, supersampling=2)
    t_ss = time.perf_counter() - t
    print(f"twistox with 2x supersampled potential (default, more accurate): {t_ss:7.2f} s "
          f"(ratio plain / twistox-ss2 = {t_plain / t_ss:.2f})")


if __name__ == "__main__":
    main()
