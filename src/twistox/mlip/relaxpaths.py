"""The committee's own relaxations of small twisted cells, labelled by DFT (issue 12).

Held-out errors do not show whether a potential's *minimum* is right: the network potential
fitted its twisted test frames to 6 meV/atom, yet DFT put the structure it relaxed Σ5 (½, ½) into
237 meV/atom above CHGNet's (docs/stages/relax.md). A relaxation walks into exactly the region the
training set lacks, so each AL iteration relaxes the DFT set's twisted cells (``dft.configs.twisted``:
every Σ at every translation, thin layers) with the committee mean (capped FIRE, as the relax stage
does) and labels frames along *that* path: its end point first (the potential's minimum, or where
``steps`` left it), then ``frames`` − 1 earlier frames evenly spread over the path. They are
``config_type`` twisted_alrelax, ``split`` train, so they join the metrics' ``twisted`` subset
wherever they are evaluated.

Lengths in Å, forces and committee std (``sqrt(mean_k |F_k,i − <F_i>|²)``) in eV/Å.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from twistox.core.config import ConfigError, known_keys
from twistox.dft.twisted import fire_path

log = logging.getLogger("twistox")

KEY = "mlip.active_learning.relax_paths"
RELAX_TYPE = "twisted_alrelax"


@dataclass(frozen=True)
class RelaxPathSettings:
    """``mlip.active_learning.relax_paths`` (defaults = workflow/schemas/mlip.schema.yaml; frames 0 = off).

    frames: labelled frames per start cell and iteration (the end point first); steps / maxstep [Å] /
    fmax [eV/Å]: the committee-mean FIRE (per-atom step cap)."""

    frames: int = 0
    steps: int = 200
    maxstep: float = 0.1
    fmax: float = 0.05

    @classmethod
    def from_config(cls, d: dict | None) -> "RelaxPathSettings":
        """Settings from the config section; ConfigError naming the key on unknown keys or bad values."""
        d = known_keys(KEY, d, cls)
        s = cls(**d)
        if int(s.frames) < 0 or int(s.steps) < 1:
            raise ConfigError(f"{KEY}: frames {s.frames!r}, steps {s.steps!r}; allowed: frames >= 0, steps >= 1")
        if not (s.maxstep > 0 and s.fmax > 0):
            raise ConfigError(f"{KEY}: maxstep {s.maxstep!r}, fmax {s.fmax!r}; allowed: both > 0")
        return s

    @property
    def enabled(self) -> bool:
        return self.frames > 0


def pick_steps(n_positions: int, frames: int) -> list[int]:
    """Indices into a path of ``n_positions`` positions (start = 0): the last first, then ``frames`` − 1
    earlier ones evenly spread over 1 .. last − 1 (the rigid start is already in the DFT set)."""
    last = n_positions - 1
    if frames <= 0 or last < 1:
        return []
    picks = [last]
    if frames > 1 and last > 1:
        earlier = np.unique(np.round(np.linspace(1, last - 1, min(frames - 1, last - 1))).astype(int))
        picks += [int(i) for i in earlier[::-1]]
    return picks


def relax_path_candidates(calc, starts: list[Atoms], s: RelaxPathSettings) -> list[Atoms]:
    """Frames along the committee-mean relaxation of every start cell (:func:`pick_steps`).

    ``calc``: committee-mean calculator with ``results['force_std']`` (N,) [eV/Å]. Each frame keeps the
    start's arrays (``layer``, ...) and Σ/translation info and records ``relax_step``, ``relax_length``
    (steps taken), ``relax_converged``, ``relax_max_force`` (committee max |F|), ``committee_energy`` [eV]
    and ``uncertainty`` (max per-atom committee std at the frame).
    """
    if not s.enabled:
        return []
    out: list[Atoms] = []
    for start in starts:
        path = fire_path(start, calc, s.steps, s.maxstep, s.fmax)
        picks = pick_steps(len(path), s.frames)
        converged = len(path) - 1 < s.steps
        for i in picks:
            at = start.copy()
            at.calc = None
            at.positions = path[i]
            probe = at.copy()
            probe.calc = calc
            f = probe.get_forces()
            at.info.update(config_type=RELAX_TYPE, relax_step=int(i), relax_length=len(path) - 1,
                           relax_converged=bool(converged), committee_energy=float(probe.get_potential_energy()),
                           relax_max_force=float(np.linalg.norm(f, axis=1).max()),
                           uncertainty=float(np.max(calc.results["force_std"])))
            out.append(at)
        log.info("committee relaxation of Sigma%s translation %s: %d FIRE steps (%s), frames at steps %s, "
                 "committee std max %s eV/Å", start.info.get("sigma"), start.info.get("translation"), len(path) - 1,
                 "converged" if converged else "not converged", picks,
                 ", ".join(f"{a.info['uncertainty']:.3f}" for a in out[len(out) - len(picks):]))
    return out


def label_check(labelled: list[Atoms]) -> list[dict]:
    """What DFT says about the committee's relaxation frames once labelled (``REF_energy`` [eV],
    ``REF_forces`` [eV/Å]): per frame the committee's energy error (committee − DFT, meV/atom) and the
    DFT max |F| [eV/Å]. At a converged end point a right minimum has DFT forces near ``fmax``; forces of
    eV/Å there and a large negative error are a false minimum the potential over-binds. Plain JSON values.

    (Frames read back from the label cache carry numpy scalars and arrays.)"""
    out = []
    for a in labelled:
        if str(a.info.get("config_type")) != RELAX_TYPE or "REF_energy" not in a.info:
            continue
        f = np.asarray(a.arrays["REF_forces"], float)
        tr = a.info.get("translation")
        out.append({"sigma": _opt(a.info.get("sigma"), int),
                    "translation": None if tr is None else [float(t) for t in tr],
                    "relax_step": _opt(a.info.get("relax_step"), int),
                    "relax_converged": _opt(a.info.get("relax_converged"), bool),
                    "committee_max_force_eV_per_A": _opt(a.info.get("relax_max_force"), float),
                    "dft_max_force_eV_per_A": float(np.linalg.norm(f, axis=1).max()),
                    "energy_error_meV_per_atom": 1e3 * (float(a.info["committee_energy"]) - float(a.info["REF_energy"]))
                    / len(a) if "committee_energy" in a.info else None,
                    "uncertainty_eV_per_A": _opt(a.info.get("uncertainty"), float)})
    return out


def _opt(v, kind):
    """``kind(v)`` (a plain JSON value; extxyz reads numpy scalars back), None when absent."""
    return None if v is None else kind(v)
