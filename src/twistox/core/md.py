"""The one MD integrator: Langevin dynamics with BAOAB splitting, on any force *evaluator*.

An evaluator maps positions (B, N, 3) [Å] and structure ids to energies (B,) [eV] and forces
(B, N, 3) [eV/Å]; ids let it keep per-structure state (neighbour lists). :class:`AseEvaluator`
wraps any ASE calculator. Used by the relax stage (MD averaging) and by MLIP active learning
(committee MD), so both sample the same thermostat.

Units: Å, eV, amu, K; velocities in Å per ASE time unit; times given in fs.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
from ase import Atoms, units

KB_EV = units.kB  # Boltzmann constant [eV/K] (ase.units)


class Evaluator(Protocol):
    def evaluate(self, positions: np.ndarray, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...


class AseEvaluator:
    """Energies [eV] and forces [eV/Å] from an ASE calculator, one structure per call.

    ``self.atoms.calc.results`` holds the last structure's full results (e.g. a committee's
    ``force_std``).
    """

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


def kinetic_temperature(v: np.ndarray, masses: np.ndarray, n_constraints: int = 3) -> float:
    """Instantaneous temperature [K] from velocities [Å / ASE time] and masses (N,) [amu]."""
    ekin = 0.5 * float(np.sum(masses[:, None] * v * v))
    dof = 3 * len(masses) - n_constraints
    return 2.0 * ekin / (dof * KB_EV)


class LangevinBAOAB:
    """Langevin dynamics, BAOAB splitting (Leimkuhler & Matthews, AMRX 2013, 34) of one structure.

    ``step`` updates ``x`` and ``v`` in place: half kick (B), half drift (A), exact
    Ornstein-Uhlenbeck velocity update (O) at ``temperature_K`` with friction
    ``friction_per_fs`` [1/fs], half drift (A), force call, half kick (B). Positions are never
    wrapped. ``sid`` is the structure id passed to the evaluator.
    """

    def __init__(self, evaluator: Evaluator, masses: np.ndarray, temperature_K: float, timestep_fs: float,
                 friction_per_fs: float, rng: np.random.Generator, sid: int = 0):
        self.evaluator = evaluator
        self.m = np.asarray(masses, float)[:, None]
        self.kT = KB_EV * float(temperature_K)
        self.dt = float(timestep_fs) * units.fs
        self.set_friction(friction_per_fs)
        self.rng = rng
        self.sid = int(sid)

    def set_friction(self, friction_per_fs: float) -> None:
        """Friction of the O step [1/fs] from now on (e.g. a stronger one while equilibrating)."""
        self.friction_per_fs = float(friction_per_fs)
        gamma = self.friction_per_fs / units.fs
        self.c1 = np.exp(-gamma * self.dt)
        self.c2 = np.sqrt((1.0 - self.c1 * self.c1) * self.kT / self.m)

    def initial_velocities(self, x: np.ndarray) -> np.ndarray:
        """Maxwell-Boltzmann draw at the thermostat temperature, zero total momentum."""
        v = self.rng.normal(size=x.shape) * np.sqrt(self.kT / self.m)
        v -= (self.m * v).sum(0) / self.m.sum()
        return v

    def forces(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """(energy [eV], forces (N, 3) [eV/Å]) at ``x``."""
        e, f = self.evaluator.evaluate(x[None], [self.sid])
        return float(e[0]), f[0]

    def step(self, x: np.ndarray, v: np.ndarray, f: np.ndarray) -> tuple[float, np.ndarray]:
        """One BAOAB step from (x, v) with forces ``f`` at x; updates x, v in place; returns (e, f) at the new x."""
        m, dt = self.m, self.dt
        v += 0.5 * dt * f / m  # B
        x += 0.5 * dt * v  # A
        v[:] = self.c1 * v + self.c2 * self.rng.normal(size=v.shape)  # O
        x += 0.5 * dt * v  # A
        e, f = self.forces(x)
        v += 0.5 * dt * f / m  # B
        return e, f
