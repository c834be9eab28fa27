"""The potential's own cubic lattice constant (``relax.lattice_constant: potential``).

The supercell is built at the configured (experimental) a = 3.905 Å. A potential whose cubic
minimum sits elsewhere would put both layers under a spurious biaxial strain (which can itself
polarise SrTiO3). So: E(V) of the ideal cubic ABX3 cell at 7 volumes, a Birch–Murnaghan fit
(``ase.eos.EquationOfState``, third-order BM: Birch, Phys. Rev. 71, 809 (1947)), and the rigid
bilayer is rescaled to the fitted a0 before the translation scan.

Units: Å, eV, GPa (1 eV/Å³ = 160.21766 GPa, ``ase.units.GPa``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms, units

from twistox.core.config import ConfigError

log = logging.getLogger("twistox")

MODES = ("potential", "config")


@dataclass(frozen=True)
class LatticeFit:
    """Birch–Murnaghan fit of E(V): a0 [Å] (cube root of V0 per formula cell), B [GPa], B' [1],
    E0 [eV per cell], RMS fit residual [meV/atom], sampled lattice constants [Å] and energies [eV]."""

    a0: float
    bulk_modulus_GPa: float
    bulk_modulus_prime: float
    e0: float
    residual_meV_per_atom: float
    a_samples: tuple[float, ...]
    energies: tuple[float, ...]

    def as_attrs(self) -> dict:
        d = asdict(self)
        d["a_samples"], d["energies"] = list(self.a_samples), list(self.energies)
        return d


def cubic_cell(A: str, B: str, X: str, a: float) -> Atoms:
    """Ideal cubic ABX3 cell (A at the corner, B at the body centre), side a [Å]."""
    return Atoms([A, B, X, X, X], scaled_positions=[[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                 cell=[a, a, a], pbc=True)


def fit_lattice_constant(cell: Atoms, calc, rel_range: float = 0.03, n: int = 7, max_recentre: int = 3,
                         formula_units: int = 1) -> LatticeFit:
    """Lattice constant of ``cell`` (cubic, positions fixed in fractional coordinates) from E(V).

    ``n`` lattice constants evenly in a·[1 − rel_range, 1 + rel_range] around the current a; when the
    fitted minimum falls outside the middle of that window it is re-centred (``max_recentre`` times),
    then a ValueError says that E(V) has no bracketed minimum. ``formula_units``: formula cells in
    ``cell`` (a0 is per formula cell: a0 = (V0 / formula_units)^(1/3)).
    """
    from ase.eos import EquationOfState

    if n < 5:
        raise ValueError(f"n: {n} volumes cannot fit a 4-parameter EOS; allowed: n >= 5")
    a_base = a_c0(cell, formula_units)
    a_c = a_base
    for _ in range(max_recentre + 1):
        a_s = a_c * np.linspace(1.0 - rel_range, 1.0 + rel_range, n)
        vols, ens = [], []
        for a in a_s:
            at = cell.copy()
            at.set_cell(cell.cell * (a / a_base), scale_atoms=True)  # fractional positions kept
            at.calc = calc
            ens.append(float(at.get_potential_energy()))
            vols.append(at.get_volume())
        eos = EquationOfState(vols, ens, eos="birchmurnaghan")
        v0, e0, b = eos.fit(warn=False)
        a0 = (v0 / formula_units) ** (1.0 / 3.0) if v0 > 0 else float("nan")
        if np.isfinite(a0) and b > 0 and a_s[1] <= a0 <= a_s[-2]:
            break
        # not bracketed well: move the window towards the lowest sampled energy (one window per try)
        a_c = float(a_s[int(np.argmin(ens))])
    else:
        raise ValueError(f"E(V) minimum not bracketed: a in [{a_s[0]:.3f}, {a_s[-1]:.3f}] Å, fit a0 = {a0:.3f} Å, "
                         f"B = {b / units.GPa:.1f} GPa; the potential has no cubic minimum near a = {a_base:.3f} Å "
                         "(use relax.lattice_constant: config; allowed: potential, config)")
    fitted = eos.func(np.asarray(vols), *eos.eos_parameters)
    res = float(np.sqrt(np.mean((np.asarray(ens) - fitted) ** 2)) / len(cell) * 1e3)
    return LatticeFit(a0=float(a0), bulk_modulus_GPa=float(b / units.GPa), bulk_modulus_prime=float(eos.eos_parameters[2]),
                      e0=float(e0), residual_meV_per_atom=res, a_samples=tuple(map(float, a_s)), energies=tuple(ens))


def a_c0(cell: Atoms, formula_units: int = 1) -> float:
    """Cube root of the volume per formula cell [Å]."""
    return (cell.get_volume() / formula_units) ** (1.0 / 3.0)


def perovskite_species(atoms: Atoms) -> tuple[str, str, str]:
    """(A, B, X) of a bilayer with ``plane_kind`` (0 = AO, 1 = BO2): X is in both plane kinds."""
    if "plane_kind" not in atoms.arrays:
        raise ValueError("atoms: need the 'plane_kind' array (supercell.zarr) to tell A, B and X apart")
    sym = np.array(atoms.get_chemical_symbols())
    pk = atoms.arrays["plane_kind"]
    ao, bo = set(sym[pk == 0]), set(sym[pk == 1])
    x = ao & bo
    if len(x) != 1 or len(ao) != 2 or len(bo) != 2:
        raise ValueError(f"atoms: planes {sorted(ao)} / {sorted(bo)} are not AX / BX2 of one ABX3 perovskite")
    (X,) = x
    return (ao - x).pop(), (bo - x).pop(), X


def rescale_to_lattice_constant(atoms: Atoms, a_new: float, a_old: float) -> Atoms:
    """The structure at lattice constant ``a_new`` [Å] instead of ``a_old``: every length between atoms
    scales by f = a_new / a_old (in-plane cell and positions, heights above the lowest atom); the
    vacuum (cell height − stack height) is kept. Geometry info (a, supercell_length, moire_period,
    plane_z, interface_z, interlayer_spacing) is updated. Returns a new Atoms."""
    if not (a_new > 0 and a_old > 0):
        raise ValueError(f"a_new, a_old: {a_new!r}, {a_old!r}; allowed: lattice constants > 0 Å")
    f = float(a_new) / float(a_old)
    out = atoms.copy()
    z0 = float(atoms.positions[:, 2].min())
    stack = float(atoms.positions[:, 2].max()) - z0
    pos = atoms.positions.copy()
    pos[:, :2] *= f
    pos[:, 2] = z0 + (pos[:, 2] - z0) * f
    cell = np.asarray(atoms.cell).copy()
    cell[:2] *= f
    if not atoms.pbc[2]:
        cell[2, 2] += stack * (f - 1.0)  # same vacuum
    else:
        cell[2] *= f
    out.set_cell(cell, scale_atoms=False)
    out.positions = pos
    info = dict(atoms.info)
    for k in ("a", "supercell_length", "moire_period", "interlayer_spacing"):
        if k in info:
            info[k] = float(info[k]) * f
    if "plane_z" in info:
        info["plane_z"] = [z0 + (float(z) - z0) * f for z in info["plane_z"]]
    if "interface_z" in info:
        info["interface_z"] = z0 + (float(info["interface_z"]) - z0) * f
    out.info = info
    return out


GEOMETRY_KEYS = ("a", "supercell_length", "moire_period", "interlayer_spacing", "plane_z", "interface_z")


def geometry_attrs(atoms: Atoms) -> dict:
    """The lattice-constant-dependent geometry of ``atoms.info`` (for relaxed.zarr attrs)."""
    return {k: atoms.info[k] for k in GEOMETRY_KEYS if k in atoms.info}


def apply_lattice_constant(atoms: Atoms, calc, mode: str) -> tuple[Atoms, dict]:
    """Rigid bilayer at the potential's a0 (``mode`` potential) or as built (``config``), and the
    attrs for relaxed.zarr: ``a_potential``, ``a_config``, ``bulk_modulus_GPa``, ``lattice_constant_source``,
    ``eos_residual_meV_per_atom`` (NaN/absent fit values for ``config``)."""
    if mode not in MODES:
        raise ConfigError(f"relax.lattice_constant: {mode!r} is not allowed; allowed: {', '.join(MODES)}")
    a_cfg = float(atoms.info["a"])
    try:
        fit = fit_lattice_constant(cubic_cell(*perovskite_species(atoms), a_cfg), calc)
    except ValueError:
        if mode == "potential":
            raise
        log.warning("no cubic E(V) minimum of the potential near a = %.4f Å; using the config's a", a_cfg)
        return atoms, {"a_potential": float("nan"), "a_config": a_cfg, "bulk_modulus_GPa": float("nan"),
                       "lattice_constant_source": mode}
    log.info("potential's cubic lattice constant a0 = %.4f Å (config %.4f Å, %+.2f %%), B = %.1f GPa, "
             "BM fit residual %.3f meV/atom; structure built at the %s value", fit.a0, a_cfg,
             100 * (fit.a0 / a_cfg - 1), fit.bulk_modulus_GPa, fit.residual_meV_per_atom, mode)
    attrs = {"a_potential": fit.a0, "a_config": a_cfg, "bulk_modulus_GPa": fit.bulk_modulus_GPa,
             "eos_residual_meV_per_atom": fit.residual_meV_per_atom, "eos_a_samples": list(fit.a_samples),
             "eos_energies": list(fit.energies), "lattice_constant_source": mode}
    if mode == "config":
        return atoms, attrs
    return rescale_to_lattice_constant(atoms, fit.a0, a_cfg), attrs
