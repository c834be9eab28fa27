"""Relaxation of twisted bilayers: translation scan, batched FIRE, Langevin MD averaging.

Units: Å, eV, fs, K, amu. Every structure handled here shares one atom list and cell
(the translation-scan candidates of one sample), so a batch is an array (B, N, 3).

Force evaluation goes through an *evaluator*: ``evaluate(positions (B, N, 3), ids) ->
(energies (B,) eV, forces (B, N, 3) eV/Å)``. ``ids`` name the structures so an evaluator
can keep per-structure state (neighbour lists). Two evaluators:

- :class:`AseEvaluator` wraps any ASE calculator (one structure at a time).
- :class:`MaceBatchEvaluator` runs MACE torch models directly: many structures in one
  forward pass, a Verlet-skin neighbour list rebuilt only when an atom moved more than
  half the skin (exact, because MACE's radial cutoff envelope is zero beyond r_max), and
  the GPU when the models live there.

Optimisation and MD checkpoint to an ``.npz`` (:class:`Checkpoint`) so a killed job
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
from ase import Atoms, units

from twistox.supercell.lattice import rotation2

log = logging.getLogger("twistox")

KB_EV = units.kB  # eV/K


class Evaluator(Protocol):
    def evaluate(self, positions: np.ndarray, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...


# ----------------------------------------------------------------------------- evaluators


class AseEvaluator:
    """Energies and forces from an ASE calculator, one structure per call."""

    def __init__(self, atoms: Atoms, calculator):
        self.atoms = atoms.copy()
        self.atoms.calc = calculator
        self.n_calls = 0

    def evaluate(self, positions: np.ndarray, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        e = np.empty(len(positions))
        f = np.empty_like(positions)
        for b, pos in enumerate(positions):
            self.atoms.positions = pos
            e[b] = self.atoms.get_potential_energy()
            f[b] = self.atoms.get_forces()
            self.n_calls += 1
        return e, f


class MaceBatchEvaluator:
    """MACE energies/forces for a batch of structures in one forward pass per model.

    ``models`` are MACE torch modules (all on one device, one dtype); the committee mean
    is returned. The neighbour list of each structure id uses cutoff r_max + skin and is
    rebuilt when any atom moved more than skin/2 since the last build.
    """

    def __init__(self, models: Sequence, atoms: Atoms, skin: float = 0.5, head: str | None = None):
        import torch

        if not models:
            raise ValueError("MaceBatchEvaluator needs at least one model")
        self.torch = torch
        self.models = list(models)
        p = next(self.models[0].parameters())
        self.device, self.dtype = p.device, p.dtype
        self.r_max = float(self.models[0].r_max)
        self.skin = float(skin)
        zs = [int(z) for z in self.models[0].atomic_numbers]
        missing = sorted(set(atoms.numbers) - set(zs))
        if missing:
            raise ValueError(f"the MACE model has no parameters for atomic numbers {missing}; it knows {zs}")
        idx = np.array([zs.index(int(z)) for z in atoms.numbers])
        self.n = len(atoms)
        self.node_attrs1 = np.eye(len(zs))[idx]
        heads = list(getattr(self.models[0], "heads", None) or ["Default"])
        self.head_index = heads.index(head) if head in heads else len(heads) - 1
        self.cell = np.array(atoms.cell, dtype=float)
        self.pbc = tuple(bool(x) for x in atoms.pbc)
        self._nl: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # id -> (pos at build, edges, shifts)
        self.n_builds = 0
        self.n_calls = 0

    @classmethod
    def from_calculator(cls, calc, atoms: Atoms, skin: float = 0.5) -> "MaceBatchEvaluator":
        """Use the (already device/dtype-converted) models of a mace MACECalculator."""
        return cls(calc.models, atoms, skin=skin, head=getattr(calc, "head", None))

    def _build(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from mace.data.neighborhood import get_neighborhood

        # wrap periodic directions for the cell-list search, then express the shifts for
        # the unwrapped positions the optimiser/MD keep: s_u = s_w - off_recv + off_send
        frac = np.linalg.solve(self.cell.T, pos.T).T
        wrap = np.where(np.array(self.pbc), np.floor(frac), 0.0)
        off = wrap @ self.cell
        edges, shifts, _, _ = get_neighborhood(pos - off, cutoff=self.r_max + self.skin, pbc=self.pbc,
                                               cell=self.cell.copy())
        shifts = shifts - off[edges[1]] + off[edges[0]]
        self.n_builds += 1
        return edges, shifts

    def evaluate(self, positions: np.ndarray, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        positions = np.asarray(positions, dtype=float)
        B, n = positions.shape[:2]
        edge_list, shift_list = [], []
        for b, i in enumerate(ids):
            cached = self._nl.get(int(i))
            if cached is None or np.max(np.linalg.norm(positions[b] - cached[0], axis=1)) > 0.5 * self.skin:
                e, s = self._build(positions[b])
                cached = (positions[b].copy(), e, s)
                self._nl[int(i)] = cached
            edges, shifts = cached[1], cached[2]
            # keep only pairs inside r_max: the model's cost is per edge, and these are
            # exactly the edges a fresh neighbour list would give
            d = positions[b][edges[1]] - positions[b][edges[0]] + shifts
            keep = np.einsum("ij,ij->i", d, d) < self.r_max**2
            edge_list.append(edges[:, keep] + b * n)
            shift_list.append(shifts[keep])
        dev, dt = self.device, self.dtype
        data = {
            "positions": torch.tensor(positions.reshape(-1, 3), dtype=dt, device=dev),
            "node_attrs": torch.tensor(np.tile(self.node_attrs1, (B, 1)), dtype=dt, device=dev),
            "edge_index": torch.tensor(np.concatenate(edge_list, axis=1), dtype=torch.long, device=dev),
            "shifts": torch.tensor(np.concatenate(shift_list), dtype=dt, device=dev),
            "cell": torch.tensor(np.tile(self.cell, (B, 1)), dtype=dt, device=dev),
            "batch": torch.arange(B, device=dev).repeat_interleave(n),
            "ptr": torch.arange(B + 1, device=dev) * n,
            "head": torch.full((B,), self.head_index, dtype=torch.long, device=dev),
        }
        data["unit_shifts"] = torch.zeros_like(data["shifts"])  # only used for stress, not computed here
        energy = torch.zeros(B, dtype=dt, device=dev)
        forces = torch.zeros(B * n, 3, dtype=dt, device=dev)
        for model in self.models:
            d = {k: (v.clone() if k == "positions" else v) for k, v in data.items()}
            out = model(d, training=False, compute_force=True)
            energy += out["energy"].detach()
            forces += out["forces"].detach()
        k = len(self.models)
        self.n_calls += B
        return (energy / k).cpu().numpy().astype(float), (forces / k).cpu().numpy().astype(float).reshape(B, n, 3)


def make_evaluator(calc, atoms: Atoms, skin: float = 0.5) -> Evaluator:
    """Batched MACE evaluator when ``calc`` carries MACE models, else the plain ASE path."""
    if hasattr(calc, "models") and hasattr(calc, "z_table"):
        return MaceBatchEvaluator.from_calculator(calc, atoms, skin=skin)
    return AseEvaluator(atoms, calc)


# ----------------------------------------------------------------------------- checkpoints


class Checkpoint:
    """Atomic per-phase ``.npz`` checkpoints in a directory, tied to a key.

    The key hashes everything the result depends on; a file written for another key
    (other input, other settings) is ignored, so a stale checkpoint never leaks into a
    new run. Each phase (scan, refine, md) has its own file, and a finished phase keeps
    its final state, so a job killed in a later phase does not redo the earlier ones.
    """

    def __init__(self, directory: str | os.PathLike | None, key: str, interval_s: float = 60.0):
        self.dir = Path(directory) if directory else None
        self.key = key
        self.interval_s = float(interval_s)
        self._last = time.monotonic()

    @staticmethod
    def make_key(*parts) -> str:
        h = hashlib.sha256()
        for p in parts:
            h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else
                     json.dumps(p, sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]

    def file(self, phase: str) -> Path | None:
        return None if self.dir is None else self.dir / f"{phase}.npz"

    def load(self, phase: str) -> dict | None:
        path = self.file(phase)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["_key"]) != self.key or str(z["_phase"]) != phase:
                    return None
                return {k: z[k] for k in z.files if not k.startswith("_")}
        except (OSError, ValueError, KeyError):
            return None

    def due(self) -> bool:
        return self.dir is not None and time.monotonic() - self._last >= self.interval_s

    def save(self, phase: str, **arrays) -> None:
        path = self.file(phase)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, _key=self.key, _phase=phase, **arrays)
        os.replace(tmp, path)
        self._last = time.monotonic()


# ----------------------------------------------------------------------------- FIRE


@dataclass
class FireResult:
    positions: np.ndarray  # (B, N, 3) Å
    energies: np.ndarray  # (B,) eV
    fmax: np.ndarray  # (B,) eV/Å, largest atomic force at the end
    steps: np.ndarray  # (B,) force evaluations used
    converged: np.ndarray  # (B,) bool
    initial_energies: np.ndarray  # (B,) eV


def fire_relax(evaluator: Evaluator, positions: np.ndarray, fmax: float = 0.05, max_steps: int = 500,
               maxstep: float = 0.1, dt: float = 0.1, dtmax: float = 1.0, batch_size: int = 8,
               checkpoint: Checkpoint | None = None, phase: str = "fire",
               callback: Callable[[int, np.ndarray], None] | None = None) -> FireResult:
    """Relax B structures at once with FIRE (Bitzek et al., PRL 97, 170201 (2006)).

    Same update and parameters as ``ase.optimize.FIRE`` (Nmin 5, finc 1.1, fdec 0.5,
    astart 0.1, fa 0.99, dt in ASE time units), each structure with its own state;
    converged ones leave the batch. The step is capped per atom at ``maxstep`` Å (not on
    the whole-system norm as in ASE): a rigid twisted interface has ~10 eV/Å forces on a
    few O atoms, which must not freeze the rest of a 10^4-atom cell.
    ``callback(step, positions)`` runs after every step (progress, tests).
    """
    x = np.array(positions, dtype=float, copy=True)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"positions must be (B, N, 3), got {x.shape}")
    B = len(x)
    v = np.zeros_like(x)
    dts = np.full(B, dt)
    alpha = np.full(B, 0.1)
    nsteps = np.zeros(B, int)
    steps = np.zeros(B, int)
    done = np.zeros(B, bool)
    e = np.full(B, np.nan)
    e0 = np.full(B, np.nan)
    fm = np.full(B, np.inf)
    f = np.zeros_like(x)
    have_f = np.zeros(B, bool)
    fresh = np.ones(B, bool)  # no velocity yet: ASE skips the mixing/dt update on the first step
    step = 0
    state = checkpoint.load(phase) if checkpoint else None
    if state is not None:
        x, v, dts, alpha, nsteps, steps, done, e, e0, fm, fresh = (
            state[k] for k in ("x", "v", "dt", "alpha", "nsteps", "steps", "done", "e", "e0", "fm", "fresh"))
        step = int(state["step"])
        log.info("%s: resumed from checkpoint at step %d (%d/%d converged)", phase, step, done.sum(), B)

    def forces_for(idx: np.ndarray) -> None:
        for lo in range(0, len(idx), batch_size):
            sub = idx[lo:lo + batch_size]
            ee, ff = evaluator.evaluate(x[sub], sub)
            e[sub], f[sub] = ee, ff
            have_f[sub] = True

    t_last = time.monotonic()
    while True:
        active = np.flatnonzero(~done & (steps < max_steps))
        need = active[~have_f[active]]
        if len(need):
            forces_for(need)
            e0[need] = np.where(np.isnan(e0[need]), e[need], e0[need])
            steps[need] += 1
        fm[active] = np.linalg.norm(f[active], axis=2).max(axis=1)
        newly = active[fm[active] < fmax]
        done[newly] = True
        active = np.flatnonzero(~done & (steps < max_steps))
        if len(active) == 0:
            break
        fa_, va_ = f[active], v[active]
        vf = np.einsum("bij,bij->b", fa_, va_)
        fr = fresh[active]
        up = (vf > 0.0) | fr
        fnorm = np.sqrt(np.einsum("bij,bij->b", fa_, fa_))
        vnorm = np.sqrt(np.einsum("bij,bij->b", va_, va_))
        a = alpha[active]
        mix = (1.0 - a)[:, None, None] * va_ + (a * vnorm / np.maximum(fnorm, 1e-300))[:, None, None] * fa_
        va_ = np.where(fr[:, None, None], 0.0, np.where(up[:, None, None], mix, 0.0))
        grow = up & ~fr & (nsteps[active] > 5)
        dts[active] = np.where(grow, np.minimum(dts[active] * 1.1, dtmax), np.where(up, dts[active], dts[active] * 0.5))
        alpha[active] = np.where(grow, a * 0.99, np.where(up, a, 0.1))
        nsteps[active] = np.where(fr, 0, np.where(up, nsteps[active] + 1, 0))
        fresh[active] = False
        va_ = va_ + dts[active][:, None, None] * fa_
        dr = dts[active][:, None, None] * va_
        norm = np.linalg.norm(dr, axis=2, keepdims=True)
        dr *= np.minimum(1.0, maxstep / np.maximum(norm, 1e-300))
        x[active] += dr
        v[active] = va_
        have_f[active] = False
        step += 1
        if callback is not None:
            callback(step, x)
        if checkpoint is not None and checkpoint.due():
            _save_fire(checkpoint, phase, locals())
        if time.monotonic() - t_last > 10.0:
            t_last = time.monotonic()
            log.info("%s: step %d, %d/%d converged, max force %.3g eV/Å", phase, step, done.sum(), B,
                     float(np.max(fm[active])))
    if checkpoint is not None:
        _save_fire(checkpoint, phase, locals())
    return FireResult(positions=x, energies=e.copy(), fmax=fm.copy(), steps=steps.copy(), converged=done.copy(),
                      initial_energies=e0.copy())


def _save_fire(checkpoint: Checkpoint, phase: str, s: dict) -> None:
    checkpoint.save(phase, x=s["x"], v=s["v"], dt=s["dts"], alpha=s["alpha"], nsteps=s["nsteps"], steps=s["steps"],
                    done=s["done"], e=s["e"], e0=s["e0"], fm=s["fm"], fresh=s["fresh"], step=s["step"])


# ----------------------------------------------------------------------------- translation scan


def translation_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of the top layer along its own [100] and [010] (unit-cell fractions): n x n in [0, 1)."""
    if int(n) != n or n < 1:
        raise ValueError(f"translation_grid: {n!r} is not allowed; allowed: integer >= 1")
    t = np.arange(int(n)) / int(n)
    return t, t.copy()


def translate_top_layer(atoms: Atoms, offset_frac: Sequence[float]) -> np.ndarray:
    """Positions with the top layer shifted by ``offset_frac`` of its unit cell, wrapped in x, y (Å)."""
    info = atoms.info
    shift2 = rotation2(info["layer_angles_deg"][1]) @ (np.asarray(offset_frac, float) * float(info["a"]))
    pos = atoms.get_positions().copy()
    top = atoms.arrays["layer"] == 1
    pos[top, :2] += shift2
    L = np.diag(atoms.cell)[:2]
    pos[:, :2] = np.mod(pos[:, :2], L)
    pos[:, :2][np.isclose(pos[:, :2], L, atol=1e-10)] = 0.0
    return pos


# ----------------------------------------------------------------------------- MD


@dataclass
class MDResult:
    mean_positions: np.ndarray  # (N, 3) Å, unwrapped, centre-of-mass drift removed
    final_positions: np.ndarray  # (N, 3) Å
    time_fs: np.ndarray  # (T,) sampled times
    temperature: np.ndarray  # (T,) K
    potential_energy: np.ndarray  # (T,) eV
    n_averaged: int
    extra: dict = field(default_factory=dict)


def kinetic_temperature(v: np.ndarray, masses: np.ndarray, n_constraints: int = 3) -> float:
    """Instantaneous temperature (K) from velocities (Å / ASE time) and masses (amu)."""
    ekin = 0.5 * float(np.sum(masses[:, None] * v * v))
    dof = 3 * len(masses) - n_constraints
    return 2.0 * ekin / (dof * KB_EV)


def langevin_md(evaluator: Evaluator, positions: np.ndarray, masses: np.ndarray, temperature_K: float,
                timestep_fs: float, n_steps: int, n_discard: int, friction_per_fs: float = 0.01,
                sample_every: int = 10, rng: np.random.Generator | None = None,
                checkpoint: Checkpoint | None = None, phase: str = "md") -> MDResult:
    """Langevin MD (BAOAB splitting; Leimkuhler & Matthews, AMRX 2013, 34) and position averaging.

    Positions are never wrapped, so the average over steps ``n_discard < s <= n_steps`` is
    the unwrapped time average; the centre-of-mass displacement of each frame is removed
    before averaging (Langevin noise makes the whole cell drift). Velocities start from a
    Maxwell-Boltzmann draw at ``temperature_K`` with zero total momentum.
    """
    if not (0 <= n_discard < n_steps):
        raise ValueError(f"need 0 <= n_discard ({n_discard}) < n_steps ({n_steps})")
    rng = rng or np.random.default_rng(0)
    m = np.asarray(masses, float)[:, None]
    kT = KB_EV * temperature_K
    dt = timestep_fs * units.fs
    gamma = friction_per_fs / units.fs
    c1 = np.exp(-gamma * dt)
    c2 = np.sqrt((1.0 - c1 * c1) * kT / m)
    x = np.array(positions, float, copy=True)
    com0 = (m * x).sum(0) / m.sum()
    v = rng.normal(size=x.shape) * np.sqrt(kT / m)
    v -= (m * v).sum(0) / m.sum()
    step, acc, n_acc = 0, np.zeros_like(x), 0
    tr_t, tr_T, tr_E = [], [], []
    state = checkpoint.load(phase) if checkpoint else None
    if state is not None:
        x, v, acc, n_acc, step = state["x"], state["v"], state["acc"], int(state["n_acc"]), int(state["step"])
        tr_t, tr_T, tr_E = list(state["tr_t"]), list(state["tr_T"]), list(state["tr_E"])
        rng.bit_generator.state = json.loads(str(state["rng"]))
        log.info("%s: resumed from checkpoint at step %d of %d", phase, step, n_steps)
    e, f = evaluator.evaluate(x[None], [0])
    e, f = float(e[0]), f[0]
    t_last = time.monotonic()
    while step < n_steps:
        v += 0.5 * dt * f / m  # B
        x += 0.5 * dt * v  # A
        v = c1 * v + c2 * rng.normal(size=v.shape)  # O
        x += 0.5 * dt * v  # A
        ee, ff = evaluator.evaluate(x[None], [0])
        e, f = float(ee[0]), ff[0]
        v += 0.5 * dt * f / m  # B
        step += 1
        if step > n_discard:
            acc += x - ((m * x).sum(0) / m.sum() - com0)
            n_acc += 1
        if step % sample_every == 0 or step == n_steps:
            tr_t.append(step * timestep_fs)
            tr_T.append(kinetic_temperature(v, m[:, 0]))
            tr_E.append(e)
        if checkpoint is not None and checkpoint.due():
            checkpoint.save(phase, x=x, v=v, acc=acc, n_acc=n_acc, step=step, tr_t=np.array(tr_t),
                            tr_T=np.array(tr_T), tr_E=np.array(tr_E), rng=json.dumps(rng.bit_generator.state))
        if time.monotonic() - t_last > 10.0:
            t_last = time.monotonic()
            log.info("%s: step %d/%d, T = %.1f K, E = %.4f eV", phase, step, n_steps,
                     kinetic_temperature(v, m[:, 0]), e)
    if checkpoint is not None:
        checkpoint.save(phase, x=x, v=v, acc=acc, n_acc=n_acc, step=step, tr_t=np.array(tr_t),
                        tr_T=np.array(tr_T), tr_E=np.array(tr_E), rng=json.dumps(rng.bit_generator.state))
    return MDResult(mean_positions=acc / max(n_acc, 1), final_positions=x, time_fs=np.array(tr_t),
                    temperature=np.array(tr_T), potential_energy=np.array(tr_E), n_averaged=n_acc)


def minimum_image_displacement(a: np.ndarray, b: np.ndarray, cell: np.ndarray, pbc: Sequence[bool]) -> np.ndarray:
    """b - a under the minimum-image convention of an orthorhombic cell (Å)."""
    d = np.asarray(b, float) - np.asarray(a, float)
    Ld = np.diag(np.asarray(cell, float))
    for k in range(3):
        if pbc[k]:
            d[:, k] -= Ld[k] * np.round(d[:, k] / Ld[k])
    return d


# ----------------------------------------------------------------------------- stage driver


def tune_malloc() -> bool:
    """Keep glibc from mmapping/unmapping torch's large per-call buffers (ENVIRONMENT.md: ~2x on CPU).

    Same effect as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e11 MALLOC_TOP_PAD_=2 GiB, set at run
    time through mallopt; a no-op (False) where glibc is absent.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
        ok = libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) and libc.mallopt(M_TOP_PAD, 2**31 - 1)
        return bool(ok)
    except (OSError, AttributeError):
        return False


def check_settings(cfg: dict) -> None:
    """Semantic checks of config['relax'] the schema cannot express (cheap; raise ValueError)."""
    md = cfg.get("md", {})
    if md.get("enabled", True):
        if md["discard_ps"] >= md["total_ps"]:
            raise ValueError(f"relax.md.discard_ps: {md['discard_ps']} must be < relax.md.total_ps ({md['total_ps']}); "
                             "allowed: 0 <= discard_ps < total_ps")
        if md["total_ps"] * 1000.0 / md["timestep_fs"] < 1:
            raise ValueError("relax.md.total_ps: shorter than one time step; allowed: total_ps >= timestep_fs / 1000")


def mlip_calculator(model_paths: Sequence[str], mode: str = "mean", device: str = "auto", dtype: str = "float64"):
    """The committee's ASE calculator: twistox.mlip.committee.load_calculator when present, else mace's own."""
    try:
        from twistox.mlip.committee import load_calculator
    except ImportError:
        load_calculator = None
    if load_calculator is not None:
        return load_calculator(list(map(str, model_paths)), mode=mode, device=device, default_dtype=dtype)
    from mace.calculators import MACECalculator

    from twistox.core.runtime import torch_device

    paths = list(map(str, model_paths))[: (1 if mode == "first" else None)]
    return MACECalculator(model_paths=paths, device=torch_device(device), default_dtype=dtype)


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


def relax_bilayer(atoms: Atoms, calc, cfg: dict, rng: np.random.Generator, checkpoint_dir=None,
                  checkpoint_key: str = "") -> RelaxOutcome:
    """Translation scan -> FIRE relaxation of the best candidate -> Langevin MD averaging.

    ``atoms``: rigid supercell with arrays ``layer`` and info ``layer_angles_deg``, ``a``.
    ``cfg``: config['relax'] (schema defaults filled in).
    """
    check_settings(cfg)
    t0 = time.time()
    ck = Checkpoint(checkpoint_dir, checkpoint_key, cfg.get("checkpoint_interval_s", 120.0))
    ev = make_evaluator(calc, atoms, skin=cfg["neighbour_skin"])
    tx, ty = translation_grid(cfg["translation_grid"])
    offsets = [(a, b) for a in tx for b in ty]
    rigid = np.stack([translate_top_layer(atoms, o) for o in offsets])
    e_rigid, f_rigid = _energies(ev, rigid, cfg["batch_size"])
    log.info("translation scan: %d candidates of %d atoms; rigid max force %.2f eV/Å", len(offsets), len(atoms),
             float(np.linalg.norm(f_rigid, axis=2).max()))
    scan = fire_relax(ev, rigid, fmax=cfg["scan_fmax"], max_steps=cfg["scan_max_steps"], maxstep=cfg["maxstep"],
                      batch_size=cfg["batch_size"], checkpoint=ck, phase="scan")
    n = len(tx)
    E = scan.energies.reshape(n, n)
    ib = int(np.nanargmin(scan.energies))
    best = (ib // n, ib % n)
    log.info("scan done in %.1f s: %d/%d converged; best offset (%.3f, %.3f), E spread %.1f meV",
             time.time() - t0, scan.converged.sum(), len(offsets), *offsets[ib], 1000 * (np.nanmax(E) - np.nanmin(E)))
    t1 = time.time()
    # refine with a fresh neighbour-list id so the scan's cache does not matter
    fin = fire_relax(_Renamed(ev, 10**6), scan.positions[ib:ib + 1], fmax=cfg["fmax"], max_steps=cfg["max_steps"],
                     maxstep=cfg["maxstep"], checkpoint=ck, phase="refine")
    log.info("refined best candidate: E = %.4f eV, max force %.4f eV/Å (%s) after %d steps in %.1f s",
             fin.energies[0], fin.fmax[0], "converged" if fin.converged[0] else "NOT converged", fin.steps[0],
             time.time() - t1)
    relaxed = fin.positions[0]
    md_res = None
    t2 = time.time()
    md = cfg["md"]
    if md["enabled"]:
        n_steps = max(1, int(round(md["total_ps"] * 1000.0 / md["timestep_fs"])))
        n_discard = int(round(md["discard_ps"] * 1000.0 / md["timestep_fs"]))
        log.info("MD: %d steps of %.2f fs at %.0f K, averaging the last %d", n_steps, md["timestep_fs"],
                 md["temperature_K"], n_steps - n_discard)
        md_res = langevin_md(_Renamed(ev, 2 * 10**6), relaxed, atoms.get_masses(), md["temperature_K"],
                             md["timestep_fs"], n_steps, n_discard, friction_per_fs=md["friction_per_ps"] / 1000.0,
                             sample_every=md["sample_every"], rng=rng, checkpoint=ck, phase="md")
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
    )


class _Renamed:
    """Evaluator view that offsets structure ids (separate neighbour-list caches per phase)."""

    def __init__(self, ev: Evaluator, offset: int):
        self.ev, self.offset = ev, offset

    def evaluate(self, positions, ids):
        return self.ev.evaluate(positions, [int(i) + self.offset for i in ids])


def _energies(ev: Evaluator, positions: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    es, fs = [], []
    for lo in range(0, len(positions), batch_size):
        ids = list(range(lo, min(lo + batch_size, len(positions))))
        e, f = ev.evaluate(positions[ids], ids)
        es.append(e)
        fs.append(f)
    return np.concatenate(es), np.concatenate(fs)


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
    i, j = out.best
    st = list(base_attrs.get("translation", [0.0, 0.0]))
    ds.attrs.update(
        supercell_translation=st, translation_offset=[float(out.tx[i]), float(out.ty[j])],
        translation=[st[0] + float(out.tx[i]), st[1] + float(out.ty[j])],
        energy_relaxed=out.energy_relaxed, fmax_relaxed=out.fmax_relaxed, relax_converged=out.converged,
        md_ran=out.md is not None, md_frames_averaged=out.md.n_averaged if out.md is not None else 0,
        **out.timings,
    )
    return ds


def plot_translation_energy(ds, path) -> None:
    """Relaxed (and rigid) energy vs top-layer offset, meV per surface unit cell, best marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sigma = int(ds.attrs.get("sigma", 1))
    tx, ty = ds["tx"].values, ds["ty"].values
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), layout="constrained")
    n = len(tx)
    edges = (np.arange(n + 1) - 0.5) / n
    for ax, var, title in zip(axes, ("translation_energy", "translation_energy_rigid"), ("relaxed", "rigid")):
        E = ds[var].values
        rel = 1000.0 * (E - np.nanmin(E)) / sigma
        im = ax.pcolormesh(edges, edges, rel.T, cmap="viridis")
        fig.colorbar(im, ax=ax, label="ΔE (meV / surface cell)")
        k = np.unravel_index(np.nanargmin(E), E.shape)
        ax.plot(tx[k[0]], ty[k[1]], "r*", ms=14, label="minimum")
        ax.set_xlabel("offset along top [100] (cells)")
        ax.set_ylabel("offset along top [010] (cells)")
        ax.set_title(f"{title}: θ = {ds.attrs.get('theta_deg', 0):.2f}°, Σ{sigma}")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def plot_md(ds, path, md_cfg: dict | None = None) -> None:
    """MD temperature and potential energy traces (or a note that MD did not run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6.5, 5.0), sharex=True, layout="constrained")
    if "md_time" in ds.coords and ds.sizes.get("md_time", 0):
        t = ds["md_time"].values / 1000.0
        a1.plot(t, ds["md_temperature"].values, lw=1)
        a2.plot(t, ds["md_potential_energy"].values - ds["md_potential_energy"].values[0], lw=1)
        cfg = md_cfg or {}
        if cfg:
            for ax in (a1, a2):
                ax.axvspan(0, cfg.get("discard_ps", 0), color="0.85", label="discarded")
            a1.axhline(cfg.get("temperature_K", 300), color="k", ls="--", lw=0.8, label="thermostat")
        a1.legend(fontsize=8)
    else:
        a1.text(0.5, 0.5, "MD disabled (relax.md.enabled = false)", ha="center", transform=a1.transAxes)
    a1.set_ylabel("T (K)")
    a2.set_ylabel("E_pot - E_pot(0) (eV)")
    a2.set_xlabel("time (ps)")
    a1.set_title(f"Langevin MD, {ds.attrs.get('n_atoms', '')} atoms")
    _save(fig, path)


def _save(fig, path) -> None:
    from twistox.core.plots import save

    save(fig, path)
