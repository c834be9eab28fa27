"""GPAW LCAO (+U on the d shell) of a relaxed structure and the raw electronic results (issue 18).

LDA(+U) in LCAO mode (dzp basis), Hubbard U on the Ti d shell (the paper: +4.3 eV in FHI-aims, light
basis, Methods of seed 000), Γ only or a Γ-centred Monkhorst-Pack grid with >= ``kpt_density`` points per
Å⁻¹ (a Γ-centred 2×2×2 grid of the 5-atom cube holds Γ, X, M and R, i.e. both band edges of SrTiO3).
Point-group symmetry is off (time reversal kept) so every k-point needed for a real-space map is there.

Raw results (all the stage needs, one npz checkpoint keyed by structure + settings, so a rerun does not
redo the SCF): eigenvalues ε[k, n] (eV), k weights (sum 1), Mulliken weights of every state on atom
groups [k, n, group] and on (element, l) channels [k, n, channel], the number of valence electrons, and
the in-plane LDOS map of the window states. Mulliken: w_nμ = Re(C*_nμ (C Sᵀ)_nμ), Σ_μ w_nμ = ⟨ψ_n|ψ_n⟩ = 1.
LDOS map: 2 Σ_k w_k Σ_{n: VBM − window <= ε_kn <= VBM} |ψ̃_kn(r)|² (pseudo wave functions) integrated over z
in [z_min, z_max] (Å): electrons per Å² on GPAW's coarse grid, points at i·h_x, j·h_y (Å), [x, y] order
there, returned [y, x].
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from twistox.core.checkpoint import Checkpoint
from twistox.core.hashing import settings_hash
from twistox.electronic.estimate import BOHR

L_NAMES = "spdf"
SCF_KEYS = ("basis", "h", "xc", "hubbard_u", "kpt_density", "smearing_eV", "scf_density_tol", "dipole_correction",
            "ldos_window_eV")
SYMMETRY: dict | str = {"point_group": False, "time_reversal": True}


@dataclass
class RawResult:
    eigenvalues: np.ndarray         # [k, n] eV
    k_weights: np.ndarray           # [k], sum 1
    group_weights: np.ndarray       # [k, n, group]
    channel_weights: np.ndarray     # [k, n, channel]
    channels: list[str]             # "Ti-d", "O-p", ...
    n_electrons: float
    ldos_map: np.ndarray            # [y, x] electrons/Å², GPAW grid
    ldos_x: np.ndarray              # Å
    ldos_y: np.ndarray              # Å
    vbm: float
    cbm: float
    fermi_level: float
    scf_iterations: int
    wall_s: float
    max_rss_mb: float
    from_checkpoint: bool = False


def kpoint_grid(atoms, density: float) -> tuple[int, int, int]:
    """Γ-centred grid with >= ``density`` points per Å⁻¹ along periodic axes (ASE's kptdensity: n_i =
    ceil(2π |b_i| density), |b_i| = 1/a_i for a cube); (1, 1, 1) for density 0 (Γ only)."""
    if density <= 0:
        return (1, 1, 1)
    rec = 2 * np.pi * np.linalg.norm(atoms.cell.reciprocal(), axis=1)    # 1/Å
    return tuple(int(max(1, np.ceil(density * r - 1e-9))) if p else 1 for r, p in zip(rec, atoms.pbc))


def make_calculator(atoms, s: dict, kpts: tuple[int, int, int], txt: str | None):
    """Legacy-GPAW LCAO calculator (the legacy code exposes C_nM and S_qMM for the Mulliken analysis)."""
    from gpaw import GPAW

    from twistox.dft.calculators import gpaw_setups

    kw = {}
    if s["dipole_correction"] and not atoms.pbc[2]:
        kw["poissonsolver"] = {"dipolelayer": "xy"}
    kw.update(mode="lcao", basis=s["basis"], h=float(s["h"]), xc=s["xc"],
              setups=gpaw_setups(s["hubbard_u"]), kpts={"size": kpts, "gamma": True},
              symmetry=SYMMETRY if s["kpt_density"] > 0 else "off",
              occupations={"name": "fermi-dirac", "width": float(s["smearing_eV"])},
              convergence={"density": float(s["scf_density_tol"])}, maxiter=int(s["max_scf_iterations"]), txt=txt)
    return _legacy_gpaw(GPAW, kw)


def _legacy_gpaw(GPAW, kw: dict):
    """GPAW >= 25 returns the new code unless asked for the legacy one; older GPAW has no such keyword."""
    try:
        return GPAW(legacy_gpaw=True, **kw)
    except TypeError:
        return GPAW(**kw)


def orbital_labels(wfs) -> tuple[np.ndarray, np.ndarray]:
    """Atom index and angular momentum l of every LCAO orbital M."""
    atom, ell = [], []
    for a, setup in enumerate(wfs.setups):
        for phit in setup.basis_functions_J:
            l = phit.get_angular_momentum_number()
            atom += [a] * (2 * l + 1)
            ell += [l] * (2 * l + 1)
    return np.array(atom), np.array(ell)


def _full_overlap(S: np.ndarray) -> np.ndarray:
    """GPAW may fill only the lower triangle of S_MM: make it the full Hermitian matrix."""
    if np.allclose(np.triu(S, 1), 0.0):
        S = np.tril(S) + np.tril(S, -1).conj().T
    return S


def mulliken(calc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mulliken weights [k, n, M] of every state on every orbital, with the orbitals' atom and l."""
    wfs = calc.wfs
    atom, ell = orbital_labels(wfs)
    out = []
    for kpt in wfs.kpt_u:
        C = kpt.C_nM
        S = _full_overlap(wfs.S_qMM[kpt.q])
        out.append(np.real(C.conj() * (C @ S.T)))
    return np.array(out), atom, ell


def window_ldos(calc, vbm: float, window: float, z_range: tuple[float, float] | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In-plane map [y, x] (electrons/Å²) of the states in [vbm − window, vbm] (eV), integrated over z."""
    gd = calc.wfs.gd
    r = gd.get_grid_point_coordinates() * BOHR                         # (3, nx, ny, nz) Å
    x, y, z = r[0, :, 0, 0], r[1, 0, :, 0], r[2, 0, 0, :]
    dz = float(np.linalg.norm(gd.h_cv[2])) * BOHR
    zsel = np.ones(len(z), bool) if z_range is None else (z >= z_range[0]) & (z <= z_range[1])
    w_k = calc.get_k_point_weights()
    acc = np.zeros((len(x), len(y)))
    for k in range(len(w_k)):
        eps = calc.get_eigenvalues(kpt=k)
        for n in np.flatnonzero((eps >= vbm - window - 1e-9) & (eps <= vbm + 1e-6)):
            psi = calc.get_pseudo_wave_function(band=int(n), kpt=k, periodic=False)   # Å^-3/2
            acc += 2.0 * w_k[k] * (np.abs(psi[:, :, zsel]) ** 2).sum(axis=2) * dz
    return acc.T, x, y


def _max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_lcao(atoms, s: dict, groups: np.ndarray, n_groups: int, z_range: tuple[float, float] | None,
             checkpoint_dir: str | os.PathLike | None = None, txt: str | None = None,
             log: logging.Logger | None = None) -> RawResult:
    """SCF + analysis of ``atoms`` (ASE, orthorhombic cell) with settings ``s`` (electronic section);
    ``groups``: group code per atom (0..n_groups−1). Resumed from the checkpoint when it matches."""
    log = log or logging.getLogger(__name__)
    if not np.allclose(atoms.cell.array - np.diag(np.diag(atoms.cell.array)), 0.0, atol=1e-8):
        raise ValueError("electronic: the cell must be orthorhombic (in-plane LDOS grid along x, y)")
    kpts = kpoint_grid(atoms, float(s["kpt_density"]))
    scf = {k: s[k] for k in SCF_KEYS}              # DOS broadening, regions' levels etc. do not need a new SCF
    key = settings_hash(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, groups, scf, kpts,
                        list(z_range) if z_range else None, decimals=5)
    ck = Checkpoint(checkpoint_dir, key=key)
    got = ck.load("lcao")
    if got is not None:
        log.info("electronic: SCF results taken from the checkpoint in %s", checkpoint_dir)
        return RawResult(**{k: ([str(c) for c in v] if k == "channels" else v) for k, v in got.items()
                            if k != "from_checkpoint"}, from_checkpoint=True)
    t0 = time.time()
    calc = make_calculator(atoms, s, kpts, txt)
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_potential_energy()
    nk = len(calc.get_k_point_weights())
    eps = np.array([calc.get_eigenvalues(kpt=k) for k in range(nk)])
    n_el = float(calc.get_number_of_electrons())
    n_occ = int(round(n_el / 2))
    vbm, cbm = float(eps[:, n_occ - 1].max()), float(eps[:, n_occ].min())
    W, atom, ell = mulliken(calc)
    gw = np.zeros(eps.shape + (n_groups,))
    for g in range(n_groups):                       # sum the orbitals of each group's atoms
        gw[..., g] = W[..., groups[atom] == g].sum(axis=-1)
    sym = np.array(atoms.get_chemical_symbols())[atom]
    channels = sorted({f"{e}-{L_NAMES[l]}" for e, l in zip(sym, ell)})
    lab = np.array([f"{e}-{L_NAMES[l]}" for e, l in zip(sym, ell)])
    cw = np.stack([W[..., lab == c].sum(axis=-1) for c in channels], axis=-1)
    ldos, x, y = window_ldos(calc, vbm, float(s["ldos_window_eV"]), z_range)
    res = RawResult(eigenvalues=eps, k_weights=np.asarray(calc.get_k_point_weights(), float), group_weights=gw,
                    channel_weights=cw, channels=channels, n_electrons=n_el, ldos_map=ldos, ldos_x=x, ldos_y=y,
                    vbm=vbm, cbm=cbm, fermi_level=float(calc.get_fermi_level()),
                    scf_iterations=int(calc.get_number_of_iterations()), wall_s=time.time() - t0,
                    max_rss_mb=_max_rss_mb())
    ck.save("lcao", **{k: v for k, v in res.__dict__.items() if k != "from_checkpoint"})
    log.info("electronic: SCF %d iterations, %.1f s, max RSS %.0f MB", res.scf_iterations, res.wall_s,
             res.max_rss_mb)
    return res


def pw_band_edges(atoms, s: dict, ecut: float, kpts: tuple[int, int, int]) -> dict:
    """Cross-check in plane waves (same xc, U, k-grid): VBM, CBM, gap (eV) and the O-p / Ti-d share of
    the band-edge states from the PAW projections (bound partial waves only)."""
    from gpaw import GPAW, PW

    from twistox.dft.calculators import gpaw_setups

    calc = _legacy_gpaw(GPAW, dict(mode=PW(ecut), xc=s["xc"], setups=gpaw_setups(s["hubbard_u"]),
                                   kpts={"size": kpts, "gamma": True}, symmetry=SYMMETRY, txt=None,
                                   occupations={"name": "fermi-dirac", "width": float(s["smearing_eV"])}))
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_potential_energy()
    nk = len(calc.get_k_point_weights())
    eps = np.array([calc.get_eigenvalues(kpt=k) for k in range(nk)])
    n_occ = int(round(calc.get_number_of_electrons() / 2))
    vbm, cbm = float(eps[:, n_occ - 1].max()), float(eps[:, n_occ].min())
    sym = atoms.get_chemical_symbols()

    def character(k: int, n: int) -> dict[str, float]:
        kpt = calc.wfs.kpt_u[k]
        tot: dict[str, float] = {}
        for a, setup in enumerate(calc.wfs.setups):
            P = kpt.P_ani[a][n]
            i = 0
            for l, nj in zip(setup.l_j, setup.n_j):
                if nj > 0:
                    c = f"{sym[a]}-{L_NAMES[l]}"
                    tot[c] = tot.get(c, 0.0) + float(np.sum(np.abs(P[i:i + 2 * l + 1]) ** 2))
                i += 2 * l + 1
        z = sum(tot.values())
        return {c: v / z for c, v in tot.items()}

    kv, kc = int(np.argmax(eps[:, n_occ - 1])), int(np.argmin(eps[:, n_occ]))
    return {"vbm": vbm, "cbm": cbm, "gap": cbm - vbm, "vbm_character": character(kv, n_occ - 1),
            "cbm_character": character(kc, n_occ)}
