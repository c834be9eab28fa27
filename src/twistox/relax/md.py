"""Langevin MD of the relaxed bilayer and its time-averaged positions (one structure, N atoms).

The integrator is :class:`twistox.core.md.LangevinBAOAB` (the one MD integrator of twistox).
Units: Å, eV, fs, K, amu.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from twistox.core.checkpoint import Checkpoint
from twistox.core.md import Evaluator, LangevinBAOAB, kinetic_temperature

log = logging.getLogger("twistox")

__all__ = ["MDResult", "averaging_window", "langevin_md", "kinetic_temperature"]


@dataclass
class MDResult:
    mean_positions: np.ndarray  # (N, 3) Å, unwrapped, centre-of-mass drift removed
    final_positions: np.ndarray  # (N, 3) Å
    time_fs: np.ndarray  # (T,) sampled times
    temperature: np.ndarray  # (T,) K
    potential_energy: np.ndarray  # (T,) eV
    n_averaged: int
    extra: dict = field(default_factory=dict)
    block_positions: np.ndarray | None = None  # (n_blocks, N, 3) Å, block time averages like mean_positions
    observed_time_fs: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,) times of ``observe`` calls
    observed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (M, k) what ``observe`` returned


def averaging_window(n_steps: int, n_discard: int, n_blocks: int = 1) -> tuple[int, int]:
    """(first averaged step - 1, steps per block): the window ``n_discard < s <= n_steps`` trimmed at its
    start by ``(n_steps - n_discard) % n_blocks`` (< n_blocks) steps so that all blocks are equally long
    and the mean of the block averages is the window average."""
    if not (0 <= n_discard < n_steps):
        raise ValueError(f"need 0 <= n_discard ({n_discard}) < n_steps ({n_steps})")
    if not (1 <= n_blocks <= n_steps - n_discard):
        raise ValueError(f"need 1 <= n_blocks ({n_blocks}) <= averaged steps ({n_steps - n_discard})")
    per_block = (n_steps - n_discard) // n_blocks
    return n_steps - n_blocks * per_block, per_block


def langevin_md(evaluator: Evaluator, positions: np.ndarray, masses: np.ndarray, temperature_K: float,
                timestep_fs: float, n_steps: int, n_discard: int, friction_per_fs: float = 0.01,
                sample_every: int = 10, rng: np.random.Generator | None = None,
                checkpoint: Checkpoint | None = None, phase: str = "md", n_blocks: int = 1,
                observe: Callable[[np.ndarray], Sequence[float]] | None = None, observe_every: int = 0,
                callback: Callable[[int, np.ndarray], None] | None = None,
                equilibration_friction_per_fs: float | None = None) -> MDResult:
    """Langevin MD (BAOAB) and position averaging over steps ``n_discard < s <= n_steps``.

    Positions are never wrapped, so the average is the unwrapped time average; the
    centre-of-mass displacement of each frame is removed before averaging (Langevin noise
    makes the whole cell drift). Velocities start from a Maxwell-Boltzmann draw at
    ``temperature_K`` with zero total momentum. Friction in 1/fs.

    ``n_blocks``: the window is also split into that many contiguous, equally long blocks whose
    averages (same unwrapping and drift removal) are ``block_positions``; see :func:`averaging_window`
    for the < n_blocks steps this may trim from the window's start. ``observe(x)``, when given, is
    called on the positions (a copy) every ``observe_every`` steps; its numbers are returned in
    ``observed`` (it must not draw from ``rng``, so a resumed run stays bit-identical).
    ``callback(step, positions)`` runs after every step (e.g. :class:`twistox.relax.guard.ContactGuard`;
    it may raise to stop the run, and must not draw from ``rng`` either).
    ``equilibration_friction_per_fs``: friction of the discarded steps (None: ``friction_per_fs``). Started
    from a minimum, half the Maxwell-Boltzmann kinetic energy flows into the potential, and a weak production
    thermostat (1/ps) refills it only over a few ps: the window would average a colder run. A strong
    friction while discarding thermalises in ~1/γ without touching the production dynamics.
    """
    start, per_block = averaging_window(n_steps, n_discard, n_blocks)
    if observe is not None and observe_every < 1:
        raise ValueError(f"observe_every ({observe_every}) must be >= 1 when observe is given")
    rng = rng or np.random.default_rng(0)
    integ = LangevinBAOAB(evaluator, masses, temperature_K, timestep_fs, friction_per_fs, rng, sid=0)
    m = integ.m
    x = np.array(positions, float, copy=True)
    com0 = (m * x).sum(0) / m.sum()
    v = integ.initial_velocities(x)
    step, acc, n_acc = 0, np.zeros_like(x), 0
    bacc = np.zeros((n_blocks,) + x.shape)
    tr_t, tr_T, tr_E, ob_t, ob_v = [], [], [], [], []
    state = checkpoint.load(phase) if checkpoint else None
    if state is not None:
        x, v, acc, n_acc, step = state["x"], state["v"], state["acc"], int(state["n_acc"]), int(state["step"])
        bacc = state["bacc"]
        tr_t, tr_T, tr_E = list(state["tr_t"]), list(state["tr_T"]), list(state["tr_E"])
        ob_t, ob_v = list(state["ob_t"]), [tuple(r) for r in state["ob_v"]]
        rng.bit_generator.state = state["rng"]
        log.info("%s: resumed from checkpoint at step %d of %d", phase, step, n_steps)

    def save() -> None:
        checkpoint.save(phase, x=x, v=v, acc=acc, n_acc=n_acc, step=step, tr_t=np.array(tr_t),
                        tr_T=np.array(tr_T), tr_E=np.array(tr_E), rng=rng.bit_generator.state, bacc=bacc,
                        ob_t=np.array(ob_t, float), ob_v=np.array(ob_v, float).reshape(len(ob_v), -1)
                        if ob_v else np.zeros((0, 0)))

    e, f = integ.forces(x)
    t_last = time.monotonic()
    eq_friction = friction_per_fs if equilibration_friction_per_fs is None else equilibration_friction_per_fs
    while step < n_steps:
        want = eq_friction if step < start else friction_per_fs   # depends on the step only: resumes agree
        if want != integ.friction_per_fs:
            integ.set_friction(want)
        e, f = integ.step(x, v, f)
        step += 1
        if step > start:
            y = x - ((m * x).sum(0) / m.sum() - com0)
            acc += y
            bacc[(step - start - 1) // per_block] += y
            n_acc += 1
        if step % sample_every == 0 or step == n_steps:
            tr_t.append(step * timestep_fs)
            tr_T.append(kinetic_temperature(v, m[:, 0]))
            tr_E.append(e)
        if observe is not None and step % observe_every == 0:
            ob_t.append(step * timestep_fs)
            ob_v.append(tuple(float(o) for o in observe(x.copy())))
        if callback is not None:
            callback(step, x)
        if checkpoint is not None and checkpoint.due():
            save()
        if time.monotonic() - t_last > 10.0:
            t_last = time.monotonic()
            log.info("%s: step %d/%d, T = %.1f K, E = %.4f eV", phase, step, n_steps,
                     kinetic_temperature(v, m[:, 0]), e)
    if checkpoint is not None:
        save()
    return MDResult(mean_positions=acc / max(n_acc, 1), final_positions=x, time_fs=np.array(tr_t),
                    temperature=np.array(tr_T), potential_energy=np.array(tr_E), n_averaged=n_acc,
                    block_positions=bacc / per_block, observed_time_fs=np.array(ob_t, float),
                    observed=np.array(ob_v, float) if ob_v else np.zeros((0, 0)))
