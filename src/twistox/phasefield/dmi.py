"""Chiral Lifshitz invariant of the twisted interface: the electric Dzyaloshinskii–Moriya interaction.

Symmetry (derivation in docs/stages/phasefield.md, "Chiral gradient coupling"): bulk SrTiO3 (O_h) has no
Lifshitz invariant of a polar P; the untwisted SrO/TiO2 interface (C4v) allows only the Néel-type
P_z div P - P.grad P_z; a twist theta != 0 removes the vertical mirrors (C4) and adds the two chiral invariants

    f_DMI = s_theta w(z) [ D_par (P_x d_y P_z - P_y d_x P_z + P_z (d_x P_y - d_y P_x))     (in-plane gradients)
                           + D_perp (P_y d_z P_x - P_x d_z P_y) ]                          (gradient along z)

which for D_par = D_perp = D is D P.(curl P). s_theta = sign(theta_top - theta_bottom) (a mirror maps theta to
-theta and f_DMI to -f_DMI, so the favoured handedness follows the twist), w(z) = exp(-|z - z_int| / decay)
confines the coupling to the interface (each layer alone is centrosymmetric). D in J m^2/C^2 (= V m^2/C);
D/G is the wavevector of the helix it favours.

Discretisation (that of energy.py): in-plane derivatives spectral at cell centres (weight w at the cell
centre); the z part on the internal faces with face-averaged P and the face difference, which is exactly
the lattice DMI  -(P_m x P_{m+1})_z / dz  between neighbouring cells (weight w at the face). No surface term.
"""

from __future__ import annotations

import math

import torch

from .spectral import Grid, Spectral


def twist_sense(layer_angles_deg) -> int:
    """sign(theta) with theta = angle(top layer) - angle(bottom layer), CCW positive about +z; 0 if untwisted."""
    theta = float(layer_angles_deg[1]) - float(layer_angles_deg[0])
    return 0 if abs(theta) < 1e-12 else (1 if theta > 0 else -1)


def interface_weights(grid: Grid, decay_m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """w(z) = exp(-|z - z_int| / decay) at the nz cell centres and the nz - 1 internal faces (dimensionless)."""
    if not decay_m > 0:
        raise ValueError(f"DMI decay length must be > 0 (got {decay_m} m)")
    zc = grid.z_centres()
    zf = torch.arange(1, grid.nz, dtype=torch.float64) * grid.dz
    zi = grid.interface_z()
    return torch.exp(-(zc - zi).abs() / decay_m), torch.exp(-(zf - zi).abs() / decay_m)


class ChiralLifshitz:
    """The term on a Grid. d_par, d_perp: J m^2/C^2 (before the twist sign); decay_m: m.

    Energies in J for P (3, nz, n, n) in C/m^2; ``derivative`` is dF/dP per volume (V/m), the exact
    gradient of the discrete energy (the force the TDGL step uses comes from autograd of the same energy).
    """

    def __init__(self, grid: Grid, sp: Spectral, d_par: float, d_perp: float, layer_angles_deg,
                 decay_m: float, device: str = "cpu"):
        self.grid, self.sp = grid, sp
        self.sense = twist_sense(layer_angles_deg)
        wc, wf = interface_weights(grid, decay_m)
        self.d_par, self.d_perp = float(d_par), float(d_perp)
        self.cell = (self.sense * self.d_par * wc).to(device)[:, None, None]    # (nz, 1, 1)
        self.face = (self.sense * self.d_perp * wf).to(device)[:, None, None]   # (nz-1, 1, 1)
        self.active = self.sense != 0 and (self.d_par != 0 or self.d_perp != 0)

    @classmethod
    def from_material(cls, grid: Grid, sp: Spectral, material, layer_angles_deg, device: str = "cpu"):
        """Isotropic chiral form D P.(curl P): D_par = D_perp = material.dmi, decay = material.dmi_decay_A (Å)."""
        d = float(getattr(material, "dmi", 0.0))
        decay_A = float(getattr(material, "dmi_decay_A", 3.905))
        return cls(grid, sp, d, d, layer_angles_deg, decay_A * 1e-10, device)

    def densities(self, P: torch.Tensor, dPx: torch.Tensor | None = None, dPy: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unweighted invariants: in-plane part at cells (nz, n, n) and z part at faces (nz-1, n, n), C^2/m^5."""
        if dPx is None or dPy is None:
            dPx, dPy = self.sp.grad_xy(P)
        inplane = P[0] * dPy[2] - P[1] * dPx[2] + P[2] * (dPx[1] - dPy[0])
        # face average times face difference of P_y d_z P_x - P_x d_z P_y reduces to -(P_m x P_{m+1})_z / dz
        along_z = (P[1, :-1] * P[0, 1:] - P[0, :-1] * P[1, 1:]) / self.grid.dz
        return inplane, along_z

    def energy(self, P: torch.Tensor, dPx: torch.Tensor | None = None, dPy: torch.Tensor | None = None
               ) -> torch.Tensor:
        """F_DMI (J)."""
        if not self.active:
            return P.new_zeros(())
        inplane, along_z = self.densities(P, dPx, dPy)
        return ((self.cell * inplane).sum() + (self.face * along_z).sum()) * self.grid.dV

    def derivative(self, P: torch.Tensor) -> torch.Tensor:
        """dF_DMI/dP / dV (3, nz, n, n), V/m: 2 D w curl_xy P + the discrete -(d_z(wD P_y) + wD d_z P_y), ..."""
        out = torch.zeros_like(P)
        if not self.active:
            return out
        dPx, dPy = self.sp.grad_xy(P)
        # spectral d_x, d_y are skew-adjoint, so each in-plane pair contributes twice: 2 D w (d_y P_z, -d_x P_z, curl_z)
        c = self.cell
        out[0] = 2 * c * dPy[2]
        out[1] = -2 * c * dPx[2]
        out[2] = 2 * c * (dPx[1] - dPy[0])
        f, dz = self.face, self.grid.dz
        # face m couples cells m and m+1: E_f = f_m (P_y,m P_x,m+1 - P_x,m P_y,m+1) / dz
        out[0, :-1] -= f * P[1, 1:] / dz
        out[0, 1:] += f * P[1, :-1] / dz
        out[1, :-1] += f * P[0, 1:] / dz
        out[1, 1:] -= f * P[0, :-1] / dz
        return out


def helix_angle_per_face(d_eff: float, G: float, dz: float) -> float:
    """Rotation (rad, CCW about +z) across one face of a laterally uniform in-plane P with isotropic Landau energy:
    per face and area |P_m||P_m+1| [-(G/dz) cos dpsi - D sin dpsi] + const, so dpsi = atan2(D dz, G), exact on
    the discrete model for any |P_m| (d_eff = sign(theta) D w at the face, J m^2/C^2; G J m^3/C^2; dz m)."""
    return math.atan2(d_eff * dz, G)


def critical_dmi(alpha1: float, G: float) -> float:
    """Bulk threshold sqrt(2 alpha1 G) (J m^2/C^2) above which a uniform D P.curl P makes the paraelectric
    unstable to a transverse (div-free, undepolarised) helix of wavevector D/G: alpha1 + G k^2/2 - D k < 0."""
    return math.sqrt(2.0 * alpha1 * G) if alpha1 > 0 else 0.0
