"""Relax stage driver: translation scan -> FIRE relaxation of the best candidate -> Langevin MD
averaging, and the ``relaxed.zarr`` dataset. ``run`` is what ``scripts/relax.py`` calls.

Units: Å, eV, fs, K, amu. Every structure of one sample shares one atom list and cell (the
translation-scan candidates), so a batch is an array (B, N, 3).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr
from ase import Atoms

from twistox.core.checkpoint import Checkpoint
from twistox.core.config import ConfigError
from twistox.core.hashing import file_hash, settings_hash
from twistox.relax import committee as cstd
from twistox.relax.evaluators import Renamed, energies_in_batches, make_evaluator
from twistox.relax.fire import fire_relax
from twistox.relax.guard import ContactGuard
from twistox.relax.lattice_constant import apply_lattice_constant, geometry_attrs
from twistox.relax.md import MDResult, averaging_window, langevin_md
from twistox.relax.scan import minimum_image_displacement, translate_top_layer, translation_grid

log = logging.getLogger("twistox")


def md_steps(md: dict) -> tuple[int, int]:
    """(total, discarded) MD steps of config['relax']['md']."""
    return (max(1, int(round(md["total_ps"] * 1000.0 / md["timestep_fs"]))),
            int(round(md["discard_ps"] * 1000.0 / md["timestep_fs"])))


def check_settings(cfg: dict) -> None:
    """Semantic checks of config['relax'] the schema cannot express (cheap; raise ConfigError)."""
    md = cfg.get("md", {})
    if md.get("enabled", True):
        if md["discard_ps"] >= md["total_ps"]:
            raise ConfigError(f"relax.md.discard_ps: {md['discard_ps']} must be < relax.md.total_ps ({md['total_ps']}); "
                              "allowed: 0 <= discard_ps < total_ps")
        if md["total_ps"] * 1000.0 / md["timestep_fs"] < 1:
            raise ConfigError("relax.md.total_ps: shorter than one time step; allowed: total_ps >= timestep_fs / 1000")
        n_steps, n_discard = md_steps(md)
        if md["blocks"] > n_steps - n_discard:
            raise ConfigError(f"relax.md.blocks: {md['blocks']} blocks but the averaging window "
                              f"(total_ps - discard_ps) has only {n_steps - n_discard} steps; allowed: "
                              f"2 <= blocks <= {n_steps - n_discard} (or a longer window)")


def mlip_calculator(model_paths: Sequence[str], mode: str = "mean", device: str = "auto", dtype: str = "float64"):
    """The committee's ASE calculator (:func:`twistox.mlip.calculator.load_calculator`)."""
    from twistox.mlip.calculator import load_calculator

    return load_calculator(list(map(str, model_paths)), mode=mode, device=device, default_dtype=dtype)


@dataclass
class RelaxOutcome:
    """Everything the relax stage stores (positions Å, energies eV)."""

    positions: np.ndarray  # final: MD-averaged if MD ran, else relaxed
    positions_relaxed: np.ndarray  # static relaxation of the best translation
    positions_rigid: np.ndarray  # rigid structure at the best translation
    tx: np.ndarray
    ty: np.ndarray
    scan_energy: np.ndarray  # (tx, ty) relaxed
    scan_energy_rigid: np.ndarray  # (tx, ty) unrelaxed
    scan_fmax: np.ndarray
    scan_converged: np.ndarray
    best: tuple[int, int]
    energy_relaxed: float
    fmax_relaxed: float
    converged: bool
    md: MDResult | None
    timings: dict
    committee: cstd.CommitteeStd | None = None  # force disagreement; None when not evaluated


def relax_bilayer(atoms: Atoms, calc, cfg: dict, rng: np.random.Generator, checkpoint_dir=None,
                  checkpoint_key: str = "", committee: cstd.Committee | None = None) -> RelaxOutcome:
    """Translation scan -> FIRE relaxation of the best candidate -> Langevin MD averaging.

    ``atoms``: rigid supercell with arrays ``layer`` and info ``layer_angles_deg``, ``a``.
    ``cfg``: config['relax'] (schema defaults filled in). ``committee``: every member's evaluator, for the
    force disagreement on the relaxed structure and along the MD (``cfg['committee_std']``); None skips it.
    """
    check_settings(cfg)
    t0 = time.time()
    ck = Checkpoint(checkpoint_dir, checkpoint_key, cfg["checkpoint_interval_s"])
    ev = make_evaluator(calc, atoms, skin=cfg["neighbour_skin"])
    g = cfg.get("contact_guard", {})  # schema-filled in the workflow; library callers may leave it out
    guard = (ContactGuard.from_atoms(atoms, **{k: g[k] for k in ("fraction", "every") if k in g})
             if g.get("enabled", True) else None)
    on = (lambda where: guard.phase(where)) if guard else (lambda where: None)  # noqa: E731
    tx, ty = translation_grid(cfg["translation_grid"])
    offsets = [(a, b) for a in tx for b in ty]
    rigid = np.stack([translate_top_layer(atoms, o) for o in offsets])
    e_rigid, f_rigid = energies_in_batches(ev, rigid, cfg["batch_size"])
    log.info("translation scan: %d candidates of %d atoms; rigid max force %.2f eV/Å", len(offsets), len(atoms),
             float(np.linalg.norm(f_rigid, axis=2).max()))
    scan = fire_relax(ev, rigid, fmax=cfg["scan_fmax"], max_steps=cfg["scan_max_steps"], maxstep=cfg["maxstep"],
                      batch_size=cfg["batch_size"], checkpoint=ck, phase="scan", callback=on("scan"))
    n = len(tx)
    E = scan.energies.reshape(n, n)
    ib = int(np.nanargmin(scan.energies))
    best = (ib // n, ib % n)
    log.info("scan done in %.1f s: %d/%d converged; best offset (%.3f, %.3f), E spread %.1f meV",
             time.time() - t0, scan.converged.sum(), len(offsets), *offsets[ib], 1000 * (np.nanmax(E) - np.nanmin(E)))
    t1 = time.time()
    # refine with a fresh neighbour-list id so the scan's cache does not matter
    fin = fire_relax(Renamed(ev, 10**6), scan.positions[ib:ib + 1], fmax=cfg["fmax"], max_steps=cfg["max_steps"],
                     maxstep=cfg["maxstep"], checkpoint=ck, phase="refine", callback=on("refine"))
    log.info("refined best candidate: E = %.4f eV, max force %.4f eV/Å (%s) after %d steps in %.1f s",
             fin.energies[0], fin.fmax[0], "converged" if fin.converged[0] else "NOT converged", fin.steps[0],
             time.time() - t1)
    relaxed = fin.positions[0]
    md_res, cs, observe = None, None, None
    t2 = time.time()
    md = cfg["md"]
    if committee is not None:
        cs = cstd.CommitteeStd(len(committee), cfg["committee_std"]["warn_eV_per_A"], committee.per_atom_std(relaxed))
        cstd.warn_if_extrapolating(cstd.frame_summary(cs.per_atom)[0], cs.threshold, "the relaxed structure")
        if len(committee) >= 2:
            observe = lambda x: cstd.frame_summary(committee.per_atom_std(x, ident=1))  # noqa: E731
    if md["enabled"]:
        n_steps, n_discard = md_steps(md)
        start, per_block = averaging_window(n_steps, n_discard, md["blocks"])
        eq_friction = md["equilibration_friction_per_ps"]
        eq_friction = md["friction_per_ps"] if eq_friction is None else eq_friction
        log.info("MD: %d steps of %.2f fs at %.0f K, averaging the last %d in %d blocks of %d; friction %.3g/ps "
                 "(%.3g/ps while equilibrating)", n_steps, md["timestep_fs"], md["temperature_K"], n_steps - start,
                 md["blocks"], per_block, md["friction_per_ps"], eq_friction)
        md_res = langevin_md(Renamed(ev, 2 * 10**6), relaxed, atoms.get_masses(), md["temperature_K"],
                             md["timestep_fs"], n_steps, n_discard, friction_per_fs=md["friction_per_ps"] / 1000.0,
                             sample_every=md["sample_every"], rng=rng, checkpoint=ck, phase="md", n_blocks=md["blocks"],
                             observe=observe, observe_every=md["sample_every"] * cfg["committee_std"]["md_every"],
                             callback=on("md"), equilibration_friction_per_fs=eq_friction / 1000.0)
        if observe is not None and len(md_res.observed_time_fs):
            cs.md_time_fs, (cs.md_max, cs.md_p99) = md_res.observed_time_fs, md_res.observed.T
            cstd.warn_if_extrapolating(cs.md_maxima()[0], cs.threshold, "the MD trajectory (largest frame)")
        final = md_res.mean_positions
        log.info("MD done in %.1f s: <T> = %.1f K over the averaging window", time.time() - t2,
                 float(np.mean(md_res.temperature[md_res.time_fs > n_discard * md["timestep_fs"]]))
                 if np.any(md_res.time_fs > n_discard * md["timestep_fs"]) else float("nan"))
    else:
        final = relaxed
    final = final.copy()
    L = np.diag(atoms.cell)[:2]
    final[:, :2] = np.mod(final[:, :2], L)
    return RelaxOutcome(
        positions=final, positions_relaxed=relaxed, positions_rigid=rigid[ib], tx=tx, ty=ty, scan_energy=E,
        scan_energy_rigid=e_rigid.reshape(n, n), scan_fmax=scan.fmax.reshape(n, n),
        scan_converged=scan.converged.reshape(n, n), best=best, energy_relaxed=float(fin.energies[0]),
        fmax_relaxed=float(fin.fmax[0]), converged=bool(fin.converged[0]), md=md_res,
        timings={"time_scan_s": t1 - t0, "time_refine_s": t2 - t1, "time_md_s": time.time() - t2,
                 "scan_force_calls": int(scan.steps.sum()), "refine_force_calls": int(fin.steps[0])},
        committee=cs,
    )



def relaxed_dataset(atoms: Atoms, out: RelaxOutcome, base_attrs: dict):
    """relaxed.zarr contents: DESIGN.md names plus scan surface, MD traces, displacement."""
    from twistox.core.io import structure_dataset

    final = atoms.copy()
    final.positions = out.positions
    ds = structure_dataset(final)
    ds.attrs = {**base_attrs, **ds.attrs}
    pbc = [bool(p) for p in atoms.pbc]
    xyz = ("atom", "xyz")
    ds["positions"].attrs.update(description="relaxed positions, time-averaged over MD when MD ran")
    ds["positions_rigid"] = (xyz, out.positions_rigid, {"units": "Å", "description": "rigid bilayer at the best translation"})
    ds["positions_relaxed"] = (xyz, out.positions_relaxed, {"units": "Å", "description": "static FIRE relaxation (before MD)"})
    ds["displacement"] = (xyz, minimum_image_displacement(out.positions_rigid, out.positions, atoms.cell, pbc),
                          {"units": "Å", "description": "positions - positions_rigid (minimum image)"})
    tcoords = {"tx": ("tx", out.tx, {"units": "1", "description": "top-layer offset along its [100], unit-cell fractions"}),
               "ty": ("ty", out.ty, {"units": "1", "description": "top-layer offset along its [010], unit-cell fractions"})}
    ds = ds.assign_coords(tcoords)
    ds["translation_energy"] = (("tx", "ty"), out.scan_energy, {"units": "eV", "description": "relaxed total energy"})
    ds["translation_energy_rigid"] = (("tx", "ty"), out.scan_energy_rigid, {"units": "eV", "description": "rigid (unrelaxed) total energy"})
    ds["translation_fmax"] = (("tx", "ty"), out.scan_fmax, {"units": "eV/Å"})
    ds["translation_converged"] = (("tx", "ty"), out.scan_converged.astype(np.int8), {"units": "1"})
    if out.md is not None:
        ds = ds.assign_coords(md_time=("md_time", out.md.time_fs, {"units": "fs"}))
        ds["md_temperature"] = ("md_time", out.md.temperature, {"units": "K"})
        ds["md_potential_energy"] = ("md_time", out.md.potential_energy, {"units": "eV"})
        # same lattice shift as the wrapped mean, so the mean over blocks is `positions` to rounding
        blocks = out.md.block_positions + (out.positions - out.md.mean_positions)[None]
        ds["positions_blocks"] = (("block", "atom", "xyz"), blocks, {
            "units": "Å", "description": "MD averaging window in equal contiguous blocks, each time-averaged like "
            "positions (unwrapped, centre-of-mass drift removed); mean over blocks = positions"})
    i, j = out.best
    st = list(base_attrs.get("translation", [0.0, 0.0]))
    ds.attrs.update(
        supercell_translation=st, translation_offset=[float(out.tx[i]), float(out.ty[j])],
        translation=[st[0] + float(out.tx[i]), st[1] + float(out.ty[j])],
        energy_relaxed=out.energy_relaxed, fmax_relaxed=out.fmax_relaxed, relax_converged=out.converged,
        md_ran=out.md is not None, md_frames_averaged=out.md.n_averaged if out.md is not None else 0,
        md_blocks=len(out.md.block_positions) if out.md is not None else 0,
        **out.timings,
    )
    cstd.add_to_dataset(ds, out.committee, "not evaluated (relax.committee_std.enabled: false)")
    return ds



def relax_checkpoint_key(atoms: Atoms, cfg: dict, seed: int, model_paths: Sequence[str]) -> str:
    """Key of the relax checkpoints: valid only for this structure, these settings, seed and model files."""
    return settings_hash(atoms.positions, atoms.numbers, cfg, seed, [file_hash(m) for m in model_paths])


def run(supercell: xr.Dataset, model_paths: Sequence[str], config: dict, rng: np.random.Generator, seed: int,
        checkpoint_dir: str | Path | None = None) -> tuple[xr.Dataset, Atoms]:
    """Relax one sample: ``supercell`` (supercell.zarr contents), MACE ``model_paths``, the validated
    config. Returns (relaxed.zarr dataset, final Atoms)."""
    from twistox.core.io import atoms_from_dataset

    cfg = config["relax"]
    check_settings(cfg)  # bad MD times fail here, before the model is loaded
    atoms = atoms_from_dataset(supercell)
    models = [str(m) for m in model_paths]
    calc = mlip_calculator(models, mode=cfg["committee_mode"], device=config["device"], dtype=cfg["dtype"])
    log.info("%d atoms, %d model(s) (%s), device %s", len(atoms), len(models), cfg["committee_mode"], config["device"])
    # the potential's own cubic a0 (issue 12 item 5): no spurious biaxial strain on both layers
    atoms, lattice_attrs = apply_lattice_constant(atoms, calc, cfg["lattice_constant"])
    # every committee member, also when the forces come from the first one (issue 12 item 9)
    committee = (cstd.Committee.from_models(models, atoms, config["device"], cfg["dtype"], cfg["neighbour_skin"], calc)
                 if cfg["committee_std"]["enabled"] else None)
    out = relax_bilayer(atoms, calc, cfg, rng, checkpoint_dir=checkpoint_dir,
                        checkpoint_key=relax_checkpoint_key(atoms, cfg, seed, models), committee=committee)
    ds = relaxed_dataset(atoms, out, {**dict(supercell.attrs), **geometry_attrs(atoms), **lattice_attrs})
    from twistox.relax.boundary import relax_stage_boundary_attrs  # twist-boundary energy (issue 12 item 7)

    ds.attrs.update(relax_stage_boundary_attrs(atoms, calc, out, cfg))
    return ds, atoms_from_dataset(ds)
