"""Config of the phasefield stage: defaults come only from workflow/schemas/phasefield.schema.yaml.

Library entry points take the validated ``phasefield`` section (``validated``), so no default lives
in the code; ``RelaxSettings`` reads its field defaults from the schema through ``schema_defaults``.
"""

from __future__ import annotations

import copy
from functools import lru_cache

from twistox.core.config import ConfigError, _check, _schema

from .materials import FLEXO_PRESETS, flexo_coefficients, material_from_config


@lru_cache(maxsize=1)
def _defaults() -> dict:
    cfg: dict = {}
    _check(cfg, _schema("phasefield"), ("phasefield",))
    return cfg


def schema_defaults() -> dict:
    """The phasefield section with every schema default filled in (a fresh copy)."""
    return copy.deepcopy(_defaults())


def validated(section: dict | None = None) -> dict:
    """A copy of ``section`` validated against the schema, defaults filled; ConfigError names the key."""
    cfg = copy.deepcopy(section or {})
    _check(cfg, _schema("phasefield"), ("phasefield",))
    return cfg


def check_config(pf: dict) -> None:
    """Semantic checks the schema cannot express, before any heavy work; ConfigError names the key."""
    if pf["nz"] % 2:
        raise ConfigError(f"config key 'phasefield.nz': {pf['nz']} must be even (equal layers, interface on a face)")
    if pf["initial_amplitude"] >= 1e-4:
        raise ConfigError("config key 'phasefield.initial_amplitude': must be < 1e-4 C/m2 (paper's initial condition)")
    if pf["dt_max"] < pf["dt"]:
        raise ConfigError(f"config key 'phasefield.dt_max': {pf['dt_max']} must be >= phasefield.dt ({pf['dt']})")
    eg = pf["eigenstrain"]
    if eg["source"] == "analytic_network" and eg["profile"] == "fitted":
        raise ConfigError("config key 'phasefield.eigenstrain.profile': 'fitted' needs source 'strain' (planes of a "
                          "relaxed stack); with source 'analytic_network' use 'elastic' or 'exponential'")
    src = pf["material"].get("flexo_source", "custom")
    try:
        flexo_coefficients(pf["material"])
        mat = material_from_config(pf["material"], pf["temperature_K"])
        mat.check("config key 'phasefield.material'")
    except ValueError as exc:
        msg = str(exc)
        if src != "custom" and src in FLEXO_PRESETS:
            msg += f" (flexo_source {src!r})"
        raise ConfigError(msg if msg.startswith("config key") else f"config key '{msg.split(':')[0]}':"
                          f"{msg.split(':', 1)[1] if ':' in msg else msg}") from None
