"""Discrete free energy of the twisted bilayer slab (torch; autograd gives all forces).

H(P, u, phi, eps_bar) = sum over cells/faces of the densities in ``materials`` times the
volume, minus the vacuum field energy 1/2 eps0 sum_k |k| |phi_s(k)|^2 of both surfaces.
F(P) = min_u max_phi H is the free energy the TDGL dynamics decreases. Units: SI (J).
"""

from __future__ import annotations

import torch

from .dmi import ChiralLifshitz
from .materials import EPS0, Material
from .spectral import Grid, Spectral

TERMS = ("landau", "gradient", "elastic", "flexo", "electric", "dmi")


class SlabEnergy:
    """Energy terms on a Grid for two layers with their own rotated cubic tensors.

    eigenstrain: (3, 3, nz, n, n) symmetric, cell centres (dimensionless).
    layer_angles_deg: rotation of layer 0 / 1 crystal axes about z.
    """

    def __init__(self, grid: Grid, materials: tuple[Material, Material], layer_angles_deg: tuple[float, float],
                 eigenstrain: torch.Tensor | None = None, device: str = "cpu"):
        self.grid, self.device = grid, device
        self.sp = Spectral(grid, device)
        self.materials = materials
        layer = grid.layer_of_cell()
        dd = dict(dtype=torch.float64, device=device)
        per = [m.tensors(a) for m, a in zip(materials, layer_angles_deg)]
        stack = lambda name: torch.stack([torch.as_tensor(per[int(k)][name], **dd) for k in layer])  # noqa: E731
        self.C, self.Q, self.F = stack("C"), stack("Q"), stack("F")  # (nz, 3, 3, 3, 3)
        self.Ff = 0.5 * (self.F[1:] + self.F[:-1])  # at internal faces
        ang = torch.tensor([layer_angles_deg[int(k)] for k in layer], **dd) * torch.pi / 180.0
        self.cos, self.sin = torch.cos(ang)[:, None, None], torch.sin(ang)[:, None, None]
        pick = lambda attr: torch.tensor([getattr(materials[int(k)], attr) for k in layer], **dd)[:, None, None]  # noqa: E731
        self.a1, self.a11, self.a12 = pick("alpha1"), pick("alpha11"), pick("alpha12")
        self.G = float(materials[0].G)
        self.eps_b = float(materials[0].eps_b)
        # chiral Lifshitz invariant of the twisted interface (0 unless material.dmi != 0 and theta != 0)
        self.dmi = ChiralLifshitz.from_material(grid, self.sp, materials[0], layer_angles_deg, device)
        for m in materials[1:]:
            if m.G != self.G or m.eps_b != self.eps_b:
                raise ValueError("phasefield: both layers must share G and eps_b (isotropic, z-uniform operators)")
            if (m.dmi, m.dmi_decay_A) != (materials[0].dmi, materials[0].dmi_decay_A):
                raise ValueError("phasefield: dmi and dmi_decay_A belong to the interface; both layers must share them")
        n = grid.n
        self.eig = (torch.zeros((3, 3, grid.nz, n, n), **dd) if eigenstrain is None
                    else torch.as_tensor(eigenstrain, **dd))

    # --- fields -----------------------------------------------------------------------
    def strain(self, u: torch.Tensor, eps_bar: torch.Tensor) -> torch.Tensor:
        """Total strain (3, 3, nz, n, n) at cell centres from nodal u (3, nz+1, n, n) plus the mean in-plane strain."""
        ub = 0.5 * (u[:, 1:] + u[:, :-1])
        dx, dy = self.sp.grad_xy(ub)
        dz = (u[:, 1:] - u[:, :-1]) / self.grid.dz
        g = torch.stack([dx, dy, dz], dim=1)  # g[i, j] = d_j u_i
        eps = 0.5 * (g + g.transpose(0, 1))
        mean = torch.zeros((3, 3), dtype=eps.dtype, device=eps.device)
        mean = mean + torch.diag(torch.cat([eps_bar[:2], eps_bar.new_zeros(1)]))
        off = torch.zeros_like(mean)
        off[0, 1] = off[1, 0] = 1.0
        mean = mean + off * eps_bar[2]
        return eps + mean[:, :, None, None, None]

    def grad_phi(self, phi: torch.Tensor) -> torch.Tensor:
        """grad phi (3, nz, n, n) at cell centres from nodal phi (nz+1, n, n)."""
        pb = 0.5 * (phi[1:] + phi[:-1])
        dx, dy = self.sp.grad_xy(pb)
        return torch.stack([dx, dy, (phi[1:] - phi[:-1]) / self.grid.dz])

    # --- energy -----------------------------------------------------------------------
    def terms(self, P: torch.Tensor, u: torch.Tensor, phi: torch.Tensor, eps_bar: torch.Tensor,
              eig: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Energy terms (J) of the state; P (3, nz, n, n) C/m^2, u (3, nz+1, n, n) m, phi (nz+1, n, n) V."""
        gr, dV = self.grid, self.grid.dV
        eig = self.eig if eig is None else eig
        # Landau in each layer's crystal frame (cubic anisotropy rotates with the layer)
        px = self.cos * P[0] + self.sin * P[1]
        py = -self.sin * P[0] + self.cos * P[1]
        x2, y2, z2 = px * px, py * py, P[2] * P[2]
        landau = (self.a1 * (x2 + y2 + z2) + self.a11 * (x2 * x2 + y2 * y2 + z2 * z2)
                  + self.a12 * (x2 * y2 + y2 * z2 + z2 * x2)).sum() * dV
        # gradient energy: spectral in-plane at cells, differences across internal faces
        dPx, dPy = self.sp.grad_xy(P)
        dPz = (P[:, 1:] - P[:, :-1]) / gr.dz
        gradient = 0.5 * self.G * ((dPx ** 2 + dPy ** 2).sum() + (dPz ** 2).sum()) * dV
        # elasticity with electrostriction and eigenstrain
        eps = self.strain(u, eps_bar)
        e0 = eig + torch.einsum("zijkl,kzyx,lzyx->ijzyx", self.Q, P, P)
        de = eps - e0
        elastic = 0.5 * (torch.einsum("zijkl,klzyx->ijzyx", self.C, de) * de).sum() * dV
        # flexocoupling, Lifshitz form 1/2 F_ijkl (P_k d_l e_ij - e_ij d_l P_k)
        ex, ey = self.sp.grad_xy(eps)
        Fx, Fy = self.F[..., 0], self.F[..., 1]
        flexo = 0.5 * (torch.einsum("zijk,kzyx,ijzyx->", Fx, P, ex) + torch.einsum("zijk,kzyx,ijzyx->", Fy, P, ey)
                       - torch.einsum("zijk,ijzyx,kzyx->", Fx, eps, dPx)
                       - torch.einsum("zijk,ijzyx,kzyx->", Fy, eps, dPy))
        # along z the Lifshitz form is integrated by parts once, dropping its free-surface term
        # 1/2 F_ijkz P_k e_ij |_surfaces: without strain-gradient elasticity that term lets a thin
        # shear boundary layer gain unbounded energy (ill-posed, grid-dependent). Bulk equations unchanged.
        ef = 0.5 * (eps[:, :, 1:] + eps[:, :, :-1])
        flexo = (flexo - torch.einsum("zijk,ijzyx,kzyx->", self.Ff[..., 2], ef, dPz)) * dV
        # electric enthalpy in the slab and the field energy of the vacuum on both sides
        gp = self.grad_phi(phi)
        electric = ((-0.5 * EPS0 * self.eps_b * (gp * gp).sum(0) + (P * gp).sum(0)).sum() * dV
                    - 0.5 * EPS0 * gr.dA * ((phi[0] * self.sp.dtn(phi[0])).sum()
                                            + (phi[-1] * self.sp.dtn(phi[-1])).sum()))
        return {"landau": landau, "gradient": gradient, "elastic": elastic, "flexo": flexo, "electric": electric,
                "dmi": self.dmi.energy(P, dPx, dPy)}

    def total(self, *args, **kw) -> torch.Tensor:
        return sum(self.terms(*args, **kw).values())

    # --- pieces used to assemble the linear operators ------------------------------------
    def elastic_only(self, u: torch.Tensor, eps_bar: torch.Tensor) -> torch.Tensor:
        eps = self.strain(u, eps_bar)
        return 0.5 * (torch.einsum("zijkl,klzyx->ijzyx", self.C, eps) * eps).sum() * self.grid.dV

    def electric_only(self, phi: torch.Tensor) -> torch.Tensor:
        gp = self.grad_phi(phi)
        return ((-0.5 * EPS0 * self.eps_b * (gp * gp).sum(0)).sum() * self.grid.dV
                - 0.5 * EPS0 * self.grid.dA * ((phi[0] * self.sp.dtn(phi[0])).sum()
                                               + (phi[-1] * self.sp.dtn(phi[-1])).sum()))

    def electric_field(self, phi: torch.Tensor) -> torch.Tensor:
        """E = -grad phi (3, nz, n, n), V/m."""
        return -self.grad_phi(phi)

    def projected_field(self, phi: torch.Tensor) -> torch.Tensor:
        """Integral of E_x, E_y along z (V) through the slab and the vacuum above and below it."""
        E = self.electric_field(phi)
        inside = E[:2].sum(1) * self.grid.dz
        sp = self.sp
        kk = torch.where(sp.kmag > 0, sp.kmag, torch.ones_like(sp.kmag))
        out = []
        for comp, k in ((0, sp.kx), (1, sp.ky)):
            vac = 0.0
            for s in (phi[0], phi[-1]):  # phi_s(k) exp(-|k| z): integral of -d/dx phi = -i k phi_s / |k|
                vac = vac + sp.irfft(torch.where(sp.kmag > 0, -1j * k / kk, 0.0) * sp.rfft(s))
            out.append(inside[comp] + vac)
        return torch.stack(out)
