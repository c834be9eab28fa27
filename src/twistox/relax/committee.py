"""Committee force disagreement of the relax stage: does the MLIP extrapolate on this structure?

The relax stage often drives FIRE and MD with one committee member (``relax.committee_mode: first``); the
other members are evaluated only here: on the static relaxation ``positions_relaxed`` and on every
``relax.committee_std.md_every``-th recorded MD frame.

Definition (the same as ``twistox.mlip.calculator``'s ``force_std`` and active learning's uncertainty):
for K members with forces F_k,i (eV/Å) on atom i,

    sigma_i = sqrt( (1/K) sum_k |F_k,i - Fbar_i|^2 ),   Fbar_i = (1/K) sum_k F_k,i     [eV/Å]

(population std over members of the force vector, squared deviations summed over x, y, z). A frame is
summarised by max_i sigma_i and the 99th percentile over atoms (numpy's linear interpolation). With K = 1
sigma is undefined and stored as NaN, never as zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from ase import Atoms

from twistox.core.md import AseEvaluator, Evaluator

log = logging.getLogger("twistox")

DEFINITION = ("per-atom std over committee members of the force vector: sqrt(mean_k |F_k - mean_k F_k|^2), eV/Å; "
              "frame summaries: max and 99th percentile over atoms")
ID_OFFSET = 3 * 10**6  # neighbour-list ids of the member evaluators, apart from scan/refine/MD ids


def force_std(forces: np.ndarray) -> np.ndarray:
    """Per-atom committee force std (eV/Å): ``forces`` (K, ..., N, 3) -> (..., N); NaN when K < 2.

    Deviations are taken from member 0 first: the std is shift invariant, so this is the same number,
    but identical members give exactly 0 and large common forces (~10 eV/Å on a rigid interface) do not
    round away a small disagreement."""
    F = np.asarray(forces, dtype=float)
    if F.shape[0] < 2:
        return np.full(F.shape[1:-1], np.nan)
    D = F - F[0]
    D -= D.mean(axis=0)
    return np.sqrt((D**2).sum(axis=-1).mean(axis=0))


def frame_summary(std: np.ndarray) -> tuple[float, float]:
    """(max, 99th percentile) over atoms of one frame's per-atom std (eV/Å); NaN for an undefined std."""
    s = np.asarray(std, dtype=float)
    if s.size == 0 or not np.isfinite(s).all():
        return float("nan"), float("nan")
    return float(s.max()), float(np.percentile(s, 99))


class Committee:
    """One force evaluator per committee member, all for the same atom list and cell."""

    def __init__(self, members: Sequence[Evaluator]):
        if not members:
            raise ValueError("a committee needs at least one member evaluator")
        self.members = list(members)

    def __len__(self) -> int:
        return len(self.members)

    def forces(self, positions: np.ndarray, ident: int = 0) -> np.ndarray:
        """Every member's forces (K, N, 3) eV/Å on one structure (N, 3) Å."""
        x = np.asarray(positions, dtype=float)[None]
        return np.stack([m.evaluate(x, [ID_OFFSET + ident])[1][0] for m in self.members])

    def per_atom_std(self, positions: np.ndarray, ident: int = 0) -> np.ndarray:
        """(N,) eV/Å, NaN with one member (no model is evaluated then)."""
        if len(self) < 2:
            return np.full(len(positions), np.nan)
        return force_std(self.forces(positions, ident))

    @classmethod
    def from_calculators(cls, calcs: Sequence, atoms: Atoms) -> "Committee":
        """Members from ASE calculators (any kind; one structure per call)."""
        return cls([AseEvaluator(atoms, c) for c in calcs])

    @classmethod
    def from_models(cls, model_paths: Sequence[str], atoms: Atoms, device: str, dtype: str, skin: float,
                    calc=None) -> "Committee":
        """Members from MACE model files: one batched MACE evaluator per model (the relax stage's fast path).
        ``calc``: the stage's calculator; its models are reused when it already holds the whole committee."""
        from twistox.mlip.calculator import load_calculator
        from twistox.relax.evaluators import MaceBatchEvaluator

        paths = [str(p) for p in model_paths]
        if len(paths) == 1 and calc is not None:  # one model: the std is undefined, nothing to load
            return cls([AseEvaluator(atoms, calc)])
        if calc is None or len(getattr(calc, "models", [])) != len(paths):
            calc = load_calculator(paths, mode="mean", device=device, default_dtype=dtype)
        head = getattr(calc, "head", None)
        return cls([MaceBatchEvaluator([m], atoms, skin=skin, head=head) for m in calc.models])


@dataclass
class CommitteeStd:
    """Committee disagreement of the final structure and along the MD (eV/Å)."""

    n_members: int
    threshold: float  # relax.committee_std.warn_eV_per_A
    per_atom: np.ndarray  # (N,) on positions_relaxed; NaN with one member
    md_time_fs: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,)
    md_max: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,)
    md_p99: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,)

    @property
    def status(self) -> str:
        if self.n_members < 2:
            return ("undefined: one committee model (mlip.committee_size = 1), so there is no disagreement to "
                    "measure; stored as NaN")
        return f"evaluated with {self.n_members} committee models"

    def md_maxima(self) -> tuple[float, float]:
        """Largest frame max and largest frame p99 along the MD (NaN when no frame was evaluated)."""
        if len(self.md_max) == 0 or not np.isfinite(self.md_max).all():
            return float("nan"), float("nan")
        return float(self.md_max.max()), float(self.md_p99.max())


def warn_if_extrapolating(value: float, threshold: float, where: str) -> bool:
    """Log a WARNING when the committee force std ``value`` (eV/Å) on ``where`` exceeds ``threshold``."""
    if not (np.isfinite(value) and value > threshold):
        return False
    log.warning("committee force std %.3f eV/Å on %s exceeds relax.committee_std.warn_eV_per_A = %.3f eV/Å: "
                "the MLIP committee members disagree, i.e. the potential extrapolates beyond its training data "
                "on these atomic environments and the relaxed positions are unreliable there. Add training data "
                "for them (DFT labels of this structure; mlip active learning with carved twisted patches)",
                value, where, threshold)
    return True


def add_to_dataset(ds, res: CommitteeStd | None, note: str = "") -> None:
    """relaxed.zarr variables and attrs of the committee disagreement (in place). ``res`` None: not
    evaluated; ``note`` says why."""
    if res is None:
        ds.attrs.update(committee_std_status=note or "not evaluated", committee_std_max=float("nan"),
                        committee_std_p99=float("nan"), md_committee_std_max=float("nan"),
                        md_committee_std_p99_max=float("nan"))
        return
    ds["committee_force_std"] = ("atom", res.per_atom, {"units": "eV/Å", "description": DEFINITION
                                                        + "; on positions_relaxed (static relaxation)"})
    if len(res.md_time_fs):
        ds.coords["md_committee_time"] = ("md_committee_time", res.md_time_fs, {"units": "fs"})
        ds["md_committee_std_max"] = ("md_committee_time", res.md_max,
                                      {"units": "eV/Å", "description": "max over atoms of the committee force std"})
        ds["md_committee_std_p99"] = ("md_committee_time", res.md_p99,
                                      {"units": "eV/Å", "description": "99th percentile over atoms"})
    fmax, p99 = frame_summary(res.per_atom)
    md_max, md_p99 = res.md_maxima()
    ds.attrs.update(committee_std_status=res.status, committee_std_definition=DEFINITION,
                    committee_size=res.n_members, committee_std_warn_eV_per_A=res.threshold,
                    committee_std_max=fmax, committee_std_p99=p99, md_committee_std_max=md_max,
                    md_committee_std_p99_max=md_p99)
