"""Independent CHGNet cross-check of a pipeline sample's relaxed network (issue 12 item 8).

    python benchmarks/network_crosscheck.py results/network/STO/theta6.73_m17n1          # the Sigma145 sample
    python benchmarks/network_crosscheck.py SAMPLE_DIR --fmax 0.03 --steps 2000 --optimizer ase
    python benchmarks/network_crosscheck.py --demo-sigma 25 --workdir /tmp/xc                 # build + relax a
        # small twisted bilayer with CHGNet as the "pipeline" potential too (proves the script runs end to end)
    python benchmarks/network_crosscheck.py --self-test                                      # seconds, no CHGNet

From SAMPLE_DIR (supercell.zarr, relaxed.zarr, strain.zarr of the pipeline; MACE) it takes the SAME rigid
structure (relaxed.zarr ``positions_rigid``: the same registry), rescales it to CHGNet's own cubic a0
(``twistox.relax.lattice_constant.apply_lattice_constant``), relaxes it with CHGNet (pretrained weights
shipped in the package) with FIRE, and computes the strain fields of the CHGNet result with the strain
stage itself (``twistox.strain.stage.run`` on a relaxed.zarr-like dataset built by
``twistox.relax.stage.relaxed_dataset``). Printed side by side and written to
benchmarks/results/network_crosscheck.csv (+ network_crosscheck.png):

- network period from the crystal eps_xy map and from the interlayer-twist map (strain.zarr attrs
  ``network_period_eps_xy``, ``network_period_twist``: the same code for both potentials), and λ;
- the twist-boundary energies rigid/relaxed (``twistox.relax.boundary``), each against its own potential's
  untwisted 1x1 reference (MACE: relaxed.zarr attrs when present, else ``--mace-models``);
- the Pearson correlation of the two interlayer-twist maps (and of each interface plane's local rotation)
  after aligning their registry: maximised over periodic in-plane shifts with an FFT cross-correlation, the
  shift reported (the goal is r >= 0.8). Maps on different grids (the two a0 differ) are compared in
  fractional coordinates after an exact trigonometric resampling.

MACE's strain.zarr is built from the MD-averaged positions when the relax stage ran MD; the script also
recomputes MACE's fields from its static relaxation (``positions_relaxed``), which is what CHGNet's static
relaxation is compared with. CHGNet is a check only, never a labeller.

Optimiser: ``--optimizer twistox`` (default) is ``twistox.relax.fire.fire_relax`` (ASE's FIRE update with a
per-atom step cap, the pipeline's own relaxation) on CHGNet through the plain ASE evaluator; ``ase`` is
``ase.optimize.FIRE`` (its ``maxstep`` caps the norm of the WHOLE step vector, so a 1450-atom rigid interface
with ~10 eV/Å contact forces moves each atom ~0.003 Å per step: many more steps).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

log = logging.getLogger("twistox.crosscheck")
RESULTS = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------------------------- map analysis
def fourier_resample(field: np.ndarray, n: int) -> np.ndarray:
    """A periodic map on a cell-centred m x m grid ([y, x], samples at (i + 1/2) L / m) evaluated on the
    cell-centred n x n grid of the same cell: the trigonometric interpolant (exact for band-limited maps)."""
    f = np.asarray(field, float)
    m = f.shape[-1]
    if f.shape != (m, m):
        raise ValueError(f"field: shape {f.shape}; allowed: square (m, m)")
    if n == m:
        return f.copy()
    F = np.fft.fft2(f)
    k = np.fft.fftfreq(m, 1.0 / m)
    t = (np.arange(n) + 0.5) / n  # target fractional coordinates
    E = np.exp(2j * np.pi * np.outer(t * m - 0.5, k) / m)  # (n, m): sample index i at t m - 1/2
    return np.real(E @ F @ E.T) / m**2


def aligned_correlation(a: np.ndarray, b: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Pearson r of map ``a`` with ``b`` rolled by the periodic shift (dy, dx) pixels that maximises |r|
    (ties go to the positive r), from one FFT cross-correlation: C[s] = sum_x a'[x] b'[x - s] with a', b'
    the mean-free maps. ``np.roll(b, (dy, dx), axis=(0, 1))`` is the aligned b; shifts in [-n/2, n/2).
    A reversed pattern reads r = -1 unless some shift maps it onto itself (then that shift and +r)."""
    a = np.nan_to_num(np.asarray(a, float) - np.nanmean(a))
    b = np.nan_to_num(np.asarray(b, float) - np.nanmean(b))
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"maps: shapes {a.shape} and {b.shape}; allowed: the same 2-D shape (resample first)")
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if norm == 0.0:
        return float("nan"), (0, 0)
    r = np.real(np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b)))) / norm
    best = np.abs(r).max()
    cand = np.flatnonzero(np.abs(r).ravel() >= best - 1e-9)
    idx = cand[np.argmax(r.ravel()[cand])]
    dy, dx = np.unravel_index(idx, r.shape)
    ny, nx = r.shape
    dy, dx = (int(dy) + ny // 2) % ny - ny // 2, (int(dx) + nx // 2) % nx - nx // 2
    return float(r.ravel()[idx]), (dy, dx)


def map_period(field: np.ndarray, L: float, max_order: int | None = None, atol: float = 0.0) -> float:
    """Period (Å) of the strongest harmonic of a periodic map on a supercell of side L: the strain stage's
    ``twistox.strain.fourier.dominant_period`` (what network_period_eps_xy / _twist come from)."""
    from twistox.strain.fourier import dominant_period

    return dominant_period(field, L, max_order=max_order, atol=atol)[0]


def compare_maps(ref: np.ndarray, other: np.ndarray) -> tuple[float, tuple[int, int], np.ndarray]:
    """(r, shift, other on ref's grid rolled into alignment)."""
    o = fourier_resample(other, ref.shape[-1])
    r, s = aligned_correlation(ref, o)
    return r, s, np.roll(o, s, axis=(0, 1))


# --------------------------------------------------------------------------------------------- CHGNet side
def chgnet_calculator(device: str = "cpu"):
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(use_device=device)


def relax_chgnet(atoms, calc, fmax: float, steps: int, maxstep: float, optimizer: str, log_every: int = 10,
                 checkpoint_dir: Path | None = None):
    """FIRE relaxation of ``atoms`` with ``calc``; returns (positions Å, energy eV, fmax eV/Å, converged,
    steps, seconds per force call). ``checkpoint_dir`` (twistox optimiser only): the FIRE state is saved there
    every 5 min, keyed by the start positions and settings, and a rerun resumes from it (a 2900-atom CHGNet
    relaxation on a CPU outlasts one session)."""
    from twistox.core.md import AseEvaluator
    from twistox.relax.fire import fire_relax

    t0 = time.time()
    if optimizer == "ase":
        from ase.optimize import FIRE

        at = atoms.copy()
        at.calc = calc
        opt = FIRE(at, maxstep=maxstep, logfile=None)
        n = {"k": 0}

        def progress():
            n["k"] += 1
            if n["k"] % log_every == 0:
                f = np.linalg.norm(at.get_forces(), axis=1).max()
                log.info("CHGNet ASE FIRE step %d: E = %.4f eV, max force %.3f eV/Å, %.2f s/step", n["k"],
                         at.get_potential_energy(), f, (time.time() - t0) / n["k"])

        opt.attach(progress, interval=1)
        conv = bool(opt.run(fmax=fmax, steps=steps))
        f = float(np.linalg.norm(at.get_forces(), axis=1).max())
        nst = max(opt.nsteps, 1)
        return at.positions.copy(), float(at.get_potential_energy()), f, conv, opt.nsteps, (time.time() - t0) / nst
    from twistox.core.checkpoint import Checkpoint
    from twistox.core.hashing import settings_hash

    ev = AseEvaluator(atoms, calc)
    ck = None
    if checkpoint_dir is not None:
        key = settings_hash(atoms.positions, atoms.numbers, np.array(atoms.cell), fmax, maxstep, "chgnet",
                            decimals=6)
        ck = Checkpoint(checkpoint_dir, key, interval_s=300.0)
        log.info("CHGNet FIRE checkpoints in %s (key %s)%s", checkpoint_dir, key,
                 ": resuming" if ck.exists("chgnet") else "")

    def cb(step, x):
        if step % log_every == 0:
            r = ev.atoms.calc.results
            log.info("CHGNet FIRE step %d: E = %.4f eV, max force %.3f eV/Å, %.2f s/step", step, r["energy"],
                     float(np.linalg.norm(r["forces"], axis=1).max()), (time.time() - t0) / max(ev.n_calls, 1))

    res = fire_relax(ev, atoms.positions[None], fmax=fmax, max_steps=steps, maxstep=maxstep, phase="chgnet",
                     callback=cb, checkpoint=ck)
    return (res.positions[0], float(res.energies[0]), float(res.fmax[0]), bool(res.converged[0]), int(res.steps[0]),
            (time.time() - t0) / max(ev.n_calls, 1))


def relaxed_like(rigid, positions, energy: float, e_rigid: float, fmax: float, converged: bool, base_attrs: dict):
    """relaxed.zarr-like Dataset (``twistox.relax.stage.relaxed_dataset``) of a static relaxation of ``rigid``."""
    from twistox.relax.stage import RelaxOutcome, relaxed_dataset

    one = np.zeros(1)
    pos = np.array(positions, float)
    L = np.diag(rigid.cell)[:2]
    pos_w = pos.copy()
    pos_w[:, :2] = np.mod(pos_w[:, :2], L)
    out = RelaxOutcome(positions=pos_w, positions_relaxed=pos, positions_rigid=rigid.positions.copy(), tx=one, ty=one.copy(),
                       scan_energy=np.array([[energy]]), scan_energy_rigid=np.array([[e_rigid]]),
                       scan_fmax=np.array([[fmax]]), scan_converged=np.array([[converged]]), best=(0, 0),
                       energy_relaxed=energy, fmax_relaxed=fmax, converged=converged, md=None, timings={})
    return relaxed_dataset(rigid, out, base_attrs)


def strain_of(relaxed: xr.Dataset, strain_cfg: dict, species: dict | None, positions: str = "positions") -> xr.Dataset:
    """strain.zarr contents of ``relaxed`` (optionally from another positions variable, e.g. positions_relaxed)."""
    from twistox.strain.stage import run

    ds = relaxed.copy()
    if positions != "positions":
        pos = ds[positions].values.copy()
        L = np.diag(ds["cell"].values)[:2]
        pos[:, :2] = np.mod(pos[:, :2], L)  # wrapped like relaxed.zarr positions (static FIRE keeps them unwrapped)
        ds["positions"] = (ds[positions].dims, pos, dict(ds[positions].attrs))
    return run(ds, strain_cfg, species=species, log=log)


# --------------------------------------------------------------------------------------------- the check
def _provenance(ds: xr.Dataset) -> dict:
    try:
        return json.loads(ds.attrs.get("config", "{}"))
    except (TypeError, ValueError):
        return {}


def crosscheck(sample: Path, fmax: float, steps: int, maxstep: float, optimizer: str, device: str,
               registry_grid: int, repeat: int, mace_models: list[str] | None, out_csv: Path, out_png: Path,
               boundary: bool = True, checkpoint_dir: Path | None = None) -> dict:
    from twistox.core.io import atoms_from_dataset, read_dataset
    from twistox.relax.boundary import BoundarySettings, boundary_energy_attrs
    from twistox.relax.lattice_constant import apply_lattice_constant, geometry_attrs

    for name in ("relaxed.zarr", "strain.zarr"):
        if not (sample / name).exists():
            raise SystemExit(f"{sample / name} not found: give a pipeline sample directory with relaxed.zarr and "
                             "strain.zarr (e.g. results/network/STO/theta6.73_m17n1)")
    relaxed = read_dataset(sample / "relaxed.zarr")
    strain_mace = read_dataset(sample / "strain.zarr")
    prov_s, prov_r = _provenance(strain_mace), _provenance(relaxed)
    strain_cfg = dict(prov_s.get("strain") or {})
    system = prov_s.get("system") or prov_r.get("system") or {}
    species = {"B": system["B"], "X": system["X"]} if "B" in system and "X" in system else None
    relax_cfg = prov_r.get("relax") or {}
    bset = BoundarySettings(registry_grid=registry_grid, repeat=repeat)

    rigid_mace = atoms_from_dataset(relaxed, "positions_rigid")
    log.info("%s: %d atoms, Sigma %s, theta %.3f deg, MACE a = %.4f Å; rigid structure at the pipeline's registry %s",
             sample, len(rigid_mace), relaxed.attrs.get("sigma"), float(relaxed.attrs["theta_deg"]),
             float(relaxed.attrs["a"]), relaxed.attrs.get("translation"))
    calc = chgnet_calculator(device)
    t0 = time.time()
    rigid, lat = apply_lattice_constant(rigid_mace, calc, "potential")
    log.info("CHGNet cubic a0 = %.4f Å (B = %.1f GPa; MACE a = %.4f Å) in %.1f s", lat["a_potential"],
             lat["bulk_modulus_GPa"], float(relaxed.attrs["a"]), time.time() - t0)
    rigid.calc = calc
    e_rigid = float(rigid.get_potential_energy())
    rigid.calc = None
    pos, e_rel, fm, conv, nsteps, s_per_step = relax_chgnet(rigid, calc, fmax, steps, maxstep, optimizer,
                                                            checkpoint_dir=checkpoint_dir)
    log.info("CHGNet relaxation: E %.4f -> %.4f eV, max force %.4f eV/Å (%s) after %d steps, %.3f s per force call "
             "(%d atoms)", e_rigid, e_rel, fm, "converged" if conv else "NOT converged", nsteps, s_per_step, len(rigid))
    keep = {k: v for k, v in relaxed.attrs.items() if k not in ("config", "package_versions", "git_commit", "host",
                                                                 "wall_time_s", "twistox_version")
            and not k.startswith("boundary_")}
    ds_chg = relaxed_like(rigid, pos, e_rel, e_rigid, fm, conv, {**keep, **geometry_attrs(rigid), **lat})
    strain_chg = strain_of(ds_chg, strain_cfg, species)
    strain_mace_static = strain_of(relaxed, strain_cfg, species, "positions_relaxed") if "positions_relaxed" in relaxed \
        else strain_mace

    b_chg, b_mace = {}, {k: v for k, v in relaxed.attrs.items() if k.startswith("boundary_")}
    if boundary:
        b_chg = boundary_energy_attrs(rigid, calc, e_rigid, e_rel, bset, fmax=fmax, max_steps=steps, maxstep=maxstep)
        if "boundary_energy_relaxed_J_m2" not in b_mace and mace_models:
            from twistox.relax.stage import mlip_calculator

            mcalc = mlip_calculator(mace_models, mode=relax_cfg.get("committee_mode", "mean"), device=device,
                                    dtype=relax_cfg.get("dtype", "float64"))
            i, j = np.unravel_index(int(np.nanargmin(relaxed["translation_energy"].values)),
                                    relaxed["translation_energy"].shape)
            b_mace = boundary_energy_attrs(rigid_mace, mcalc, float(relaxed["translation_energy_rigid"].values[i, j]),
                                           float(relaxed.attrs["energy_relaxed"]), bset,
                                           fmax=relax_cfg.get("fmax", fmax), max_steps=relax_cfg.get("max_steps", steps),
                                           maxstep=relax_cfg.get("maxstep", maxstep))

    # registry-aligned correlations (fractional coordinates; MACE grid is the reference)
    corr = {}
    r, s, tw_aligned = compare_maps(strain_mace_static["interlayer_twist"].values, strain_chg["interlayer_twist"].values)
    corr["interlayer_twist"] = (r, s)
    corr["interlayer_twist_vs_md_averaged"] = compare_maps(strain_mace["interlayer_twist"].values,
                                                           strain_chg["interlayer_twist"].values)[:2]
    for side, p in zip(("bottom", "top"), strain_mace.attrs["interface_planes"]):
        corr[f"rotation_{side}_interface_plane"] = compare_maps(
            strain_mace_static["rotation"].sel(plane=int(p)).values, strain_chg["rotation"].sel(plane=int(p)).values)[:2]
    L_m = float(strain_mace.attrs["supercell_length"])
    n_m = strain_mace_static["interlayer_twist"].shape[-1]

    A = lambda d, k: float(d.attrs.get(k, np.nan))  # noqa: E731
    rows = [
        ("lattice constant a", A(relaxed, "a"), lat["a_potential"], "Å", "cubic a0 of each potential (BM fit)"),
        ("moire period", A(strain_mace, "moire_period"), A(strain_chg, "moire_period"), "Å", "a / (2 sin(θ/2))"),
        ("network period eps_xy (static)", A(strain_mace_static, "network_period_eps_xy"),
         A(strain_chg, "network_period_eps_xy"), "Å", "strain stage, both interface planes"),
        ("network period twist (static)", A(strain_mace_static, "network_period_twist"),
         A(strain_chg, "network_period_twist"), "Å", "strain stage, interlayer twist map"),
        ("network period eps_xy (strain.zarr)", A(strain_mace, "network_period_eps_xy"), np.nan, "Å",
         "pipeline (MD-averaged if MD ran)"),
        ("network period twist (strain.zarr)", A(strain_mace, "network_period_twist"), np.nan, "Å",
         "pipeline (MD-averaged if MD ran)"),
        ("interlayer twist range", float(np.ptp(strain_mace_static["interlayer_twist"].values)),
         float(np.ptp(strain_chg["interlayer_twist"].values)), "deg", "max - min"),
        ("relaxed energy per atom", A(relaxed, "energy_relaxed") / len(rigid), e_rel / len(rigid), "eV",
         "different potentials: absolute values not comparable"),
        ("final max force", A(relaxed, "fmax_relaxed"), fm, "eV/Å", ""),
        ("relaxation steps", np.nan, nsteps, "1", f"CHGNet {optimizer} FIRE, fmax {fmax}"),
        ("seconds per force call", np.nan, s_per_step, "s", f"CHGNet, {len(rigid)} atoms, {device}"),
        ("boundary energy rigid", b_mace.get("boundary_energy_rigid_J_m2", np.nan),
         b_chg.get("boundary_energy_rigid_J_m2", np.nan), "J/m^2", "vs own rigid 1x1 reference"),
        ("boundary energy relaxed", b_mace.get("boundary_energy_relaxed_J_m2", np.nan),
         b_chg.get("boundary_energy_relaxed_J_m2", np.nan), "J/m^2", "vs own relaxed 1x1 reference"),
    ]
    for k, (r_, s_) in corr.items():
        rows.append((f"correlation {k}", r_, np.nan, "1",
                     f"Pearson r after alignment; shift (dy, dx) = {s_} px = ({s_[0] * L_m / n_m:.2f}, "
                     f"{s_[1] * L_m / n_m:.2f}) Å on the MACE grid; goal >= 0.8"))
    print(f"\n{'quantity':40s} {'MACE (pipeline)':>16s} {'CHGNet':>12s}  unit   note")
    for q, m, c, u, note in rows:
        print(f"{q:40s} {m:16.5g} {c:12.5g}  {u:6s} {note}")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample", "quantity", "mace", "chgnet", "unit", "note"])
        for q, m, c, u, note in rows:
            w.writerow([str(sample), q, m, c, u, note])
    plot_comparison(strain_mace_static, strain_chg, tw_aligned, corr["interlayer_twist"], out_png)
    log.info("wrote %s and %s", out_csv, out_png)
    return {"rows": rows, "corr": corr, "strain_chgnet": strain_chg, "boundary_chgnet": b_chg}


def plot_comparison(st_m: xr.Dataset, st_c: xr.Dataset, aligned: np.ndarray, corr, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tm, tc = st_m["interlayer_twist"].values, st_c["interlayer_twist"].values
    Lm, Lc = float(st_m.attrs["supercell_length"]), float(st_c.attrs["supercell_length"])
    theta = float(st_m.attrs["theta_deg"])
    v = max(np.abs(tm - theta).max(), np.abs(tc - theta).max(), 1e-6)
    fig, ax = plt.subplots(1, 3, figsize=(14, 4.6), constrained_layout=True)
    for a_, img, L, title in ((ax[0], tm, Lm, f"MACE (pipeline, static)\nperiod twist {st_m.attrs['network_period_twist']:.2f} Å"),
                              (ax[1], tc, Lc, f"CHGNet\nperiod twist {st_c.attrs['network_period_twist']:.2f} Å")):
        im = a_.imshow(img - theta, origin="lower", extent=(0, L, 0, L), cmap="RdBu_r", vmin=-v, vmax=v)
        a_.set_title(title, fontsize=10)
        a_.set_xlabel("x (Å)")
        a_.set_ylabel("y (Å)")
    fig.colorbar(im, ax=ax[:2], label="local twist - θ (deg)", shrink=0.85)
    d = aligned - tm
    w = max(np.abs(d).max(), 1e-6)
    im2 = ax[2].imshow(d, origin="lower", extent=(0, Lm, 0, Lm), cmap="PuOr", vmin=-w, vmax=w)
    ax[2].set_title(f"CHGNet aligned - MACE: r = {corr[0]:.3f}, shift {corr[1]} px", fontsize=10)
    ax[2].set_xlabel("x (Å, MACE cell)")
    fig.colorbar(im2, ax=ax[2], label="deg", shrink=0.85)
    ax[0].set_title(f"interlayer twist, θ = {theta:.2f}°; " + ax[0].get_title(), fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- demo + self-test
def build_demo_sample(sigma: int, workdir: Path, device: str, fmax: float, steps: int, maxstep: float,
                      registry_grid: int, repeat: int, cells: int = 1) -> Path:
    """A pipeline-like sample directory for a small twisted bilayer, relaxed by the relax stage's own code
    (lattice constant, relax_bilayer without scan/MD, boundary energy) and the strain stage, with CHGNet
    standing in for MACE: supercell.zarr, relaxed.zarr, strain.zarr."""
    from twistox.core.config import with_schema_defaults
    from twistox.core.io import structure_dataset, write_dataset
    from twistox.dft.twisted import csl_of_sigma
    from twistox.relax.boundary import relax_stage_boundary_attrs
    from twistox.relax.lattice_constant import apply_lattice_constant, geometry_attrs
    from twistox.relax.stage import relax_bilayer, relaxed_dataset
    from twistox.strain.stage import run as strain_run
    from twistox.supercell.builder import BilayerSpec, build_bilayer

    csl = csl_of_sigma(sigma)
    spec = BilayerSpec(bottom_cells=cells, top_cells=cells, interlayer_spacing=1.9525, vacuum=12.0)
    atoms = build_bilayer(csl, spec)
    sample = workdir / f"theta{csl.theta_deg:.2f}_m{csl.m}n{csl.n}"
    sc = structure_dataset(atoms)
    write_dataset(sc, sample / "supercell.zarr", config={"system": {"B": "Ti", "X": "O"}}, stage="supercell")
    calc = chgnet_calculator(device)
    atoms, lat = apply_lattice_constant(atoms, calc, "potential")
    cfg = with_schema_defaults("relax", {"translation_grid": 1, "fmax": fmax, "scan_fmax": fmax, "max_steps": steps,
                                         "scan_max_steps": steps, "maxstep": maxstep, "md": {"enabled": False},
                                         "boundary_energy": {"registry_grid": registry_grid, "repeat": repeat}})
    t0 = time.time()
    out = relax_bilayer(atoms, calc, cfg, np.random.default_rng(0))
    log.info("demo 'pipeline' relaxation (relax_bilayer, CHGNet): %d atoms, %d force calls in %.1f s",
             len(atoms), out.timings["scan_force_calls"] + out.timings["refine_force_calls"], time.time() - t0)
    ds = relaxed_dataset(atoms, out, {**dict(sc.attrs), **geometry_attrs(atoms), **lat})
    ds.attrs.update(relax_stage_boundary_attrs(atoms, calc, out, cfg))
    prov = {"relax": cfg, "system": {"B": "Ti", "X": "O"}}
    write_dataset(ds, sample / "relaxed.zarr", config=prov, stage="relax")
    strain_cfg = with_schema_defaults("strain", {})
    st = strain_run(ds, strain_cfg, species={"B": "Ti", "X": "O"}, log=log)
    write_dataset(st, sample / "strain.zarr", config={"strain": strain_cfg, "system": {"B": "Ti", "X": "O"}},
                  stage="strain")
    return sample


def self_test() -> None:
    """Known answers of the map analysis (no CHGNet): shifted map -> r = 1 and its shift; negative -> -1;
    resampling of a band-limited map; periods of analytic maps."""
    rng = np.random.default_rng(3)
    n, L = 48, 40.0
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    # a generic band-limited map (random low harmonics)
    f = sum(rng.normal() * np.cos(2 * np.pi * (h * X + k * Y) / L + rng.uniform(0, 2 * np.pi))
            for h in range(-3, 4) for k in range(0, 4))
    r, s = aligned_correlation(f, np.roll(f, (5, -7), axis=(0, 1)))
    assert abs(r - 1) < 1e-12 and s == (-5, 7), (r, s)
    r, s = aligned_correlation(f, -f)
    assert abs(r + 1) < 1e-12 and s == (0, 0), (r, s)
    m = 37
    xm = (np.arange(m) + 0.5) * L / m
    Xm, Ym = np.meshgrid(xm, xm)
    g = np.cos(2 * np.pi * (2 * Xm + 3 * Ym) / L) + 0.5 * np.sin(2 * np.pi * Xm / L)
    want = np.cos(2 * np.pi * (2 * X + 3 * Y) / L) + 0.5 * np.sin(2 * np.pi * X / L)
    assert np.abs(fourier_resample(g, n) - want).max() < 1e-10
    lam = L / 4
    sq = np.cos(2 * np.pi * X / lam) + np.cos(2 * np.pi * Y / lam) + 0.3 * np.cos(2 * np.pi * (X + Y) / lam)
    assert abs(map_period(sq, L) - lam) < 1e-12
    assert abs(map_period(np.cos(2 * np.pi * (3 * X + 4 * Y) / L), L) - L / 5) < 1e-12
    print("self-test passed: aligned correlation (shift, sign), trigonometric resampling, periods")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n")[1])
    p.add_argument("sample", nargs="?", type=Path, help="pipeline sample dir, e.g. results/network/STO/theta6.73_m17n1")
    p.add_argument("--fmax", type=float, default=0.03, help="CHGNet FIRE force tolerance, eV/Å (pipeline relax.fmax)")
    p.add_argument("--steps", type=int, default=2000, help="CHGNet FIRE max steps")
    p.add_argument("--maxstep", type=float, default=0.1, help="FIRE step cap, Å (per atom for twistox, whole step for ase)")
    p.add_argument("--optimizer", choices=("twistox", "ase"), default="twistox")
    p.add_argument("--device", default="cpu", help="torch device for CHGNet (cpu, cuda)")
    p.add_argument("--registry-grid", type=int, default=4, help="1x1 reference registries g x g (boundary energy)")
    p.add_argument("--repeat", type=int, default=2, help="1x1 reference repeat r x r (boundary energy)")
    p.add_argument("--no-boundary", action="store_true", help="skip the boundary energies")
    p.add_argument("--mace-models", nargs="*", default=None,
                   help="MACE model files, for the MACE boundary energy when relaxed.zarr predates it")
    p.add_argument("--csv", type=Path, default=RESULTS / "network_crosscheck.csv")
    p.add_argument("--png", type=Path, default=RESULTS / "network_crosscheck.png")
    p.add_argument("--demo-sigma", type=int, default=None,
                   help="build a Sigma (1+1 cells) sample relaxed with CHGNet by the stage code, then cross-check it")
    p.add_argument("--workdir", type=Path, default=Path("results/crosscheck_demo"), help="where --demo-sigma writes")
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="save/resume the CHGNet FIRE state here (twistox optimiser; e.g. a multi-session CPU run)")
    p.add_argument("--self-test", action="store_true", help="known-answer checks of the map analysis, then exit")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    if a.self_test:
        self_test()
        return 0
    sample = a.sample
    if a.demo_sigma is not None:
        sample = build_demo_sample(a.demo_sigma, a.workdir, a.device, a.fmax, a.steps, a.maxstep, a.registry_grid,
                                   a.repeat)
    if sample is None:
        p.error("give a sample directory (or --demo-sigma N, or --self-test)")
    crosscheck(sample, a.fmax, a.steps, a.maxstep, a.optimizer, a.device, a.registry_grid, a.repeat, a.mace_models,
               a.csv, a.png, boundary=not a.no_boundary, checkpoint_dir=a.checkpoint_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
