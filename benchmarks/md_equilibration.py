"""Does the MD of a relaxed sample reach its target temperature before the averaging window opens?

    python benchmarks/md_equilibration.py results/network/STO/theta6.73_m17n1 --ps 1.5 --eq-friction 10
    python benchmarks/md_equilibration.py SAMPLE_DIR --ps 1.5            # eq friction from the sample's config

Starts the relax stage's own Langevin MD (``twistox.relax.md.langevin_md``, BAOAB) from the sample's static
minimum (relaxed.zarr ``positions_relaxed``) with the sample's potential (its relax config: models of the
committee's first member, dtype, time step, temperature, production friction), for ``--ps`` picoseconds
with ``--eq-friction`` (1/ps) during the first ``discard_ps`` of the config. Prints the kinetic temperature
every 0.1 ps next to the trace the sample's own MD stored (relaxed.zarr ``md_temperature``, whatever
friction it ran with), and the mean temperature from ``discard_ps`` to the end of the shorter trace.
Writes benchmarks/results/md_equilibration.csv and .png. Units: ps, K, 1/ps.

Why: started at a minimum, half the Maxwell-Boltzmann kinetic energy flows into the potential (equipartition),
so T drops to ~T/2 and a weak production thermostat (1/ps) refills it only over several ps; a window that
opens at 1 ps then averages a colder run (docs/stages/relax.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("twistox.md_equilibration")
RESULTS = Path(__file__).resolve().parent / "results"


def window_mean(t_ps: np.ndarray, T: np.ndarray, start_ps: float, end_ps: float) -> float:
    """Mean of T over start_ps < t <= end_ps (nan when no sample lies there)."""
    sel = (t_ps > start_ps) & (t_ps <= end_ps + 1e-9)
    return float(np.mean(T[sel])) if np.any(sel) else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sample", type=Path, help="pipeline sample directory with relaxed.zarr")
    ap.add_argument("--ps", type=float, default=1.5, help="MD length (ps)")
    ap.add_argument("--eq-friction", type=float, default=None,
                    help="friction while discarding (1/ps); default: the sample config's value")
    ap.add_argument("--models", nargs="+", default=None,
                    help="MACE model(s); default: SAMPLE_DIR/../mlip/model_0.model (the committee's first member)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "md_equilibration")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    from twistox.core.io import atoms_from_dataset, read_dataset
    from twistox.relax.evaluators import make_evaluator
    from twistox.relax.md import langevin_md
    from twistox.relax.stage import mlip_calculator

    ds = read_dataset(args.sample / "relaxed.zarr")
    cfg = json.loads(ds.attrs["config"])
    relax, md = cfg["relax"], cfg["relax"]["md"]
    models = args.models or [str(args.sample.parent / "mlip" / "model_0.model")]
    eq = md.get("equilibration_friction_per_ps") if args.eq_friction is None else args.eq_friction
    eq = md["friction_per_ps"] if eq is None else eq
    atoms = atoms_from_dataset(ds, "positions_relaxed")
    calc = mlip_calculator(models, mode="first", device=args.device, dtype=relax["dtype"])
    ev = make_evaluator(calc, atoms, skin=relax["neighbour_skin"])
    dt = float(md["timestep_fs"])
    n_steps = int(round(args.ps * 1000.0 / dt))
    n_discard = min(int(round(md["discard_ps"] * 1000.0 / dt)), n_steps - 1)
    log.info("%s: %d atoms, %s; %d steps of %.1f fs at %.0f K, friction %.3g/ps (%.3g/ps for the first %.2f ps)",
             args.sample, len(atoms), models, n_steps, dt, md["temperature_K"], md["friction_per_ps"], eq,
             n_discard * dt / 1000.0)
    t0 = time.time()
    every = max(1, int(round(100.0 / dt)))  # a sample every 0.1 ps
    res = langevin_md(ev, atoms.positions, atoms.get_masses(), md["temperature_K"], dt, n_steps, n_discard,
                      friction_per_fs=md["friction_per_ps"] / 1000.0, sample_every=every,
                      rng=np.random.default_rng(args.seed), equilibration_friction_per_fs=eq / 1000.0)
    wall = time.time() - t0
    t_new, T_new = res.time_fs / 1000.0, res.temperature
    t_ref, T_ref = ds["md_time"].values / 1000.0, ds["md_temperature"].values
    ref_eq = md.get("equilibration_friction_per_ps") or md["friction_per_ps"]  # what the stored run used

    rows = []
    print(f"{'t (ps)':>7} {'T (K), eq ' + format(eq, 'g') + '/ps':>18} {'T (K), stored run (' + format(ref_eq, 'g') + '/ps)':>28}")
    for t, T in zip(t_new, T_new):
        j = np.argmin(np.abs(t_ref - t)) if len(t_ref) else -1
        T_r = float(T_ref[j]) if j >= 0 and abs(t_ref[j] - t) < 1e-6 else float("nan")
        rows.append((round(float(t), 4), float(T), T_r))
        print(f"{t:7.2f} {T:18.1f} {T_r:28.1f}")
    end = float(min(t_new[-1], t_ref[-1] if len(t_ref) else t_new[-1]))
    start = n_discard * dt / 1000.0
    m_new, m_ref = window_mean(t_new, T_new, start, end), window_mean(t_ref, T_ref, start, end)
    print(f"mean T over ({start:.2f}, {end:.2f}] ps: {m_new:.1f} K with {eq:g}/ps while discarding; "
          f"{m_ref:.1f} K in the stored run ({ref_eq:g}/ps); target {md['temperature_K']:.0f} K; "
          f"{wall:.0f} s wall ({wall / n_steps:.2f} s per step, {len(atoms)} atoms)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["# sample", str(args.sample), "atoms", len(atoms), "eq_friction_per_ps", eq,
                    "stored_run_friction_per_ps", ref_eq, "window_mean_K", round(m_new, 2),
                    "stored_window_mean_K", round(m_ref, 2), "wall_s", round(wall, 1)])
        w.writerow(["t_ps", "T_K", "T_stored_K"])
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(t_ref, T_ref, color="0.6", label=f"stored run ({ref_eq:g}/ps while discarding)")
    ax.plot(t_new, T_new, color="C3", label=f"{eq:g}/ps for t < {start:g} ps, then {md['friction_per_ps']:g}/ps")
    ax.axhline(md["temperature_K"], color="k", lw=0.8, ls="--")
    ax.axvline(start, color="k", lw=0.8, ls=":")
    ax.set_xlim(0, max(end, start) * 1.05)
    ax.set_xlabel("t (ps)")
    ax.set_ylabel("kinetic temperature (K)")
    ax.set_title(f"{len(atoms)} atoms: mean over ({start:g}, {end:.2g}] ps {m_new:.0f} K vs {m_ref:.0f} K", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=130)
    log.info("wrote %s (.csv, .png)", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
