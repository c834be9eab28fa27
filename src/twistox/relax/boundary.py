"""Twist-boundary energy per area of a twisted bilayer, rigid and relaxed (issue 12 item 7).

Definition::

    gamma = (E_twisted - Sigma * E_ref_1x1) / A        [eV/Å^2 -> J/m^2: x 16.0218]

- ``A``: the supercell's in-plane area |a1 x a2| [Å^2] (= Sigma a^2).
- ``E_ref_1x1``: energy [eV] of the UNTWISTED 1x1 bilayer with the same planes in both layers (same
  thicknesses, outer planes and interface), the same lattice constant a (the relax stage's, i.e. the
  potential's own a0 after :mod:`twistox.relax.lattice_constant`) and the same starting interlayer
  spacing, at its lowest-energy registry (top-layer shift on a g x g grid of its cell), computed with the
  same calculator and the same FIRE protocol as the twisted cell. It is evaluated on an r x r repeat of the
  1x1 cell (``repeat``; divided by r^2) so that reconstructions with a period of a few cells, e.g. octahedral
  rotations, are allowed as they are in the twisted cell.
- The twisted supercell holds exactly Sigma times the atoms of the 1x1 bilayer (checked, species by
  species): both free surfaces and the bulk of both layers cancel, so gamma is the energy of the twist
  boundary relative to the best untwisted stacking. gamma = 0 for an untwisted cell at the best registry.

Two pairs are reported (``boundary_energy_attrs``):

- rigid: rigid twisted cell at the chosen translation (relax stage ``translation_energy_rigid`` at the best
  offset) against the RIGID reference (ideal 1x1 bilayer at exactly the interlayer spacing of the twisted
  cell, best registry of the grid). Rigid against rigid: the unrelaxed free surfaces cancel too.
- relaxed: statically relaxed twisted cell (``energy_relaxed``) against the RELAXED reference (each
  registry relaxed from its rigid structure, as the twisted cell is relaxed from its rigid one; the lowest
  relaxed energy). Starting from a spacing opened to remove close contacts was tried and rejected: with a
  short-ranged potential the opened layers need not come back, leaving the "relaxed" reference above the
  rigid one.

``boundary_energy_rigid_vs_relaxed_reference_J_m2`` is the rigid twisted cell against the relaxed
reference (it also contains the relaxation energy of the two free surfaces; for completeness only).
Units: Å, eV, J/m^2.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units

from twistox.core.config import ConfigError, known_keys
from twistox.dft.trainset import bilayer_1x1
from twistox.relax.evaluators import Renamed, energies_in_batches, make_evaluator
from twistox.relax.fire import fire_relax
from twistox.relax.lattice_constant import perovskite_species
from twistox.supercell.builder import AO, BilayerSpec, Perovskite

log = logging.getLogger("twistox")

EV_PER_A2_IN_J_PER_M2 = units._e * 1e20  # 1 eV/Å^2 = 16.0218 J/m^2
KEY = "relax.boundary_energy"


@dataclass(frozen=True)
class BoundarySettings:
    """``relax.boundary_energy`` (defaults in workflow/schemas/relax.schema.yaml)."""

    enabled: bool = True
    registry_grid: int = 4
    repeat: int = 2

    @classmethod
    def from_config(cls, d: dict | None) -> "BoundarySettings":
        d = known_keys(KEY, d, cls)
        s = cls(**d)
        for k in ("registry_grid", "repeat"):
            v = getattr(s, k)
            if int(v) != v or v < 1:
                raise ConfigError(f"{KEY}.{k}: {v!r} is not allowed; allowed: integer >= 1")
        return s


def boundary_energy(e_twisted: float, e_ref_1x1: float, sigma: int, area: float) -> float:
    """gamma = (E_twisted - Sigma E_ref_1x1) / A in J/m^2 (energies eV, area Å^2)."""
    if not area > 0:
        raise ValueError(f"area: {area!r}; allowed: > 0 Å^2")
    return (float(e_twisted) - int(sigma) * float(e_ref_1x1)) / float(area) * EV_PER_A2_IN_J_PER_M2


def in_plane_area(atoms: Atoms) -> float:
    """|a1 x a2| of the cell [Å^2]."""
    c = np.asarray(atoms.cell, float)
    return float(np.linalg.norm(np.cross(c[0], c[1])))


def reference_spec(atoms: Atoms) -> BilayerSpec:
    """The :class:`BilayerSpec` of the untwisted bilayer with the same planes as ``atoms`` (arrays ``layer``,
    ``plane``, ``plane_kind``; info ``a``, ``interlayer_spacing``). Raises ValueError when the planes are
    not the builder's (alternating AO/BO2 within each layer)."""
    for k in ("layer", "plane", "plane_kind"):
        if k not in atoms.arrays:
            raise ValueError(f"atoms: need the '{k}' array (supercell.zarr / relaxed.zarr) to build the 1x1 reference")
    A, B, X = perovskite_species(atoms)
    plane, kind, layer = atoms.arrays["plane"], atoms.arrays["plane_kind"], atoms.arrays["layer"]
    planes = np.unique(plane)
    kinds = [int(kind[plane == p][0]) for p in planes]
    lays = [int(layer[plane == p][0]) for p in planes]
    bottom = [k for k, l in zip(kinds, lays) if l == 0]
    top = [k for k, l in zip(kinds, lays) if l == 1]
    if not bottom or not top or lays != sorted(lays):
        raise ValueError(f"atoms: planes by layer {lays} are not a bottom layer below a top layer")
    name = {AO: "AO", 1: "BO2"}

    def cells_outer(seq: list[int], k_int: int) -> tuple[int, str]:
        n = len(seq)  # n = 2 cells (+1 when the outer plane repeats the interface plane's kind)
        return (n // 2, "auto") if n % 2 == 0 else ((n - 1) // 2, name[k_int])

    cb, ob = cells_outer(bottom, bottom[-1])
    ct, ot = cells_outer(top, top[0])
    info = atoms.info
    a = float(info["a"])
    z = atoms.positions[:, 2]
    vac = float(atoms.cell[2, 2]) - float(z.max() - z.min())
    spec = BilayerSpec(material=Perovskite(A, B, X, a), interface=f"{name[bottom[-1]]}-{name[top[0]]}",
                       bottom_cells=cb, top_cells=ct, bottom_outer=ob, top_outer=ot,
                       interlayer_spacing=float(info.get("interlayer_spacing", a / 2)), vacuum=max(vac, 0.0))
    try:
        got = spec.plane_sequence()
    except ValueError as e:
        raise ValueError(f"atoms: planes {kinds} (0 AO, 1 BO2) have no untwisted 1x1 equivalent: {e}") from e
    if got != (bottom, top):
        raise ValueError(f"atoms: planes bottom {bottom}, top {top} (0 AO, 1 BO2) do not alternate as the builder's")
    return spec


def check_sigma_multiple(atoms: Atoms, ref_1x1: Atoms, sigma: int) -> None:
    """Raise ValueError unless ``atoms`` holds exactly Sigma times the atoms of ``ref_1x1``, species by species
    (otherwise surfaces and layer bulk would not cancel in gamma)."""
    tw = Counter(atoms.get_chemical_symbols())
    one = Counter(ref_1x1.get_chemical_symbols())
    want = {s: sigma * c for s, c in one.items()}
    if len(atoms) != sigma * len(ref_1x1) or dict(tw) != want:
        raise ValueError(f"twisted cell has {len(atoms)} atoms {dict(tw)}, not Sigma = {sigma} times the untwisted "
                         f"1x1 bilayer's {len(ref_1x1)} {dict(one)}: its energy cannot be referred to the 1x1 bilayer")


@dataclass
class ReferenceResult:
    """Untwisted 1x1 reference (energies per 1x1 cell, eV; shifts in top-layer cell fractions)."""

    e_rigid: float
    e_relaxed: float
    shift_rigid: tuple[float, float]
    shift_relaxed: tuple[float, float]
    shifts: np.ndarray  # (g*g, 2)
    energies_rigid: np.ndarray  # (g*g,) per 1x1 cell
    energies_relaxed: np.ndarray  # (g*g,) per 1x1 cell
    converged: np.ndarray  # (g*g,) bool
    fmax: np.ndarray  # (g*g,) eV/Å
    n_atoms_1x1: int
    repeat: int
    relaxed_atoms: Atoms  # r x r cell of the best relaxed registry
    spacing: float  # rigid interlayer spacing [Å]


def reference_energies(atoms: Atoms, calc, settings: BoundarySettings, fmax: float, max_steps: int,
                       maxstep: float = 0.1, batch_size: int = 8, skin: float = 0.5) -> ReferenceResult:
    """Rigid and relaxed energies per 1x1 cell of the untwisted bilayer with the planes, a and spacing of
    ``atoms``, lowest over a ``registry_grid``^2 grid of top-layer shifts (see the module docstring); every
    registry is relaxed from its rigid structure.
    FIRE (:func:`twistox.relax.fire.fire_relax`) to ``fmax`` [eV/Å] in ``max_steps``, ``maxstep`` Å per atom."""
    spec = reference_spec(atoms)
    sigma = int(atoms.info["sigma"])
    g, r = int(settings.registry_grid), int(settings.repeat)
    shifts = np.array([(i / g, j / g) for i in range(g) for j in range(g)])
    d0 = float(spec.interlayer_spacing)
    one = bilayer_1x1(spec, (0.0, 0.0), d0)
    check_sigma_multiple(atoms, one, sigma)
    template = one.repeat((r, r, 1))
    template.pbc = atoms.pbc  # a periodic z (no vacuum) stays periodic
    n_cells = r * r

    def cell_positions(shift, d: float) -> np.ndarray:
        return bilayer_1x1(spec, tuple(shift), d).repeat((r, r, 1)).positions

    ev = make_evaluator(calc, template, skin=skin)
    rigid = np.stack([cell_positions(s, d0) for s in shifts])
    e_rigid, _ = energies_in_batches(ev, rigid, batch_size)
    res = fire_relax(Renamed(ev, 10**6), rigid, fmax=fmax, max_steps=max_steps, maxstep=maxstep,
                     batch_size=batch_size, phase="boundary reference")
    e_rig, e_rel = e_rigid / n_cells, res.energies / n_cells
    e_rel = np.where(np.isfinite(e_rel), e_rel, e_rig)  # max_steps = 0: nothing moved, the rigid energy stands
    ir, ib = int(np.argmin(e_rig)), int(np.nanargmin(e_rel))
    best = template.copy()
    best.positions = res.positions[ib]
    if not res.converged[ib]:
        log.warning("boundary reference: best registry (%.3f, %.3f) not converged (max force %.3f eV/Å after %d steps)",
                    *shifts[ib], res.fmax[ib], res.steps[ib])
    return ReferenceResult(e_rigid=float(e_rig[ir]), e_relaxed=float(e_rel[ib]), shift_rigid=tuple(map(float, shifts[ir])),
                           shift_relaxed=tuple(map(float, shifts[ib])), shifts=shifts, energies_rigid=e_rig,
                           energies_relaxed=e_rel, converged=res.converged.copy(), fmax=res.fmax.copy(),
                           n_atoms_1x1=len(one), repeat=r, relaxed_atoms=best, spacing=d0)


REFERENCE_TEXT = ("untwisted 1x1 bilayer with the same planes, lattice constant a and interlayer spacing, same "
                  "calculator, lowest energy over a {g}x{g} grid of top-layer registries, on a {r}x{r} repeat; "
                  "rigid: ideal planes at the same spacing; relaxed: FIRE to fmax {fmax} eV/Å; "
                  "gamma = (E_twisted - sigma E_ref_1x1) / A, A = in-plane supercell area")


def boundary_energy_attrs(atoms: Atoms, calc, e_twisted_rigid: float, e_twisted_relaxed: float,
                          settings: BoundarySettings, fmax: float, max_steps: int, maxstep: float = 0.1,
                          batch_size: int = 8, skin: float = 0.5) -> dict:
    """relaxed.zarr attrs: twist-boundary energies (J/m^2) of the rigid and relaxed twisted cell (energies eV)
    and their 1x1 reference. ``atoms``: the rigid twisted cell at the relax stage's lattice constant."""
    ref = reference_energies(atoms, calc, settings, fmax, max_steps, maxstep, batch_size, skin)
    sigma, area = int(atoms.info["sigma"]), in_plane_area(atoms)
    g_rig = boundary_energy(e_twisted_rigid, ref.e_rigid, sigma, area)
    g_rel = boundary_energy(e_twisted_relaxed, ref.e_relaxed, sigma, area)
    g_mix = boundary_energy(e_twisted_rigid, ref.e_relaxed, sigma, area)
    log.info("twist-boundary energy: rigid %.4f J/m^2, relaxed %.4f J/m^2 (reference: best registry rigid (%.2f, %.2f), "
             "relaxed (%.2f, %.2f); E_ref %.4f / %.4f eV per 1x1 cell; A = %.2f Å^2, Sigma = %d)", g_rig, g_rel,
             *ref.shift_rigid, *ref.shift_relaxed, ref.e_rigid, ref.e_relaxed, area, sigma)
    return {
        "boundary_energy_rigid_J_m2": g_rig,
        "boundary_energy_relaxed_J_m2": g_rel,
        "boundary_energy_rigid_vs_relaxed_reference_J_m2": g_mix,
        "boundary_energy_definition": "gamma = (E_twisted - sigma * E_ref_1x1) / A; rigid: rigid twisted cell at the "
                                      "chosen translation vs the rigid reference; relaxed: energy_relaxed vs the relaxed "
                                      "reference; rigid_vs_relaxed_reference also holds the free surfaces' relaxation",
        "boundary_reference": REFERENCE_TEXT.format(g=settings.registry_grid, r=settings.repeat, fmax=fmax),
        "boundary_reference_energy_rigid_eV": ref.e_rigid,
        "boundary_reference_energy_relaxed_eV": ref.e_relaxed,
        "boundary_reference_registry_rigid": list(ref.shift_rigid),
        "boundary_reference_registry_relaxed": list(ref.shift_relaxed),
        "boundary_reference_converged": bool(ref.converged[int(np.nanargmin(ref.energies_relaxed))]),
        "boundary_reference_fmax": float(np.nanmin(ref.fmax[ref.energies_relaxed == ref.e_relaxed])),
        "boundary_reference_n_atoms_1x1": ref.n_atoms_1x1,
        "boundary_reference_spacing_A": ref.spacing,
        "boundary_energy_twisted_rigid_eV": float(e_twisted_rigid),
        "boundary_energy_twisted_relaxed_eV": float(e_twisted_relaxed),
        "boundary_area_A2": area,
    }


def relax_stage_boundary_attrs(atoms: Atoms, calc, out, cfg: dict) -> dict:
    """What the relax stage stores: ``out`` a :class:`twistox.relax.stage.RelaxOutcome`, ``cfg`` config['relax'];
    the reference uses the stage's final FIRE settings (fmax, max_steps, maxstep). Empty when disabled."""
    s = BoundarySettings.from_config(cfg.get("boundary_energy"))
    if not s.enabled:
        return {}
    i, j = out.best
    return boundary_energy_attrs(atoms, calc, float(out.scan_energy_rigid[i, j]), out.energy_relaxed, s,
                                 fmax=cfg["fmax"], max_steps=cfg["max_steps"], maxstep=cfg["maxstep"],
                                 batch_size=cfg["batch_size"], skin=cfg["neighbour_skin"])
