"""Self-consistent relaxation: TDGL for P, mechanical equilibrium for u, Poisson for phi.

Each step: (1) u, eps_bar and phi are solved exactly for the current P (the energy is quadratic
in them; one Newton step with the factorised per-k block-tridiagonal Hessians, dense at k = 0
where the mean in-plane strain of the free-standing membrane is also free); (2) the force
dF/dP comes from autograd of the discrete energy; (3) P takes a semi-implicit step

    (alpha_ref/dt + S) dP = -dF/dP / dV,   S = G (k_xy^2 + k_z^2) + A + k k^T / (eps0 eps_b |k|^2)

diagonal per Fourier (x, y) x DCT (z) mode, so the step is not limited by the gradient term
nor by the depolarising field. A step that would raise F is rejected and retried with dt/2,
so the recorded energy never increases; an accepted step multiplies dt by ``dt_grow`` (up to
``dt_max``): as dt grows the step tends to the preconditioned Newton step S^-1 dF/dP, so the
end point does not depend on the initial dt. Time is in units of 1/(Gamma alpha_ref).

Stop: the residual |dF/dP| (RMS over cells of the functional derivative, V/m, i.e. the
unbalanced effective field acting on P) below ``residual_tol_V_per_m`` (stop reason
``residual``); the P error is about residual / (2 alpha1) C/m^2 for a paraelectric.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from twistox.core.checkpoint import Checkpoint
from twistox.core.hashing import settings_hash

from .energy import TERMS, SlabEnergy
from .linsolve import BlockTridiagonal, dense_from_blocks, probe_blocks
from .materials import EPS0
from .settings import schema_defaults
from .spectral import neumann_modes

ALPHA_REF = 1.0e8  # J m / C^2, time unit 1/(Gamma ALPHA_REF)
AJ = 1.0e18        # J -> aJ
CKPT_NAME = "relax"


_D = schema_defaults()  # the one source of defaults (workflow/schemas/phasefield.schema.yaml)


@dataclass
class RelaxSettings:
    """Time stepping and stopping; defaults are the schema's (``RelaxSettings.from_config`` for a section).

    dt, dt_max: dimensionless (units of 1/(Gamma alpha_ref)); residual_tol_V_per_m: RMS |dF/dP| (V/m).
    """

    method: str = _D["method"]
    dt: float = _D["dt"]
    dt_grow: float = _D["dt_grow"]
    dt_max: float = _D["dt_max"]
    stabilization: float = _D["stabilization"]  # A = stabilization * 2 |alpha1|_max (J m / C^2)
    residual_tol_V_per_m: float = _D["residual_tol_V_per_m"]
    max_steps: int = _D["max_steps"]
    min_steps: int = _D["min_steps"]
    checkpoint_every: int = _D["checkpoint_every"]
    log_every: int = _D["log_every"]

    @classmethod
    def from_config(cls, pf: dict) -> "RelaxSettings":
        """From the validated ``phasefield`` config section."""
        return cls(**{f.name: pf[f.name] for f in fields(cls)})


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
    residual: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (steps,) RMS |dF/dP|, V/m


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
        self.dt = self.s.dt
        self.beta0 = E.G * k2 + self.A                              # (nz, n, nk)
        self.beta = ALPHA_REF / self.dt + self.beta0
        self.cdep = 1.0 / (EPS0 * E.eps_b)
        kk = torch.where(k2 > 0, k2, torch.ones_like(k2))
        self.khat = torch.stack([kx, ky, kzz]) / torch.sqrt(kk)    # (3, nz, n, nk), zero at k = 0
        self.khat = torch.where(k2[None] > 0, self.khat, torch.zeros_like(self.khat))
        self.ez = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=self.dev)[:, None, None, None]

    def set_dt(self, dt: float):
        """Current step (the settings keep the initial one). beta is rebuilt from dt, never updated
        incrementally: its bits then depend on dt only, not on the dt history, so a resumed run
        (dt restored from the checkpoint) preconditions exactly as the uninterrupted one."""
        self.beta = ALPHA_REF / dt + self.beta0
        self.dt = dt

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
    def residual(self, gP: torch.Tensor) -> float:
        """RMS over cells of |dF/dP| (V/m); gP is dH/dP per cell (J per C/m^2)."""
        return float(torch.sqrt((gP / self.E.grid.dV).pow(2).sum(0).mean()))

    def _direction(self, gP: torch.Tensor, cg: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Search direction and the preconditioned gradient z = M^-1 dF/dP (M = alpha_ref/dt + S).

        method 'tdgl': d = -z (the semi-implicit step). 'cg': Polak-Ribiere+ conjugate direction
        -z + beta d_prev: the few modes S models badly (e.g. solenoidal P_x-P_z textures, which S
        depolarises as if P_z ended in surface charges) are then corrected in a handful of steps."""
        g = self.E.grid
        z = self._precondition(gP / g.dV)
        if self.s.method == "tdgl" or not cg:
            return -z, z
        beta = max(0.0, float((gP * (z - cg["z"])).sum() / (cg["g"] * cg["z"]).sum()))
        d = -z + beta * cg["d"]
        if float((gP * d).sum()) >= 0:  # not a descent direction: restart
            return -z, z
        return d, z

    def _line_search(self, P, u, phi, eps_bar, gP, F, d):
        """(alpha, P, u, phi, eps_bar, terms, gP, F) at the lower-energy of the trial alpha = 1 and the secant
        minimum along d (exact for a quadratic F); None if neither lowers F (``tdgl``: the trial only)."""

        def at(a):
            Pn = P + a * d
            un, phin, ebn = self.equilibrate(Pn, u, phi, eps_bar)
            tn, gn = self.force(Pn, un, phin, ebn)
            return (a, Pn, un, phin, ebn, tn, gn, sum(tn.values()))

        tol = F + 1e-12 * abs(F)
        cand = [at(1.0)]
        if self.s.method == "cg":
            s0, s1 = float((gP * d).sum()), float((cand[0][6] * d).sum())
            if s1 > s0:  # positive curvature along d
                a = s0 / (s0 - s1)
                if abs(a - 1.0) > 0.2:
                    cand.append(at(min(a, 20.0)))
        cand = [c for c in cand if c[-1] <= tol]
        return min(cand, key=lambda c: c[-1]) if cand else None

    def relax(self, P0: torch.Tensor, checkpoint: Checkpoint | str | os.PathLike | None = None,
              fingerprint: str = "") -> RelaxResult:
        """Relax from P0 (3, nz, n, n) C/m^2; resume from ``checkpoint`` (a twistox.core.checkpoint.Checkpoint or
        its directory; state ``relax``) when it was written for ``fingerprint``."""
        s, g = self.s, self.E.grid
        t0 = time.time()
        dd = dict(dtype=torch.float64, device=self.dev)
        P = P0.to(**dd).clone()
        u = torch.zeros((3, g.nz + 1, g.n, g.n), **dd)
        phi = torch.zeros((g.nz + 1, g.n, g.n), **dd)
        eps_bar = torch.zeros(3, **dd)
        hist: list[dict] = []
        res_hist: list[float] = []
        rejected, start, cg = 0, 0, None
        self.set_dt(s.dt)
        ck = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint, key=fingerprint, fmt="pt")
        state = ck.load(CKPT_NAME, key=fingerprint)
        if state is not None:
            P, u, phi, eps_bar = (state[k].to(**dd) for k in ("P", "u", "phi", "eps_bar"))
            hist, res_hist = state["hist"], state["residual"]
            cg = {k: v.to(**dd) for k, v in state["cg"].items()}
            rejected, start = state["rejected"], state["step"]
            self.set_dt(state["dt"])
            self.log.info("resumed from checkpoint %s at step %d", ck.path(CKPT_NAME), start)
        elif ck.dir is not None and ck.path(CKPT_NAME).exists():
            self.log.info("checkpoint %s belongs to another run; starting from step 0", ck.path(CKPT_NAME))
        if state is None:  # a checkpointed state is equilibrated already: once more would change its last bits
            u, phi, eps_bar = self.equilibrate(P, u, phi, eps_bar)
        terms, gP = self.force(P, u, phi, eps_bar)
        if not hist:
            hist.append(terms)
            res_hist.append(self.residual(gP))
        F = sum(terms.values())
        converged, reason, step = False, "max_steps", start
        cg = dict(cg or {})
        while step < s.max_steps:
            if step >= s.min_steps and res_hist[-1] < s.residual_tol_V_per_m:
                converged, reason = True, "residual"
                break
            d, z = self._direction(gP, cg)
            best = self._line_search(P, u, phi, eps_bar, gP, F, d)
            if best is None:  # the energy must not rise: retry with a smaller step, steepest descent
                rejected += 1
                cg = {}
                self.set_dt(self.dt / 2)
                if self.dt < 1e-8:
                    reason = "dt_underflow"
                    break
                continue
            step += 1
            cg = {"d": d * best[0], "z": z, "g": gP}
            P, u, phi, eps_bar, tn, gP, F = best[1:]
            hist.append(tn)
            res_hist.append(self.residual(gP))
            self.set_dt(min(self.dt * s.dt_grow, s.dt_max))
            if step % s.log_every == 0 or step == 1:
                self.log.info("step %d: F = %.9g aJ, |dF/dP| = %.3g V/m, max|P| = %.4g C/m2, dt = %g",
                              step, F * AJ, res_hist[-1], float(P.abs().max()), self.dt)
            # every checkpoint_every steps, and at least every ck.interval_s (60 s, $TWISTOX_CHECKPOINT_INTERVAL_S)
            if ck.dir is not None and s.checkpoint_every and (step % s.checkpoint_every == 0 or ck.due()):
                ck.save(CKPT_NAME, key=fingerprint, P=P, u=u, phi=phi, eps_bar=eps_bar, hist=hist, residual=res_hist,
                        rejected=rejected, step=step, dt=self.dt, cg=cg)
                self.log.info("checkpoint at step %d -> %s", step, ck.path(CKPT_NAME))
        self.log.info("stopped after %d steps (%s): F = %.9g aJ, |dF/dP| = %.3g V/m, %d rejected steps, %.2f s",
                      step, reason, F * AJ, res_hist[-1], rejected, time.time() - t0)
        energy_terms = np.array([[h[k] for h in hist] for k in TERMS]) * AJ
        return RelaxResult(P, u, phi, eps_bar, energy_terms.sum(0), energy_terms, converged, reason, step, rejected,
                           time.time() - t0, resumed_from=start, residual=np.array(res_hist))


def fingerprint_of(*objs) -> str:
    """Stable hash of the inputs that define a run (config subset, arrays): the shared settings hash."""
    return settings_hash(*objs)
