"""Self-consistent relaxation: TDGL for P, mechanical equilibrium for u, Poisson for phi.

Each step: (1) u, eps_bar and phi are solved exactly for the current P (the energy is quadratic
in them; one Newton step with the factorised per-k block-tridiagonal Hessians, dense at k = 0
where the mean in-plane strain of the free-standing membrane is also free); (2) the force
dF/dP comes from autograd of the discrete energy; (3) P takes a semi-implicit step

    (alpha_ref/dt + S) dP = -dF/dP / dV,   S = G (k_xy^2 + k_z^2) + A + k k^T / (eps0 eps_b |k|^2)

diagonal per Fourier (x, y) x DCT (z) mode, so the step is not limited by the gradient term
nor by the depolarising field. A step that would raise F is rejected and retried with dt/2,
so the recorded energy never increases. Time is in units of 1/(Gamma alpha_ref).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .energy import TERMS, SlabEnergy
from .linsolve import BlockTridiagonal, dense_from_blocks, probe_blocks
from .materials import EPS0
from .spectral import neumann_modes

ALPHA_REF = 1.0e8  # J m / C^2, time unit 1/(Gamma ALPHA_REF)
AJ = 1.0e18        # J -> aJ


@dataclass
class RelaxSettings:
    """Time stepping and stopping (dt dimensionless; tolerance in aJ per step)."""

    dt: float = 10.0
    stabilization: float = 1.0  # A = stabilization * 2 |alpha1|_max (J m / C^2)
    tolerance_aJ: float = 1e-6
    max_steps: int = 2000
    min_steps: int = 5
    checkpoint_every: int = 100
    log_every: int = 50


@dataclass
class RelaxResult:
    P: torch.Tensor
    u: torch.Tensor
    phi: torch.Tensor
    eps_bar: torch.Tensor
    energy: np.ndarray            # (steps,) aJ
    energy_terms: np.ndarray      # (terms, steps) aJ
    converged: bool
    stop_reason: str
    steps: int
    rejected: int
    wall_s: float
    resumed_from: int = 0
    info: dict = field(default_factory=dict)


class PhaseFieldSolver:
    """Relaxes P on a SlabEnergy; the same code runs on CPU and CUDA (device of the energy)."""

    def __init__(self, energy: SlabEnergy, settings: RelaxSettings | None = None,
                 log: logging.Logger | None = None):
        self.E, self.s = energy, settings or RelaxSettings()
        self.log = log or logging.getLogger("twistox.phasefield")
        self.dev = energy.device
        g = energy.grid
        self.n, self.nz, self.nk = g.n, g.nz, g.n * (g.n // 2 + 1)
        t0 = time.time()
        self._assemble_mechanics()
        self._assemble_poisson()
        self._assemble_preconditioner()
        self.setup_s = time.time() - t0

    # --- operators ------------------------------------------------------------------
    def _grad(self, fn, v):
        v = v.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(v), v)
        return g

    def _assemble_mechanics(self):
        n, nz = self.n, self.nz
        zero_bar = torch.zeros(3, dtype=torch.float64, device=self.dev)
        d, up, lo = probe_blocks(lambda u: self._grad(lambda w: self.E.elastic_only(w, zero_bar), u),
                                 (3, nz + 1, n, n), self.E.sp.rfft, self.dev)
        scale = d[0, 1:].diagonal(dim1=-2, dim2=-1).real.abs().max()
        d0 = dense_from_blocks(d[0], up[0], lo[0])
        # z-uniform u at k = 0 and at the Nyquist modes (whose first derivative is dropped) carries no
        # energy: pin it at the bottom node (exact, the energy gradient has no component along it)
        null = ((self.E.sp.kx == 0) & (self.E.sp.ky == 0)).reshape(-1)
        d[null, 0] = d[null, 0] + scale * torch.eye(3, device=self.dev)
        self.mech = BlockTridiagonal(d, up, lo)
        # k = 0 with the 3 mean in-plane strains (xx, yy, xy) of the free-standing membrane
        u0 = torch.zeros((3, nz + 1, n, n), dtype=torch.float64, device=self.dev)
        cols, M = [], []
        for c in range(3):
            eb = torch.zeros(3, dtype=torch.float64, device=self.dev)
            eb[c] = 1.0
            ebr = eb.clone().requires_grad_(True)
            ur = u0.clone().requires_grad_(True)
            gu, ge = torch.autograd.grad(self.E.elastic_only(ur, ebr), (ur, ebr))
            cols.append(self.E.sp.rfft(gu)[..., 0, 0].T.reshape(-1))  # (nz+1)*3, node-major
            M.append(ge)
        B = torch.stack(cols, 1)                      # FFT(k=0) of the u-response, includes the factor n^2
        Mm = torch.stack(M, 1).to(B.dtype)
        m = d0.shape[0]
        A = torch.zeros((m + 3, m + 3), dtype=B.dtype, device=self.dev)
        A[:m, :m] = d0
        A[:3, :3] += scale * torch.eye(3, device=self.dev)
        A[:m, m:] = B
        A[m:, :m] = B.T / (n * n)
        A[m:, m:] = Mm
        self.mech0 = torch.linalg.inv(A)

    def _assemble_poisson(self):
        n, nz = self.n, self.nz
        d, up, lo = probe_blocks(lambda p: self._grad(lambda w: self.E.electric_only(w[0]), p),
                                 (1, nz + 1, n, n), self.E.sp.rfft, self.dev)
        scale = d[0, 1:].diagonal(dim1=-2, dim2=-1).real.abs().max()
        d[0, 0] = d[0, 0] - scale  # gauge: phi of the bottom surface node at k = 0 (negative definite)
        self.pois = BlockTridiagonal(d, up, lo)

    def _assemble_preconditioner(self):
        E, g = self.E, self.E.grid
        V, lam = neumann_modes(g.nz, g.dz)
        self.V = V.to(self.dev)
        kz = torch.sqrt(lam).to(self.dev)
        # a z-uniform P_z in a slab of thickness T ends in surface charges: depolarised like a
        # mode of wavevector pi/T, not k_z = 0
        kz[0] = torch.pi / g.thickness
        sp = E.sp
        kx = sp.kx[None].expand(g.nz, -1, -1)
        ky = sp.ky[None].expand(g.nz, -1, -1)
        kzz = kz[:, None, None].expand_as(kx)
        k2 = kx ** 2 + ky ** 2 + kzz ** 2
        a_max = max(abs(m.alpha1) for m in E.materials)
        self.A = self.s.stabilization * 2.0 * a_max
        self.beta = ALPHA_REF / self.s.dt + E.G * k2 + self.A     # (nz, n, nk)
        self.cdep = 1.0 / (EPS0 * E.eps_b)
        kk = torch.where(k2 > 0, k2, torch.ones_like(k2))
        self.khat = torch.stack([kx, ky, kzz]) / torch.sqrt(kk)    # (3, nz, n, nk), zero at k = 0
        self.khat = torch.where(k2[None] > 0, self.khat, torch.zeros_like(self.khat))
        self.ez = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=self.dev)[:, None, None, None]

    def set_dt(self, dt: float):
        self.beta = self.beta - ALPHA_REF / self.s.dt + ALPHA_REF / dt
        self.s.dt = dt

    # --- sub-solves -------------------------------------------------------------------
    def _to_k(self, f):  # (b, M, n, n) real -> (K, M, b)
        b, M = f.shape[:2]
        return self.E.sp.rfft(f).reshape(b, M, -1).permute(2, 1, 0)

    def _from_k(self, x, b, M):
        return self.E.sp.irfft(x.permute(2, 1, 0).reshape(b, M, self.n, self.n // 2 + 1))

    def equilibrate(self, P, u, phi, eps_bar):
        """Exact u, eps_bar (min) and phi (max) of H for this P (one Newton step each)."""
        ur = u.detach().requires_grad_(True)
        pr = phi.detach().requires_grad_(True)
        er = eps_bar.detach().requires_grad_(True)
        gu, gp, ge = torch.autograd.grad(self.E.total(P.detach(), ur, pr, er), (ur, pr, er))
        r = self._to_k(gu)
        du = self.mech.solve(r)
        m = r.shape[1] * 3
        x0 = self.mech0 @ torch.cat([r[0].reshape(-1), ge.to(r.dtype)])
        du[0] = x0[:m].reshape(-1, 3)
        u = u - self._from_k(du, 3, self.nz + 1)
        eps_bar = eps_bar - x0[m:].real
        dphi = self.pois.solve(self._to_k(gp[None]))
        phi = phi - self._from_k(dphi, 1, self.nz + 1)[0]
        return u.detach(), phi.detach(), eps_bar.detach()

    def force(self, P, u, phi, eps_bar):
        """Energy terms (J, floats) and dH/dP (J per C/m^2 per cell)."""
        Pr = P.detach().requires_grad_(True)
        terms = self.E.terms(Pr, u, phi, eps_bar)
        (gP,) = torch.autograd.grad(sum(terms.values()), Pr)
        return {k: float(v.detach()) for k, v in terms.items()}, gP

    def _precondition(self, g):
        """Solve (alpha_ref/dt + S) x = g per (DCT z, Fourier xy) mode (Sherman-Morrison)."""
        gz = torch.einsum("mj,cmyx->cjyx", self.V, g)
        gh = self.E.sp.rfft(gz)
        # D = beta I + cdep e_z e_z^T (P_z: surface charges), plus the rank-one cdep k k^T
        dinv = 1.0 / (self.beta[None] + self.cdep * self.ez)
        y, w = dinv * gh, dinv * self.khat
        coef = self.cdep * (self.khat * y).sum(0) / (1.0 + self.cdep * (self.khat * w).sum(0))
        xh = y - w * coef[None]
        x = self.E.sp.irfft(xh)
        return torch.einsum("mj,cjyx->cmyx", self.V, x)

    # --- main loop --------------------------------------------------------------------
    def relax(self, P0: torch.Tensor, checkpoint: str | os.PathLike | None = None,
              fingerprint: str = "") -> RelaxResult:
        """Relax from P0 (3, nz, n, n) C/m^2; resume from ``checkpoint`` when it matches ``fingerprint``."""
        s, g = self.s, self.E.grid
        t0 = time.time()
        dd = dict(dtype=torch.float64, device=self.dev)
        P = P0.to(**dd).clone()
        u = torch.zeros((3, g.nz + 1, g.n, g.n), **dd)
        phi = torch.zeros((g.nz + 1, g.n, g.n), **dd)
        eps_bar = torch.zeros(3, **dd)
        hist: list[dict] = []
        rejected, start = 0, 0
        ck = Path(checkpoint) if checkpoint else None
        if ck and ck.exists():
            state = torch.load(ck, map_location=self.dev, weights_only=False)
            if state.get("fingerprint") == fingerprint:
                P, u, phi, eps_bar = (state[k].to(**dd) for k in ("P", "u", "phi", "eps_bar"))
                hist, rejected, start = state["hist"], state["rejected"], state["step"]
                self.set_dt(state["dt"])
                self.log.info("resumed from checkpoint %s at step %d", ck, start)
            else:
                self.log.info("checkpoint %s belongs to another run; starting from step 0", ck)
        u, phi, eps_bar = self.equilibrate(P, u, phi, eps_bar)
        terms, gP = self.force(P, u, phi, eps_bar)
        if not hist:
            hist.append(terms)
        F = sum(terms.values())
        converged, reason, step = False, "max_steps", start
        while step < s.max_steps:
            dP = -self._precondition(gP / g.dV)
            Pn = P + dP
            un, phin, ebn = self.equilibrate(Pn, u, phi, eps_bar)
            tn, gn = self.force(Pn, un, phin, ebn)
            Fn = sum(tn.values())
            if Fn > F + 1e-12 * abs(F):
                rejected += 1
                self.set_dt(self.s.dt / 2)
                if self.s.dt < 1e-8:
                    reason = "dt_underflow"
                    break
                continue
            step += 1
            P, u, phi, eps_bar, gP = Pn, un, phin, ebn, gn
            dF = (F - Fn) * AJ
            F = Fn
            hist.append(tn)
            if step % s.log_every == 0 or step == 1:
                self.log.info("step %d: F = %.9g aJ, |dF| = %.3g aJ, max|P| = %.4g C/m2, dt = %g",
                              step, F * AJ, dF, float(P.abs().max()), self.s.dt)
            if step >= s.min_steps and abs(dF) < s.tolerance_aJ:
                converged, reason = True, "tolerance"
                break
            if ck and s.checkpoint_every and step % s.checkpoint_every == 0:
                self._save(ck, fingerprint, P, u, phi, eps_bar, hist, rejected, step)
        self.log.info("stopped after %d steps (%s): F = %.9g aJ, %d rejected steps, %.2f s",
                      step, reason, F * AJ, rejected, time.time() - t0)
        energy_terms = np.array([[h[k] for h in hist] for k in TERMS]) * AJ
        return RelaxResult(P, u, phi, eps_bar, energy_terms.sum(0), energy_terms, converged, reason, step, rejected,
                           time.time() - t0, resumed_from=start)

    def _save(self, path: Path, fingerprint, P, u, phi, eps_bar, hist, rejected, step):
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"fingerprint": fingerprint, "P": P.cpu(), "u": u.cpu(), "phi": phi.cpu(),
                    "eps_bar": eps_bar.cpu(), "hist": hist, "rejected": rejected, "step": step,
                    "dt": self.s.dt}, tmp)
        os.replace(tmp, path)  # atomic: a kill mid-write leaves the previous checkpoint
        self.log.info("checkpoint at step %d -> %s", step, path)


def fingerprint_of(*objs) -> str:
    """Stable hash of the inputs that define a run (config subset, arrays)."""
    h = hashlib.sha256()
    for o in objs:
        if isinstance(o, (np.ndarray, torch.Tensor)):
            h.update(np.ascontiguousarray(np.asarray(o.cpu() if isinstance(o, torch.Tensor) else o)).tobytes())
        else:
            h.update(json.dumps(o, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]
