"""Thermal diffuse scattering by frozen phonons (abTEM's ``FrozenPhonons``).

Each configuration displaces every atom by independent Gaussian offsets of standard deviation
σ along x, y and z (σ² = U_iso, the Debye–Waller mean-square displacement along one direction,
B = 8π² σ²). Intensities (ADF signals, diffraction patterns) are averaged over the
configurations, which puts the thermal diffuse scattering into the high-angle signal that the
elastic (static-lattice) simulation lacks.
"""

from __future__ import annotations

import json

import numpy as np
from ase import Atoms

PARTS = ("planview", "cross_section", "fourd")


def enabled_for(cfg: dict, part: str) -> bool:
    """Frozen phonons switched on for this part ('planview', 'cross_section', 'fourd')?"""
    fp = cfg["frozen_phonons"]
    return bool(fp["enabled"]) and part in fp["parts"]


def check_sigma(sigma: float | dict, numbers: np.ndarray) -> None:
    """Every element of the specimen needs a σ when σ is given per element."""
    if isinstance(sigma, dict):
        from ase.data import chemical_symbols

        missing = sorted({chemical_symbols[z] for z in np.unique(numbers)} - set(sigma))
        if missing:
            raise ValueError(f"stem.frozen_phonons.sigma: no value for {', '.join(missing)}; "
                             f"give every element of the specimen or one number for all")


def configurations(atoms: Atoms, cfg: dict, part: str, seed: int) -> list[Atoms]:
    """The specimens to simulate: the static ``atoms`` (phonons off), or ``num_configs`` displaced
    copies from abTEM's FrozenPhonons, reproducible from ``seed`` (x, y wrapped into the cell)."""
    if not enabled_for(cfg, part):
        return [atoms]
    import abtem

    fp = cfg["frozen_phonons"]
    check_sigma(fp["sigma"], atoms.numbers)
    sig = fp["sigma"]
    sigmas = {k: float(v) for k, v in sig.items()} if isinstance(sig, dict) else float(sig)
    ens = abtem.FrozenPhonons(atoms, num_configs=int(fp["num_configs"]), sigmas=sigmas, seed=int(seed))
    out = []
    for conf in ens:
        conf.wrap(pbc=(True, True, False))
        conf.info.update(atoms.info)
        out.append(conf)
    return out


def describe(cfg: dict, part: str) -> str:
    """JSON of the frozen-phonon settings used by a part (for the artifact attrs)."""
    fp = cfg["frozen_phonons"]
    return json.dumps({"enabled": enabled_for(cfg, part), "num_configs": int(fp["num_configs"]) if enabled_for(cfg, part) else 1,
                       "sigma_A": fp["sigma"], "seed": fp["seed"], "parts": fp["parts"]})
