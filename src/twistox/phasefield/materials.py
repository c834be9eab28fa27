"""Material constants of the phase-field model (SI units) and their rotation about z.

Free-energy density (J/m^3), P in C/m^2, strain dimensionless, crystal frame of a layer:

    f_L  = a1 (P1^2+P2^2+P3^2) + a11 (P1^4+P2^4+P3^4) + a12 (P1^2 P2^2 + P2^2 P3^2 + P3^2 P1^2)
    f_G  = G/2 sum_ij (d_j P_i)^2                                  (isotropic gradient energy)
    f_el = 1/2 C_ijkl (e_ij - e0_ij)(e_kl - e0_kl),   e0_ij = e*_ij + Q_ijkl P_k P_l
    f_fx = 1/2 F_ijkl (P_k d_l e_ij - e_ij d_l P_k)                (Lifshitz-invariant flexocoupling;
           the z part is used as -F_ijkz e_ij d_z P_k, i.e. without the free-surface term, see energy.py)
    f_es = -1/2 eps0 eps_b |grad phi|^2 + P . grad phi             (electric enthalpy, phi maximises it)

Cubic 4th-rank tensors are built from (T11, T12, T44) with T_1212 = T44 for C (Pa) and F (V);
Q is given in Voigt form (Q44 multiplies the engineering shear), so Q_1212 = Q44/4.

Flexocoupling sign convention: f_ijkl (V) enters the energy as above, so in a uniform paraelectric
the linear response is P_k = -(f_ijkl / (2 alpha1)) d_l e_ij (tensor strain, no depolarising field);
e.g. a shear wave e_12 = e0 sin(qx) gives P_2 = -f44 e0 q cos(qx) / alpha1 (f44 > 0: P_y against
d_x e_xy). Reversing every f reverses P (tested). Presets (``material.flexo_source``): FLEXO_PRESETS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

EPS0 = 8.8541878128e-12  # F/m


def cubic_tensor(t11: float, t12: float, t44: float) -> np.ndarray:
    """Cubic 4th-rank tensor T_ijkl (crystal axes) with T_1111=t11, T_1122=t12, T_1212=t44."""
    d = np.eye(3)
    t = (t12 * np.einsum("ij,kl->ijkl", d, d)
         + t44 * (np.einsum("ik,jl->ijkl", d, d) + np.einsum("il,jk->ijkl", d, d)))
    for i in range(3):
        t[i, i, i, i] = t11
    return t


def rotation_z(angle_deg: float) -> np.ndarray:
    """3x3 rotation by angle_deg about z (crystal frame -> global frame)."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotate_tensor4(t: np.ndarray, angle_deg: float) -> np.ndarray:
    """T'_ijkl = R_ia R_jb R_kc R_ld T_abcd for a rotation about z."""
    r = rotation_z(angle_deg)
    return np.einsum("ia,jb,kc,ld,abcd->ijkl", r, r, r, r, t, optimize=True)


def alpha1_pertsev(temperature_K: float, a0: float = 4.05e7, theta_s: float = 54.0, t0: float = 30.0) -> float:
    """Barrett-type a1(T) of SrTiO3 (J m/C^2): a0 [coth(theta_s/T) - coth(theta_s/T0)].

    Pertsev, Tagantsev & Setter, PRB 61, R825 (2000); a1(300 K) = 1.85e8 J m/C^2, i.e. a
    relative permittivity 1/(2 eps0 a1) = 306, as measured for SrTiO3 at room temperature.
    """
    if temperature_K <= 0:
        raise ValueError("temperature must be > 0 K")
    coth = lambda x: 1.0 / math.tanh(x)  # noqa: E731
    return a0 * (coth(theta_s / temperature_K) - coth(theta_s / t0))


@dataclass(frozen=True)
class Material:
    """Phase-field constants of one (cubic) layer, SI units, crystal frame."""

    alpha1: float          # J m / C^2
    alpha11: float         # J m^5 / C^4
    alpha12: float         # J m^5 / C^4
    G: float               # J m^3 / C^2, isotropic gradient coefficient
    c11: float             # Pa
    c12: float
    c44: float
    Q11: float             # m^4 / C^2 (Voigt)
    Q12: float
    Q44: float
    f11: float             # V, flexocoupling (tensor convention, F_1212 = f44)
    f12: float
    f44: float
    eps_b: float           # background relative permittivity
    dmi: float = 0.0       # J m^2/C^2, chiral Lifshitz (electric DMI) coefficient at the interface (dmi.py)
    dmi_decay_A: float = 3.905  # Å, e-folding length of the DMI coefficient away from the interface

    def with_(self, **kw) -> "Material":
        return replace(self, **kw)

    def tensors(self, angle_deg: float) -> dict[str, np.ndarray]:
        """C, Q, F (3,3,3,3) rotated by angle_deg about z into the global frame."""
        return {
            "C": rotate_tensor4(cubic_tensor(self.c11, self.c12, self.c44), angle_deg),
            "Q": rotate_tensor4(cubic_tensor(self.Q11, self.Q12, self.Q44 / 4.0), angle_deg),
            "F": rotate_tensor4(cubic_tensor(self.f11, self.f12, self.f44), angle_deg),
        }

    def check(self, key: str = "phasefield.material") -> None:
        """Stability conditions the model needs; ValueError names the offending key."""
        if self.G <= 0:
            raise ValueError(f"{key}.G must be > 0 (got {self.G})")
        if not (self.c11 - self.c12 > 0 and self.c11 + 2 * self.c12 > 0 and self.c44 > 0):
            raise ValueError(f"{key}: elastic constants not positive definite (need c11>|c12|, c11+2c12>0, c44>0)")
        if self.eps_b < 1:
            raise ValueError(f"{key}.eps_b must be >= 1 (got {self.eps_b})")
        fmax = max(abs(self.f11), abs(self.f12), abs(self.f44))
        # Yudin-Tagantsev bound: flexocoupling must not destabilise the gradient energy
        if fmax ** 2 / min(self.c44, self.c11 - self.c12) >= self.G:
            raise ValueError(f"{key}: flexocoupling too strong for G (need f^2/c < G); reduce f11/f12/f44 or raise G")


# Flexocoupling presets for SrTiO3 at room temperature, f11, f12, f44 in V (tensor convention above:
# f44 = F_1212). NONE OF THESE NUMBERS COULD BE CHECKED AGAINST THE PAPERS OFFLINE: "verified" stays
# False (logged as a warning, written to the artifact attrs) until someone compares them with the source.
FLEXO_PRESETS: dict[str, dict] = {
    # Zubko, Catalan, Buckley, Welche & Scott, PRL 99, 167601 (2007); erratum PRL 100, 199906 (2008):
    # bending of SrTiO3 crystals, effective coefficients of order 1-10 nC/m, positive at 300 K (sign
    # reversal below 105 K). Numbers: the flexoelectric-strain tensor F11, F12, F44 = 2.46, 0.48, 0.05
    # x 1e-11 m^3/C attributed to Zubko et al. in phase-field work on SrTiO3 (Morozovska, Eliseev et al.;
    # quoted from memory), converted with f = c F (Voigt: f11 = c11 F11 + 2 c12 F12,
    # f12 = c12 F11 + (c11 + c12) F12, f44 = c44 F44, c of Pertsev et al. 2000). UNVERIFIED.
    "zubko2007": {"F": (2.46e-11, 0.48e-11, 0.05e-11), "verified": False,
                  "citation": "Zubko et al., PRL 99, 167601 (2007) + erratum PRL 100, 199906 (2008); F tensor as "
                              "quoted by Morozovska/Eliseev et al. (unverified), f = c F"},
    # Hong & Vanderbilt, PRB 88, 174107 (2013) (and Stengel, PRB 88, 174106 (2013)): first-principles bulk
    # flexocoupling of cubic SrTiO3; the bulk longitudinal coefficient has the opposite (negative) sign to
    # the measured effective ones (surface terms can reverse it: Stengel, PRB 90, 201112 (2014)). The
    # tabulated magnitudes could not be recalled reliably, so no numbers are entered: selecting this preset
    # raises an error until f11, f12, f44 are copied from the paper's table into this entry.
    "hong_vanderbilt2013": {"f": None, "verified": False,
                            "citation": "Hong & Vanderbilt, PRB 88, 174107 (2013): values not entered"},
}


def flexo_coefficients(cfg: dict) -> tuple[tuple[float, float, float], dict]:
    """(f11, f12, f44) in V and provenance for config['phasefield']['material'] (``flexo_source``)."""
    src = cfg.get("flexo_source", "custom")
    if src == "custom":
        return (float(cfg["f11"]), float(cfg["f12"]), float(cfg["f44"])), {
            "flexo_source": "custom", "flexo_verified": False, "flexo_citation": "config phasefield.material.f11/f12/f44"}
    if src not in FLEXO_PRESETS:
        raise ValueError(f"phasefield.material.flexo_source: {src!r}; allowed: custom, {', '.join(FLEXO_PRESETS)}")
    pre = FLEXO_PRESETS[src]
    if "F" in pre:
        F11, F12, F44 = pre["F"]
        c11, c12, c44 = float(cfg["c11"]), float(cfg["c12"]), float(cfg["c44"])
        f = (c11 * F11 + 2 * c12 * F12, c12 * F11 + (c11 + c12) * F12, c44 * F44)
    elif pre.get("f") is not None:
        f = tuple(float(v) for v in pre["f"])
    else:
        raise ValueError(f"phasefield.material.flexo_source: {src!r} has no values entered ({pre['citation']}); "
                         "copy f11, f12, f44 from the paper into FLEXO_PRESETS or use flexo_source: custom")
    return f, {"flexo_source": src, "flexo_verified": bool(pre["verified"]), "flexo_citation": pre["citation"]}


def material_from_config(cfg: dict, temperature_K: float) -> Material:
    """Material from the validated config['phasefield']['material']; alpha1 'auto' = Pertsev a1(T);
    f11, f12, f44 from ``flexo_source`` (``custom``: the f11/f12/f44 keys)."""
    (f11, f12, f44), _ = flexo_coefficients(cfg)
    skip = {"sources", "flexo_source", "f11", "f12", "f44"}  # sources: documentation only
    m = {k: v for k, v in cfg.items() if k not in skip}
    a1 = m.pop("alpha1")
    if a1 == "auto":
        a1 = alpha1_pertsev(float(temperature_K))
    return Material(alpha1=float(a1), f11=f11, f12=f12, f44=f44, **{k: float(v) for k, v in m.items()})


def landau_minimum_inplane(mat: Material) -> tuple[np.ndarray, float]:
    """Uniform in-plane Landau minimum (stress-free) for alpha1 < 0: P (C/m^2) and f (J/m^3).

    Compares the [100] (P^2 = -a1/(2 a11)) and [110] (P^2 = -a1/(2 a11 + a12) per component)
    minima in the crystal frame and returns the lower one.
    """
    a1, a11, a12 = mat.alpha1, mat.alpha11, mat.alpha12
    if a1 >= 0:
        return np.zeros(3), 0.0
    p100 = math.sqrt(-a1 / (2 * a11))
    f100 = a1 * p100 ** 2 + a11 * p100 ** 4
    p110 = math.sqrt(-a1 / (2 * a11 + a12))
    f110 = 2 * a1 * p110 ** 2 + (2 * a11 + a12) * p110 ** 4
    if f110 < f100:
        return np.array([p110, p110, 0.0]), f110
    return np.array([p100, 0.0, 0.0]), f100
