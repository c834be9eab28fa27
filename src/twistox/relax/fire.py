"""Batched FIRE relaxation of many structures sharing one atom list and cell (positions (B, N, 3) Å).

Checkpoints (:class:`twistox.core.checkpoint.Checkpoint`, one name per phase) let a killed
job resume at the step it reached.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from twistox.core.checkpoint import Checkpoint
from twistox.core.md import Evaluator

log = logging.getLogger("twistox")

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
        if "f" in state:  # forces of x already evaluated (a run stopped at max_steps): reuse, do not count again
            f, have_f = np.array(state["f"], float), np.array(state["have_f"], bool)
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
                    done=s["done"], e=s["e"], e0=s["e0"], fm=s["fm"], fresh=s["fresh"], step=s["step"],
                    f=s["f"], have_f=s["have_f"])

