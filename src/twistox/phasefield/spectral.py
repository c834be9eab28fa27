"""Grid of the slab: Fourier-spectral in x, y (periodic, side L), finite volumes in z.

P, strain and energies live at cell centres z_m = (m + 1/2) dz, m = 0..nz-1; the displacement u
and the potential phi at the nz + 1 cell faces (nodes) z_n = n dz, so the top and bottom
surfaces carry degrees of freedom and traction-free / open-circuit conditions are natural
boundary conditions of the discrete energy. Lengths in metres inside the solver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def fft_size(n_min: int) -> int:
    """Smallest n >= n_min whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    n = max(1, int(n_min))
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@dataclass(frozen=True)
class Grid:
    """Slab grid: L (m) square periodic side, n points per in-plane axis, nz cells of dz (m)."""

    L: float
    n: int
    nz: int
    thickness: float
    interface_cell: int  # cells [0, interface_cell) are layer 0 (bottom), the rest layer 1

    @property
    def dx(self) -> float:
        return self.L / self.n

    @property
    def dz(self) -> float:
        return self.thickness / self.nz

    @property
    def dV(self) -> float:
        return self.dx * self.dx * self.dz

    @property
    def dA(self) -> float:
        return self.dx * self.dx

    def layer_of_cell(self) -> torch.Tensor:
        return (torch.arange(self.nz) >= self.interface_cell).long()

    def x_centres(self) -> torch.Tensor:
        """Cell-centred in-plane coordinates (i + 1/2) L / n (m), as in strain.zarr."""
        return (torch.arange(self.n, dtype=torch.float64) + 0.5) * self.dx

    def z_centres(self) -> torch.Tensor:
        return (torch.arange(self.nz, dtype=torch.float64) + 0.5) * self.dz

    def interface_z(self) -> float:
        return self.interface_cell * self.dz


class Spectral:
    """In-plane spectral operators (rfft2 over the last two axes) on one device/dtype."""

    def __init__(self, grid: Grid, device: str = "cpu", dtype=torch.float64):
        self.grid, self.device, self.dtype = grid, device, dtype
        n = grid.n
        k = 2 * math.pi / grid.L
        ky = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype) * k
        kx = torch.fft.rfftfreq(n, d=1.0 / n, dtype=dtype) * k
        kmag = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
        # first-derivative symbols with the Nyquist mode removed (its derivative is not real)
        kyd, kxd = ky.clone(), kx.clone()
        if n % 2 == 0:
            kyd[n // 2] = 0.0
            kxd[-1] = 0.0
        self.kx = kxd[None, :].expand(n, -1).to(device)
        self.ky = kyd[:, None].expand(-1, kx.numel()).to(device)
        self.kmag = kmag.to(device)  # |k| of the vacuum Dirichlet-to-Neumann map
        self.k2 = (self.kx ** 2 + self.ky ** 2)  # symbol of -laplacian built from D^T D

    def rfft(self, f: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(f)

    def irfft(self, fh: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(fh, s=(self.grid.n, self.grid.n))

    def grad_xy(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(d/dx f, d/dy f) of a real field (..., y, x)."""
        fh = self.rfft(f)
        return self.irfft(1j * self.kx * fh), self.irfft(1j * self.ky * fh)

    def dtn(self, f: torch.Tensor) -> torch.Tensor:
        """|k| f: the vacuum Dirichlet-to-Neumann operator of a surface potential."""
        return self.irfft(self.kmag * self.rfft(f))


def neumann_modes(nz: int, dz: float, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal DCT-II basis V (nz, nz) and eigenvalues of the cell-centred Neumann -d2/dz2.

    The path-graph Laplacian of the face differences (P_{m+1}-P_m)/dz is diagonalised exactly
    by V[:, j] ~ cos(pi j (m + 1/2) / nz), eigenvalue (2 sin(pi j / (2 nz)) / dz)^2.
    """
    m = torch.arange(nz, dtype=dtype)
    j = torch.arange(nz, dtype=dtype)
    v = torch.cos(math.pi * j[None, :] * (m[:, None] + 0.5) / nz)
    v = v / torch.linalg.norm(v, dim=0, keepdim=True)
    lam = (2.0 * torch.sin(math.pi * j / (2 * nz)) / dz) ** 2
    return v, lam
