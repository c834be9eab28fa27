"""Twisted-interface training configurations (``dft.configs.twisted``).

Small-Σ commensurate twisted bilayers (Σ5, Σ13, Σ17, ... with thin layers, built by
``twistox.supercell.builder.build_bilayer``) at several top-layer translations, as

- ``twisted_rigid``: the rigid twisted cell, rattled (``rattled`` frames per Σ and translation);
- ``twisted_path``: frames along its relaxation path with a cheap potential (``calculator``,
  CHGNet by default; it only moves the atoms, DFT labels them): FIRE with a per-atom step cap
  (``path_maxstep``; rigid interfaces carry ~10 eV/Å on O-over-O sites), ``path_frames`` frames
  evenly spaced over the path (the rigid start excluded), each rattled by ``rattle``.

The relaxation path visits what a relaxed twisted interface looks like locally (local rotation,
dislocation cores) — what rigid frames and untwisted registries miss. Every ``config_type`` starts
with ``twisted`` so that the MLIP metrics report them in their own block. Lengths in Å, forces eV/Å;
translations in fractions of the top layer's cell (CCW-rotated frame of that layer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from ase import Atoms

from twistox.core.config import ConfigError, known_keys
from twistox.supercell.builder import BilayerSpec, Perovskite, build_bilayer
from twistox.supercell.lattice import CSL, _csl_table

log = logging.getLogger("twistox")

KEY = "dft.configs.twisted"


@dataclass(frozen=True)
class TwistedSettings:
    """``dft.configs.twisted`` (defaults in workflow/schemas/dft.schema.yaml; empty sigmas = off)."""

    sigmas: tuple[int, ...] = ()
    cells: int = 1
    translations: tuple[tuple[float, float], ...] = ((0.0, 0.0), (0.5, 0.5))
    rattled: int = 1
    rattle: float = 0.05
    path_frames: int = 0
    path_steps: int = 60
    path_maxstep: float = 0.1
    path_fmax: float = 0.05
    calculator: str = "chgnet"

    @classmethod
    def from_config(cls, d: dict | None) -> "TwistedSettings":
        d = known_keys(KEY, d, cls)
        if "sigmas" in d:
            d["sigmas"] = tuple(int(s) for s in d["sigmas"])
        if "translations" in d:
            tr = [tuple(float(x) for x in t) for t in d["translations"]]
            if any(len(t) != 2 for t in tr):
                raise ConfigError(f"{KEY}.translations: {d['translations']!r}; allowed: list of [tx, ty] pairs "
                                  "(fractions of the top layer's cell)")
            d["translations"] = tuple(tr)
        return cls(**d)

    @property
    def enabled(self) -> bool:
        return bool(self.sigmas) and bool(self.translations) and (self.rattled > 0 or self.path_frames > 0)


def csl_of_sigma(sigma: int) -> CSL:
    """The twist (θ <= 45°) with coincidence index ``sigma``; ConfigError when none exists (e.g. 7, 9, 11)."""
    rows = [r for r in _csl_table(int(sigma)) if r[2] == int(sigma)]
    if not rows:
        ok = sorted({r[2] for r in _csl_table(60)})
        raise ConfigError(f"{KEY}.sigmas: {sigma!r} is not the Sigma of a square-lattice twist; allowed e.g. {ok}")
    m, n, s, th = min(rows, key=lambda r: r[3])
    return CSL(m=m, n=n, sigma=s, theta_deg=th, theta_requested_deg=th)


def twisted_cell(mat: Perovskite, spec: BilayerSpec, sigma: int, cells: int, translation: tuple[float, float],
                 vacuum: float) -> Atoms:
    """Rigid Σ bilayer with ``cells`` unit cells per layer, top layer translated by ``translation``."""
    csl = csl_of_sigma(sigma)
    tspec = BilayerSpec(material=mat, interface=spec.interface, bottom_cells=cells, top_cells=cells,
                        bottom_outer=spec.bottom_outer, top_outer=spec.top_outer,
                        interlayer_spacing=spec.interlayer_spacing, translation=tuple(translation), vacuum=vacuum)
    at = build_bilayer(csl, tspec)
    out = Atoms(at.numbers, at.positions, cell=at.cell, pbc=at.pbc)
    for k in ("layer", "plane", "plane_kind"):
        out.set_array(k, at.arrays[k])
    out.info.update(sigma=csl.sigma, theta_deg=csl.theta_deg, m=csl.m, n=csl.n, a=mat.a,
                    translation=[float(t) for t in translation], layer_angles_deg=list(csl.layer_angles_deg))
    return out


def fire_path(atoms: Atoms, calc, steps: int, maxstep: float, fmax: float, dt: float = 0.1,
              dt_max: float = 1.0) -> list[np.ndarray]:
    """FIRE (Bitzek et al., PRL 97, 170201 (2006)) with every atom's step capped at ``maxstep`` [Å].

    Returns the positions [Å] of every step (start included) until max |F| < ``fmax`` [eV/Å] or
    ``steps`` steps. Masses are 1 (a minimiser, not dynamics); dt in ASE time units."""
    at = atoms.copy()
    at.calc = calc
    x = at.positions.copy()
    v = np.zeros_like(x)
    alpha, n_pos = 0.1, 0
    path = [x.copy()]
    for _ in range(steps):
        at.positions = x
        f = at.get_forces()
        if np.linalg.norm(f, axis=1).max() < fmax:
            break
        p = float(np.vdot(f, v))
        if p > 0:
            v = (1 - alpha) * v + alpha * np.linalg.norm(v) * f / max(np.linalg.norm(f), 1e-300)
            n_pos += 1
            if n_pos > 5:
                dt, alpha = min(dt * 1.1, dt_max), alpha * 0.99
        else:
            v[:] = 0.0
            dt, alpha, n_pos = dt * 0.5, 0.1, 0
        v += dt * f
        dx = dt * v
        norm = np.linalg.norm(dx, axis=1, keepdims=True)
        dx *= np.minimum(1.0, maxstep / np.maximum(norm, 1e-300))  # per-atom cap
        x = x + dx
        path.append(x.copy())
    return path


def path_indices(n_steps: int, n_frames: int) -> list[int]:
    """``n_frames`` distinct step indices evenly spread over 1..n_steps-1 (the start, 0, excluded)."""
    if n_steps <= 1 or n_frames <= 0:
        return []
    idx = np.unique(np.round(np.linspace(1, n_steps - 1, min(n_frames, n_steps - 1))).astype(int))
    return idx.tolist()


def twisted_frames(mat: Perovskite, spec: BilayerSpec, s: TwistedSettings, rng: np.random.Generator,
                   vacuum: float, calc_factory: Callable[[], object] | None = None) -> list[Atoms]:
    """All ``twisted_rigid`` and ``twisted_path`` frames (unlabelled; ``frame_id``/``split`` set by the caller).

    ``calc_factory()`` gives the ASE calculator that drives the relaxation paths (needed when
    ``path_frames`` > 0; called once)."""
    if not s.enabled:
        return []
    for sg in s.sigmas:
        csl_of_sigma(sg)  # every bad Sigma fails before any work
    calc = None
    if s.path_frames > 0:
        if calc_factory is None:
            raise ConfigError(f"{KEY}.path_frames: {s.path_frames} relaxation-path frames need a calculator "
                              f"({KEY}.calculator); allowed: path_frames: 0 without one")
        calc = calc_factory()
    out: list[Atoms] = []
    for sg in s.sigmas:
        for tr in s.translations:
            rigid = twisted_cell(mat, spec, sg, s.cells, tr, vacuum)
            for _ in range(s.rattled):
                at = rigid.copy()
                at.positions += rng.normal(0.0, s.rattle, at.positions.shape)
                at.info["config_type"] = "twisted_rigid"
                out.append(at)
            if calc is None:
                continue
            path = fire_path(rigid, calc, s.path_steps, s.path_maxstep, s.path_fmax)
            picks = path_indices(len(path), s.path_frames)
            log.info("twisted Sigma%d translation %s: %d FIRE steps, frames at steps %s", sg, tr, len(path) - 1, picks)
            for i in picks:
                at = rigid.copy()
                at.positions = path[i] + rng.normal(0.0, s.rattle, path[i].shape)
                at.info.update(config_type="twisted_path", path_step=int(i), path_length=len(path) - 1)
                out.append(at)
    return out


def path_calculator_factory(config: dict) -> Callable[[], object] | None:
    """Factory of the calculator that drives the ``twisted_path`` relaxations (None when no path
    frames are requested); checks that it can run before any work (one clear error)."""
    from twistox.dft.calculators import check_calculator, make_calculator

    s = TwistedSettings.from_config(config["dft"]["configs"].get("twisted"))
    if not (s.enabled and s.path_frames > 0):
        return None
    check_calculator(s.calculator, config["dft"], key=f"{KEY}.calculator")
    settings = {**config["dft"], "device": config.get("device", "auto")}
    return lambda: make_calculator(s.calculator, settings, atoms=None)
