"""ASE-calculator factory for the DFT labels (``config["dft"]["calculator"]``).

- ``gpaw`` (default, open source, runs here): LDA + U (U on the d shell of the elements in
  ``hubbard_u``, the paper's 5.3 eV on Ti -> ``setups={'Ti': ':d,5.3'}``), PW or LCAO mode.
- ``vasp``, ``espresso``: the same physics for users who have those codes (ASE calculators).
- ``chgnet``: pretrained universal potential shipped inside its PyPI package; fast
  exploration only. Its labels are flagged ``is_dft = False`` in every frame and in provenance.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from ase import Atoms
from ase.calculators.calculator import Calculator, kptdensity2monkhorstpack
from scipy.constants import physical_constants

from twistox.core.config import ConfigError
from twistox.core.device import torch_device

RY_EV = physical_constants["Rydberg constant times hc in eV"][0]  # eV per Rydberg (CODATA, scipy.constants)

CALCULATORS: dict[str, dict] = {
    "gpaw": {"is_dft": True, "module": "gpaw",
             "install": "pip install gpaw gpaw-data (needs libxc-dev libfftw3-dev; see envs/install_gpaw.sh)"},
    "vasp": {"is_dft": True, "module": None,
             "install": "VASP is licensed software: install it, then set ASE_VASP_COMMAND (or VASP_COMMAND) "
                        "and VASP_PP_PATH (PAW potentials)"},
    "espresso": {"is_dft": True, "module": None,
                 "install": "apt-get install quantum-espresso (pw.x) or set ASE_ESPRESSO_COMMAND, and give "
                            "dft.espresso.pseudopotentials + dft.espresso.pseudo_dir with UPF files for every element"},
    "chgnet": {"is_dft": False, "module": "chgnet", "install": "pip install chgnet (weights ship in the package)"},
}


class CalculatorUnavailable(ConfigError):
    """The requested calculator is unknown or its code is not installed here."""


def check_calculator(name: str, settings: dict | None = None, key: str = "dft.calculator") -> None:
    """Raise CalculatorUnavailable (one message: key, allowed values, how to install) if ``name`` cannot run."""
    settings = settings or {}
    if name not in CALCULATORS:
        raise CalculatorUnavailable(f"config key '{key}': unknown calculator {name!r}; allowed: "
                                    + ", ".join(repr(c) for c in CALCULATORS))
    info = CALCULATORS[name]
    missing = None
    if info["module"] and importlib.util.find_spec(info["module"]) is None:
        missing = f"Python package '{info['module']}' is not installed"
    elif name == "gpaw" and importlib.util.find_spec("gpaw_data") is None and not os.environ.get("GPAW_SETUP_PATH"):
        missing = "GPAW's PAW setups are missing (no gpaw-data package, GPAW_SETUP_PATH unset)"
    elif name == "vasp":
        if not any(os.environ.get(v) for v in ("ASE_VASP_COMMAND", "VASP_COMMAND", "VASP_SCRIPT")):
            missing = "no VASP command (ASE_VASP_COMMAND / VASP_COMMAND / VASP_SCRIPT unset)"
        elif not os.environ.get("VASP_PP_PATH"):
            missing = "VASP_PP_PATH (PAW potentials) is unset"
    elif name == "espresso":
        qe = settings.get("espresso", {})
        cmd = qe.get("command") or os.environ.get("ASE_ESPRESSO_COMMAND") or "pw.x"
        pdir = qe.get("pseudo_dir") or os.environ.get("ESPRESSO_PSEUDO")
        if shutil.which(cmd.split()[0]) is None:
            missing = f"Quantum ESPRESSO command {cmd.split()[0]!r} not found"
        elif not qe.get("pseudopotentials") or not pdir:
            missing = "no pseudopotentials configured (dft.espresso.pseudopotentials, dft.espresso.pseudo_dir)"
        else:
            absent = [f for f in qe["pseudopotentials"].values() if not (Path(pdir) / f).exists()]
            if absent:
                missing = f"pseudopotential files not found in {pdir}: {absent}"
    if missing:
        raise CalculatorUnavailable(f"config key '{key}': calculator {name!r} cannot run here: {missing}. "
                                    f"To install: {info['install']}; or choose another of "
                                    + ", ".join(repr(c) for c in CALCULATORS))


def kpoints(atoms: Atoms, density: float) -> tuple[int, int, int]:
    """Monkhorst-Pack grid with >= ``density`` points per Å^-1 along periodic axes (1 along non-periodic)."""
    return tuple(int(k) for k in kptdensity2monkhorstpack(atoms, kptdensity=density, even=False))


def gpaw_setups(hubbard_u: dict[str, float]) -> dict[str, str]:
    """GPAW setups string for +U on the d shell: {'Ti': 5.3} -> {'Ti': ':d,5.3'}."""
    return {el: f":d,{float(u):g}" for el, u in hubbard_u.items() if float(u) != 0.0}


def dft_settings(settings: dict | None) -> dict:
    """config['dft'] with the schema's defaults filled in (the schema is the one source of defaults);
    keys outside the schema (``device``) are kept as given."""
    from twistox.core.config import _schema, with_schema_defaults

    props = _schema("dft")["properties"]
    settings = dict(settings or {})
    extra = {k: v for k, v in settings.items() if k not in props}
    return {**with_schema_defaults("dft", {k: v for k, v in settings.items() if k in props}), **extra}


def make_calculator(name: str, settings: dict, atoms: Atoms | None, directory: str | os.PathLike | None = None,
                    txt: str | os.PathLike | None = None) -> Calculator:
    """ASE calculator for one frame (k-points depend on its cell). Settings = config['dft'].

    Raises CalculatorUnavailable for unknown names and codes that are not installed.
    """
    settings = dft_settings(settings)
    check_calculator(name, settings)
    kd = float(settings["kpt_density"])
    if atoms is None and CALCULATORS[name]["is_dft"]:
        raise ValueError(f"{name}: the frame (atoms) is needed to choose k-points")
    kpts = kpoints(atoms, kd) if atoms is not None else (1, 1, 1)
    u = settings["hubbard_u"]
    xc = settings["xc"]
    if name == "gpaw":
        from gpaw import GPAW, PW, FermiDirac

        from twistox.dft.dipole import gpaw_dipole_kwargs

        g = settings["gpaw"]
        scf = settings["scf"]
        mode = g["mode"]
        kw = dict(xc=xc, setups=gpaw_setups(u), kpts=kpts, txt=str(txt) if txt else None,
                  occupations=FermiDirac(float(settings["smearing_eV"])),
                  maxiter=int(scf["max_iterations"]),
                  convergence={"energy": float(scf["energy_tol"]), "density": float(scf["density_tol"]),
                               "eigenstates": float(scf["eigenstates_tol"])},
                  symmetry={})
        kw.update(gpaw_dipole_kwargs(atoms, g["dipole_correction"]))  # faces that differ: dipole layer along z
        if mode == "pw":
            return GPAW(mode=PW(float(settings["ecut_eV"])), **kw)
        return GPAW(mode="lcao", basis=g["basis"], h=float(g["h"]), **kw)
    if name == "vasp":
        from ase.calculators.vasp import Vasp

        ldau = {el: {"L": 2, "U": float(v), "J": 0.0} for el, v in u.items()}
        for el in set(atoms.get_chemical_symbols()) - set(ldau):
            ldau[el] = {"L": -1, "U": 0.0, "J": 0.0}
        scf = settings["scf"]
        return Vasp(directory=str(directory or "."), xc=xc, encut=float(settings["ecut_eV"]),
                    kpts=kpts, ismear=0, sigma=float(settings["smearing_eV"]),
                    # EDIFF is a total energy (eV): scale the per-electron-ish GPAW tolerance by atoms
                    ediff=float(scf["energy_tol"]) * len(atoms), nelm=int(scf["max_iterations"]),
                    ldau=bool(u), ldautype=2, ldau_luj=ldau, lmaxmix=4, isif=2, ibrion=-1, nsw=0, lwave=False,
                    lcharg=False, **settings["vasp"]["extra"])
    if name == "espresso":
        from ase.calculators.espresso import Espresso, EspressoProfile

        qe = settings["espresso"]
        order = list(dict.fromkeys(atoms.get_chemical_symbols()))  # QE species index = first appearance
        system = {"ecutwfc": float(settings["ecut_eV"]) / RY_EV, "occupations": "smearing",
                  "degauss": float(settings["smearing_eV"]) / RY_EV, "input_dft": xc.lower()}
        if u:
            system["lda_plus_u"] = True
            for el, val in u.items():
                if el in order:
                    # pw.x reads Hubbard_U in eV (INPUT_PW, &SYSTEM: "U parameter (eV) for species i"),
                    # unlike ecutwfc/degauss (Ry)
                    system[f"Hubbard_U({order.index(el) + 1})"] = float(val)
        cmd = qe.get("command") or os.environ.get("ASE_ESPRESSO_COMMAND") or "pw.x"
        profile = EspressoProfile(command=cmd, pseudo_dir=qe["pseudo_dir"])
        return Espresso(profile=profile, directory=str(directory or "."), kpts=kpts,
                        pseudopotentials=qe["pseudopotentials"], tstress=True, tprnfor=True,
                        input_data={"system": system,
                                    "electrons": {"electron_maxstep": int(settings["scf"]["max_iterations"])}})
    if name == "chgnet":
        from chgnet.model.dynamics import CHGNetCalculator

        from ase import units

        # stress_weight: CHGNet's stress in GPa -> eV/Å^3 (ase.units.GPa)
        return CHGNetCalculator(use_device=torch_device(settings.get("device", "auto")), stress_weight=units.GPa)
    raise AssertionError(name)  # check_calculator rejected it already


def calculator_record(name: str, settings: dict) -> dict:
    """The settings that define the labels (stored in every frame and in the cache key)."""
    keep = ("xc", "hubbard_u", "ecut_eV", "kpt_density", "smearing_eV", "scf", name)
    rec = {"calculator": name, "is_dft": CALCULATORS.get(name, {}).get("is_dft", False)}
    rec.update({k: settings[k] for k in keep if k in settings})
    return rec

