"""Semantic checks of the ``stem`` config section (after schema validation), cheap and before any
simulation: each failure is one ConfigError naming the key and what is allowed.

The sampling reach needs the electron wavelength (abTEM's helper, imported on first use).
"""

from __future__ import annotations

from twistox.core.config import ConfigError
from twistox.stem.optics import max_sampling_for_angle, max_scattering_angle


def _check_reach(key: str, sampling: float, outer: float, outer_key: str, energy: float) -> None:
    reach = max_scattering_angle(sampling, energy)
    if outer > reach + 1e-9:
        need = max_sampling_for_angle(outer, energy)
        raise ConfigError(
            f"config key 'stem.{key}': potential sampling {sampling} Å resolves scattering only up to "
            f"{reach:.1f} mrad at {energy / 1e3:g} keV (abTEM's 2/3 antialias aperture), below "
            f"'stem.{outer_key}' = {outer:g} mrad; allowed: stem.{key} <= {need:.4f} Å, "
            f"or stem.{outer_key} <= {reach:.1f} mrad")


def _check_phonons(fp: dict) -> None:
    from ase.data import atomic_numbers

    if not fp["enabled"]:
        return
    sigma = fp["sigma"]
    if isinstance(sigma, dict):
        bad = [k for k in sigma if k not in atomic_numbers or k == "X"]
        if bad:
            raise ConfigError(f"config key 'stem.frozen_phonons.sigma': {bad} are not element symbols; "
                              "allowed: one number (Å) or {element symbol: Å}")
    if not fp["parts"]:
        raise ConfigError("config key 'stem.frozen_phonons.parts': empty while enabled; "
                          "allowed: any of planview, cross_section, fourd")


def check_config(cfg: dict) -> None:
    """Checks of the validated ``stem`` section; raise ConfigError naming the key."""
    energy = float(cfg["energy_kev"]) * 1e3
    structs = cfg["structures"]
    if len(set(structs)) != len(structs):
        raise ConfigError(f"config key 'stem.structures': {structs} has duplicates; allowed: relaxed, rigid (each once)")
    pv = cfg["planview"]
    if pv["enabled"]:
        outer = float(pv["detector"]["outer_mrad"])
        for name, (lo, hi) in pv["ranges"].items():
            if not (0 <= lo < hi <= outer):
                raise ConfigError(f"config key 'stem.planview.ranges.{name}': [{lo}, {hi}] mrad must satisfy "
                                  f"0 <= inner < outer <= stem.planview.detector.outer_mrad = {outer:g}")
        _check_reach("planview.potential_sampling", pv["potential_sampling"], outer,
                     "planview.detector.outer_mrad", energy)
    cs = cfg["cross_section"]
    if cs["enabled"]:
        lo, hi = cs["detector_mrad"]
        if not 0 <= lo < hi:
            raise ConfigError(f"config key 'stem.cross_section.detector_mrad': [{lo}, {hi}]; allowed: 0 <= inner < outer")
        _check_reach("cross_section.potential_sampling", cs["potential_sampling"], hi,
                     "cross_section.detector_mrad[1]", energy)
    fd = cfg["fourd"]
    if fd["enabled"]:
        reach = max_scattering_angle(fd["potential_sampling"], energy)
        if fd["max_angle_mrad"] is not None:
            _check_reach("fourd.potential_sampling", fd["potential_sampling"], fd["max_angle_mrad"],
                         "fourd.max_angle_mrad", energy)
            if fd["max_angle_mrad"] <= fd["semiangle_mrad"]:
                raise ConfigError("config key 'stem.fourd.max_angle_mrad': must exceed stem.fourd.semiangle_mrad "
                                  "so the bright-field disc lies on the detector")
            reach = fd["max_angle_mrad"]
        if fd["com_mode"] == "bright_field" and fd["com_radius"] == "semiangle":
            mask = fd["com_mask_factor"] * fd["semiangle_mrad"]
            if mask >= reach:
                raise ConfigError(f"config key 'stem.fourd.com_mask_factor': the bright-field mask "
                                  f"{mask:g} mrad (x stem.fourd.semiangle_mrad) reaches the detector edge "
                                  f"({reach:.1f} mrad); allowed: com_mask_factor < {reach / fd['semiangle_mrad']:.2f}")
    _check_phonons(cfg["frozen_phonons"])
