"""Batched block-tridiagonal solves for the per-wavevector z problems (elasticity, Poisson).

With material constants depending only on z, the Hessians of the discrete elastic and
electrostatic energies are diagonal in the in-plane wavevector k and block-tridiagonal in the
z nodes (b x b blocks, b = 3 for u, 1 for phi). They are assembled by probing the discrete
energy's gradient with impulses (three colours of nodes, so responses do not overlap), which
keeps the operator exactly consistent with the energy, and factorised once (block Thomas).
"""

from __future__ import annotations

from typing import Callable

import torch


def probe_blocks(grad_fn: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...], rfft,
                 device: str = "cpu") -> tuple:
    """Blocks of the translation-invariant Hessian of a quadratic energy.

    grad_fn(v) returns dE/dv for v of ``shape`` = (b, M, n, n) (real space); returns
    (diag (K, M, b, b), upper (K, M-1, b, b), lower (K, M-1, b, b)) with K = n * (n//2 + 1)
    in-plane wavevectors (rfft2 layout, flattened) and diag[k, m] = H(k)[m, m].
    """
    b, M, n, _ = shape
    diag = upper = lower = None
    for c in range(b):
        for colour in range(3):
            v = torch.zeros(shape, dtype=torch.float64, device=device)
            nodes = list(range(colour, M, 3))
            if not nodes:
                continue
            v[c, nodes, 0, 0] = 1.0
            g = rfft(grad_fn(v))  # (b, M, n, nk)
            g = g.reshape(b, M, -1).permute(2, 1, 0)  # (K, M, b)
            if diag is None:
                K = g.shape[0]
                diag = torch.zeros((K, M, b, b), dtype=g.dtype, device=g.device)
                upper = torch.zeros((K, max(M - 1, 0), b, b), dtype=g.dtype, device=g.device)
                lower = torch.zeros_like(upper)
            for m in nodes:
                diag[:, m, :, c] = g[:, m]
                if m > 0:
                    upper[:, m - 1, :, c] = g[:, m - 1]  # H[m-1, m]
                if m < M - 1:
                    lower[:, m, :, c] = g[:, m + 1]      # H[m+1, m]
    return diag, upper, lower


class BlockTridiagonal:
    """Factorised batched block-tridiagonal matrices (block LU without pivoting).

    Valid for Hermitian definite (positive or negative) blocks, as the energy Hessians are.
    """

    def __init__(self, diag: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor):
        K, M, b, _ = diag.shape
        self.M, self.b = M, b
        self.upper = upper
        dinv = torch.empty_like(diag)
        w = torch.empty_like(lower)
        dinv[:, 0] = torch.linalg.inv(diag[:, 0])
        for m in range(1, M):
            w[:, m - 1] = lower[:, m - 1] @ dinv[:, m - 1]
            dinv[:, m] = torch.linalg.inv(diag[:, m] - w[:, m - 1] @ upper[:, m - 1])
        self.dinv, self.w = dinv, w

    def solve(self, r: torch.Tensor) -> torch.Tensor:
        """Solve H x = r for r of shape (K, M, b)."""
        y = torch.empty_like(r)
        y[:, 0] = r[:, 0]
        for m in range(1, self.M):
            y[:, m] = r[:, m] - (self.w[:, m - 1] @ y[:, m - 1, :, None])[..., 0]
        x = torch.empty_like(r)
        x[:, -1] = (self.dinv[:, -1] @ y[:, -1, :, None])[..., 0]
        for m in range(self.M - 2, -1, -1):
            rhs = y[:, m] - (self.upper[:, m] @ x[:, m + 1, :, None])[..., 0]
            x[:, m] = (self.dinv[:, m] @ rhs[..., None])[..., 0]
        return x


def dense_from_blocks(diag: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """Dense (M b, M b) matrix of one wavevector's blocks (diag (M, b, b) etc.)."""
    M, b, _ = diag.shape
    A = torch.zeros((M * b, M * b), dtype=diag.dtype, device=diag.device)
    for m in range(M):
        A[m * b:(m + 1) * b, m * b:(m + 1) * b] = diag[m]
        if m < M - 1:
            A[m * b:(m + 1) * b, (m + 1) * b:(m + 2) * b] = upper[m]
            A[(m + 1) * b:(m + 2) * b, m * b:(m + 1) * b] = lower[m]
    return A
