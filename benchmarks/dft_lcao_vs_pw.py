"""LCAO (dzp) vs plane-wave GPAW labels on small training frames (issue 12, item 2).

config/network.yaml labels every DFT frame with GPAW LCAO dzp, because its 50-atom Sigma5 and 90-atom carved
Sigma9 frames are out of reach of plane waves on this machine. This measures what that costs on frames small
enough for both: each frame is labelled twice through the project's own path (``make_calculator`` +
``label_one``, as the labeller does), once with network.yaml's ``dft`` block (LCAO dzp, h 0.2 Å) and once with
the same block switched to plane waves (same xc, U, smearing, k-points, SCF tolerances, dipole layer;
cutoff ``--ecut``, default 500 eV = the paper's).

Frames (built with twistox.dft.trainset as ``generate`` builds them, network.yaml settings):
- bulk SrTiO3 (5 atoms): the cubic cell (reference) and strained (<= bulk_max_strain) + rattled cells;
- the untwisted 1+1-cell SrO/TiO2 bilayer (10 atoms) at registries (0,0), (1/2,1/2), (1/2,0): spacing
  opened by ``contact_spacing`` + jitter, rattled, like the bilayer_grid frames.

Absolute LCAO and PW energies differ by a reference offset, so energies are compared as differences
between frames of the same composition (meV/atom): bulk strain energies (vs the cubic cell), registry
energy differences (vs (0,0)), and bilayer vs two bulk cells (surface + interface energy, same
stoichiometry Sr2Ti2O6). Also reported: the per-atom offset (E_LCAO - E_PW)/N of every frame and its spread.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dft_lcao_vs_pw.py [--workers 2] [--ecut 500]

Each (frame, mode) result is cached as JSON in ``--workdir`` (a rerun resumes); the CSV goes to
benchmarks/results/dft_lcao_vs_pw.csv, the summary table to stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "network.yaml"
SYSTEM = "STO"
REGISTRIES = ((0.0, 0.0), (0.5, 0.5), (0.5, 0.0))


def network_config() -> dict:
    """config/network.yaml with the schema's defaults filled in (validated like the workflow does)."""
    from twistox.core.config import validate_config

    return validate_config(yaml.safe_load(CONFIG.read_text()))


def build_frames(config: dict, n_bulk: int, seed: int) -> list[Atoms]:
    """The benchmark frames (info: name, group); same builders and amplitudes as trainset.generate."""
    from twistox.dft.trainset import (TrainsetSettings, bilayer_1x1, bulk_cell, contact_spacing, random_strain,
                                      rattle)
    from twistox.supercell.builder import BilayerSpec
    from twistox.supercell.stage import bilayer_spec, material

    s = TrainsetSettings.from_config(config["dft"]["configs"])
    mat = material(config, SYSTEM)
    spec = bilayer_spec(config, SYSTEM, translation=(0.0, 0.0))
    rng = np.random.default_rng(seed)
    frames = []
    ref = bulk_cell(mat, s.bulk_repeat)
    ref.info.update(name="bulk_cubic", group="bulk")
    frames.append(ref)
    for i in range(n_bulk):
        at = bulk_cell(mat, s.bulk_repeat)
        at.set_cell(at.cell @ (np.eye(3) + random_strain(rng, s.bulk_max_strain)), scale_atoms=True)
        at = rattle(at, rng, s.rattle)
        at.info.update(name=f"bulk_strained_{i + 1}", group="bulk")
        frames.append(at)
    thin = BilayerSpec(material=mat, interface=spec.interface, bottom_cells=s.bilayer_cells,
                       top_cells=s.bilayer_cells, bottom_outer=spec.bottom_outer, top_outer=spec.top_outer,
                       interlayer_spacing=spec.interlayer_spacing, vacuum=s.vacuum)
    for shift in REGISTRIES:
        d = contact_spacing(thin, shift, s.bilayer_min_distance)
        d += rng.uniform(-s.bilayer_spacing_jitter, s.bilayer_spacing_jitter)
        at = rattle(bilayer_1x1(thin, shift, d), rng, s.rattle)
        at.info.update(name=f"bilayer_{shift[0]:g}_{shift[1]:g}", group="bilayer", spacing_A=round(d, 4))
        frames.append(at)
    return frames


def mode_settings(config: dict, mode: str, ecut: float) -> dict:
    """network.yaml's dft block (LCAO) or the same block in plane-wave mode at ``ecut`` eV."""
    dft = json.loads(json.dumps(config["dft"]))
    dft.pop("configs", None)
    if mode == "pw":
        dft["gpaw"]["mode"] = "pw"
        dft["ecut_eV"] = float(ecut)
    elif dft["gpaw"]["mode"] != "lcao":
        raise SystemExit(f"{CONFIG}: dft.gpaw.mode is {dft['gpaw']['mode']!r}, expected 'lcao'")
    return dft


def _label(job: tuple) -> dict:
    """Label one frame in one mode (worker process); returns a JSON-able record."""
    name, mode, atoms, dft, out, workdir = job
    if Path(out).exists():
        return json.loads(Path(out).read_text())
    from twistox.dft.calculators import calculator_record, kpoints, make_calculator
    from twistox.dft.labeller import label_one

    txt = Path(workdir) / f"{name}.{mode}.txt"
    calc = make_calculator("gpaw", dft, atoms, directory=workdir, txt=txt)
    t0 = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] start {name:22s} {mode:4s} {len(atoms):3d} atoms "
          f"k {kpoints(atoms, float(dft['kpt_density']))}", flush=True)
    lab, status = label_one(atoms, calc, calculator_record("gpaw", dft))
    wall = time.time() - t0
    if lab is None:
        raise RuntimeError(f"{name} {mode}: {status.get('reason')}")
    rec = {"name": name, "mode": mode, "n_atoms": len(atoms), "energy_eV": lab.info["REF_energy"],
           "forces": lab.arrays["REF_forces"].tolist(), "wall_s": wall, "n_scf": status.get("n_scf"),
           "kpts": list(kpoints(atoms, float(dft["kpt_density"])))}
    Path(out).write_text(json.dumps(rec))
    print(f"[{time.strftime('%H:%M:%S')}] done  {name:22s} {mode:4s} {wall:7.1f} s, {status.get('n_scf')} SCF, "
          f"E {rec['energy_eV']:.4f} eV", flush=True)
    return rec


def compare(frames: list[Atoms], res: dict) -> tuple[list[dict], dict]:
    """Per-frame rows (force errors, per-atom offset, energy-difference errors) and a summary."""
    rows = []
    for at in frames:
        n = at.info["name"]
        if (n, "lcao") not in res or (n, "pw") not in res:
            continue  # --from-cache on a partial run: frames with both labels only
        lc, pw = res[(n, "lcao")], res[(n, "pw")]
        fl, fp = np.asarray(lc["forces"]), np.asarray(pw["forces"])
        d = fl - fp
        rows.append({"frame": n, "group": at.info["group"], "n_atoms": len(at), "kpts": "x".join(map(str, pw["kpts"])),
                     "E_lcao_eV": lc["energy_eV"], "E_pw_eV": pw["energy_eV"],
                     "offset_meV_per_atom": 1e3 * (lc["energy_eV"] - pw["energy_eV"]) / len(at),
                     "force_mae_eV_per_A": float(np.abs(d).mean()),  # over all 3N components
                     "force_max_abs_dF_eV_per_A": float(np.linalg.norm(d, axis=1).max()),
                     "fmax_pw_eV_per_A": float(np.linalg.norm(fp, axis=1).max()),
                     "wall_lcao_s": lc["wall_s"], "wall_pw_s": pw["wall_s"],
                     "n_scf_lcao": lc["n_scf"], "n_scf_pw": pw["n_scf"]})
    by = {r["frame"]: r for r in rows}

    def diff(a: str, b: str, na: int = 1, nb: int = 1) -> tuple[float, float, float]:
        """(Delta E_PW, Delta E_LCAO, error) in meV/atom of na*E(a) - nb*E(b), per atom of na*a."""
        n = na * by[a]["n_atoms"]
        dp = (na * by[a]["E_pw_eV"] - nb * by[b]["E_pw_eV"]) / n * 1e3
        dl = (na * by[a]["E_lcao_eV"] - nb * by[b]["E_lcao_eV"]) / n * 1e3
        return dp, dl, dl - dp

    for r in rows:
        if r["group"] == "bulk" and r["frame"] != "bulk_cubic":
            refs = [("vs_bulk_cubic", "bulk_cubic", 1)]
        elif r["group"] == "bilayer":
            refs = [("vs_bilayer_0_0", "bilayer_0_0", 1), ("vs_2x_bulk_cubic", "bulk_cubic", 2)]
        else:
            refs = []
        for tag, ref, nb in refs:
            if ref == r["frame"] or ref not in by:
                continue
            dp, dl, err = diff(r["frame"], ref, 1, nb)
            r[f"dE_pw_{tag}_meV_per_atom"] = dp
            r[f"dE_lcao_{tag}_meV_per_atom"] = dl
            r[f"dE_err_{tag}_meV_per_atom"] = err
    off = np.array([r["offset_meV_per_atom"] for r in rows])
    errs = [v for r in rows for k, v in r.items() if k.startswith("dE_err_") and "2x_bulk" not in k]
    # the cubic cell has zero forces by symmetry in both modes: force statistics over the other frames
    fr = [r for r in rows if r["frame"] != "bulk_cubic"] or rows
    fm = np.array([r["force_mae_eV_per_A"] for r in fr])
    summary = {"offset_mean_meV_per_atom": float(off.mean()), "offset_spread_meV_per_atom": float(off.max() - off.min()),
               "offset_std_meV_per_atom": float(off.std()),
               # what a network trained on LCAO sees: per-atom energy error after one constant shift
               "energy_mae_after_shift_meV_per_atom": float(np.abs(off - off.mean()).mean()),
               "dE_err_max_abs_meV_per_atom": float(np.max(np.abs(errs))) if errs else float("nan"),
               "force_mae_mean_eV_per_A": float(fm.mean()),
               "force_max_abs_dF_eV_per_A": float(max(r["force_max_abs_dF_eV_per_A"] for r in fr))}
    return rows, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ecut", type=float, default=500.0, help="plane-wave cutoff (eV); paper 500")
    ap.add_argument("--bulk", type=int, default=2, help="strained + rattled bulk frames")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--workers", type=int, default=1, help="frames labelled in parallel (one core each)")
    ap.add_argument("--workdir", default="/tmp/dft_lcao_vs_pw")
    ap.add_argument("--only", choices=("bulk", "bilayer"), default=None,
                    help="label only this group's frames and stop (fills the cache; a full run then compares)")
    ap.add_argument("--from-cache", action="store_true",
                    help="label nothing: compare the (frame, mode) results already in --workdir")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dft_lcao_vs_pw.csv"))
    args = ap.parse_args()
    config = network_config()
    frames = build_frames(config, args.bulk, args.seed)
    work = Path(args.workdir) / f"ecut{args.ecut:g}_seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    settings = {m: mode_settings(config, m, args.ecut) for m in ("lcao", "pw")}
    print(f"LCAO: {settings['lcao']['gpaw']}; PW: ecut {args.ecut:g} eV; xc {settings['pw']['xc']}, "
          f"U {settings['pw']['hubbard_u']}, smearing {settings['pw']['smearing_eV']} eV, "
          f"kpt_density {settings['pw']['kpt_density']}, scf {settings['pw']['scf']}", flush=True)
    # big jobs first so two workers finish together
    jobs = sorted([(at.info["name"], m, at, settings[m], str(work / f"{at.info['name']}.{m}.json"), str(work))
                   for at in frames for m in ("pw", "lcao") if args.only in (None, at.info["group"])],
                  key=lambda j: -len(j[2]))
    t0 = time.time()
    if args.from_cache:
        recs = [json.loads(Path(j[4]).read_text()) for j in jobs if Path(j[4]).exists()]
    elif args.workers > 1:
        with mp.get_context("fork").Pool(args.workers, maxtasksperchild=1) as pool:
            recs = pool.map(_label, jobs, chunksize=1)
    else:
        recs = [_label(j) for j in jobs]
    print(f"all labels: {time.time() - t0:.0f} s wall", flush=True)
    if args.only:
        return
    res = {(r["name"], r["mode"]): r for r in recs}
    rows, summary = compare(frames, res)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        fh.write(f"# GPAW {__import__('gpaw').__version__}, LCAO {settings['lcao']['gpaw']['basis']} "
                 f"h {settings['lcao']['gpaw']['h']} vs PW {args.ecut:g} eV; network.yaml dft settings; seed {args.seed}\n")
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    print(f"\n{'frame':22s} {'N':>3s} {'k':>6s} {'offset':>9s} {'F MAE':>7s} {'max|dF|':>8s} {'Fmax PW':>8s} "
          f"{'dE err (meV/at)':>28s} {'t LCAO':>7s} {'t PW':>7s}")
    for r in rows:
        errs = ", ".join(f"{k[7:-13]} {v:+.2f}" for k, v in r.items() if k.startswith("dE_err_"))
        print(f"{r['frame']:22s} {r['n_atoms']:3d} {r['kpts']:>6s} {r['offset_meV_per_atom']:9.1f} "
              f"{r['force_mae_eV_per_A']:7.3f} {r['force_max_abs_dF_eV_per_A']:8.3f} {r['fmax_pw_eV_per_A']:8.3f} "
              f"{errs:>28s} {r['wall_lcao_s']:7.0f} {r['wall_pw_s']:7.0f}")
    print("\n" + json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
