"""Every configuration check, run once at workflow start (before any job) for every sample.

`check_all(config)` validates against the schemas (defaults filled in place), then calls each
stage's own semantic checks -- the ones that otherwise would surface only inside that stage's
job, hours into a run -- for every system and every sample of the sweep. Each failure is one
`ConfigError` whose message names the config key and what is allowed.

This module imports every stage, so it sits at the end of the import graph (nothing in
`twistox.<stage>` imports it); the Snakefile and the ``twistox config`` command call it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from twistox.core.config import ConfigError, resolve_samples, validate_config

_KEY_RE = re.compile(r"config key '([^']+)'")
_BARE_KEY_RE = re.compile(r"^([a-z_]+(?:\.[A-Za-z0-9_\[\]]+)+):\s*")


def _as_config_error(exc: Exception, default_key: str) -> ConfigError:
    """One ConfigError that names the key: stage checks word their messages as
    "config key 'a.b': ...", "a.b: ..." or (rarely) without a key; the latter get ``default_key``."""
    msg = str(exc)
    if isinstance(exc, ConfigError) and _KEY_RE.search(msg):
        return exc
    if _KEY_RE.search(msg):
        return ConfigError(msg)
    m = _BARE_KEY_RE.match(msg)
    if m:
        return ConfigError(f"config key '{m.group(1)}': {msg[m.end():]}")
    return ConfigError(f"config key '{default_key}': {msg}")


def _run(key: str, fn: Callable, /, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except (ValueError, KeyError, TypeError) as exc:  # ConfigError is a ValueError
        raise _as_config_error(exc, key) from None


# ------------------------------------------------------------------------------ per stage

def check_systems(config: dict) -> None:
    """Species of every system are chemical elements (A, B, X)."""
    from ase.data import chemical_symbols

    known = set(chemical_symbols[1:])
    systems = config.get("systems")
    for name, s in (systems.items() if isinstance(systems, dict) else ()):
        for site in ("A", "B", "X"):
            if isinstance(s, dict) and isinstance(s.get(site), str) and s[site] not in known:
                raise ConfigError(f"config key 'systems.{name}.{site}': {s[site]!r} is not a chemical element; "
                                  "allowed: element symbols such as Sr, Ba, Ti, O")


def check_dft(config: dict, software: bool = True) -> None:
    """DFT calculator known (and, with ``software``, installed with its data: GPAW setups, VASP command ...).

    software=False where jobs run in their own conda environments, which the workflow's
    interpreter does not see."""
    from twistox.dft.calculators import CALCULATORS, check_calculator

    dft = config["dft"]
    for d in dft.get("label_seed", ()):
        if not Path(d).is_dir():
            raise ConfigError(f"config key 'dft.label_seed': {d!r} is not a directory (paths are relative to the "
                              "working directory); allowed: existing label cache directories, or []")
    calcs = [("dft.calculator", dft.get("calculator"))]
    md = dft.get("configs", {})
    if md.get("md", 0) and md.get("md_calculator"):
        calcs.append(("dft.configs.md_calculator", md["md_calculator"]))
    for key, name in calcs:
        if name is None:
            continue
        if not software:
            if name not in CALCULATORS:
                raise ConfigError(f"config key '{key}': unknown calculator {name!r}; allowed: "
                                  + ", ".join(repr(c) for c in CALCULATORS))
            continue
        _run(key, check_calculator, name, dft, key=key)


def check_relax(config: dict) -> None:
    from twistox.relax.stage import check_settings

    _run("relax", check_settings, config["relax"])


def check_strain(config: dict, L: float, sample: str, moire_period: float, a: float) -> None:
    """strain.fourier_order (moiré harmonics) resolvable on the grid of this sample's supercell (side L,
    moiré period, lattice constant a; Å); strain.bo_cutoff holds the four equatorial X of a cage."""
    from twistox.strain.stage import check_settings

    try:
        check_settings(config["strain"], L, moire_period, a)
    except ValueError as exc:
        err = _as_config_error(exc, "strain.grid_spacing")
        raise ConfigError(f"{err} (sample {sample})") from None


def check_phasefield(config: dict) -> None:
    from twistox.phasefield.stage import check_config

    _run("phasefield", check_config, config["phasefield"])


def check_stem(config: dict) -> None:
    from twistox.stem.checks import check_config

    _run("stem", check_config, config["stem"])


def check_image_inference(config: dict) -> None:
    if config.get("image_inference"):
        from twistox.imaging.inference.stage import check_config

        _run("image_inference", check_config, config["image_inference"])


def check_electronic(config: dict) -> None:
    if config.get("electronic"):
        from twistox.electronic.stage import check_settings

        _run("electronic", check_settings, config["electronic"])


def check_experiment(config: dict, samples: dict[str, list[str]], probe: bool = True) -> None:
    """analysis.experiment: system/sample of this run, file present, format known, and (probe)
    the file's header: rank, shape and calibration read without loading the data."""
    from twistox.analysis.experiment import check_experiment_config

    entries = config.get("analysis", {}).get("experiment", [])
    _run("analysis.experiment", check_experiment_config, entries, samples)
    if not probe:
        return
    from twistox.analysis.readers import probe_entry
    from twistox.imaging.io import read_haadf

    for i, e in enumerate(entries):
        key = f"analysis.experiment[{i}]"
        if e.get("kind") == "haadf":  # an image for the image_inference stage: read it whole (small), check calibration
            _run(f"{key}.path", read_haadf, e["path"], e.get("pixel_size"), key=e.get("key"), config_key=key)
        else:
            _run(f"{key}.path", probe_entry, e, key=key)


#: (name, what it checks) of every check `check_all` runs, for the docs and the report.
CHECKS = (
    ("schema", "types, ranges, enums, unknown keys of every section (workflow/schemas/*.schema.yaml)"),
    ("samples", "every twist angle has a CSL within twist.max_error_deg and twist.max_sigma"),
    ("systems", "species are chemical elements; interface / outer planes exist for the material"),
    ("dft", "calculator known; installed with its data unless jobs run in conda envs"),
    ("relax", "MD discard < total time, at least one time step"),
    ("strain", "per sample: grid on the supercell resolves strain.fourier_order (moiré harmonics); bo_cutoff vs a"),
    ("phasefield", "nz even, initial amplitude, material stable (elastic, flexo, eps_b)"),
    ("stem", "detector ranges vs outer angle, potential sampling reaches every detector angle"),
    ("image_inference", "regressor patch size odd, stride within half a patch"),
    ("experiment", "system / sample of this run, file exists, format known, header rank / shape / calibration"),
)


def check_all(config: dict, software: bool = True, probe_files: bool = True) -> dict:
    """Validate ``config`` in place (defaults filled) and run every stage's semantic checks for
    every system and sample; return the config. Raises ConfigError (key + allowed values)."""
    check_systems(config)  # before the schema: plane names are built from the species
    validate_config(config)
    samples = resolve_samples(config)
    check_dft(config, software=software)
    check_relax(config)
    for system, csls in samples.items():
        a = float(config["systems"][system]["a"])
        for name, csl in csls.items():
            check_strain(config, csl.supercell_length(a), f"{system}/{name}", csl.moire_period(a), a)
    check_phasefield(config)
    check_stem(config)
    check_image_inference(config)
    check_electronic(config)
    check_experiment(config, {s: list(v) for s, v in samples.items()}, probe=probe_files)
    return config


def load_config(configfiles: list[str | Path] | None = None, overrides: list[str] | None = None,
                default: str | Path | None = None) -> dict:
    """The config a Snakemake run would see: ``configfiles`` deep-merged in order (none given:
    ``default``, the toy config/config.yaml), then ``--config KEY=VALUE`` overrides parsed as
    Snakemake parses them. Not validated."""
    from snakemake.cli import parse_config
    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config

    files = [Path(f) for f in (configfiles or [])]
    if not files:
        files = [Path(default) if default else Path(__file__).resolve().parents[2] / "config" / "config.yaml"]
    config: dict = {}
    for f in files:
        if not f.exists():
            raise ConfigError(f"config file not found: {f}")
        update_config(config, load_configfile(str(f)))
    if overrides:
        update_config(config, parse_config(overrides))
    return config
