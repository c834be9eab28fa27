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


def material_from_config(cfg: dict, temperature_K: float) -> Material:
    """Material from config['phasefield']['material']; alpha1 'auto' = Pertsev a1(T)."""
    m = {k: v for k, v in cfg.items() if k != "sources"}  # sources: documentation only
    a1 = m.pop("alpha1")
    if a1 == "auto":
        a1 = alpha1_pertsev(float(temperature_K))
    return Material(alpha1=float(a1), **{k: float(v) for k, v in m.items()})


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
