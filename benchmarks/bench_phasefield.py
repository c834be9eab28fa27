"""Phase-field solver speed: time per step and time to converge vs grid size, semi-implicit spectral
(twistox) against plain explicit (forward-Euler) stepping of the same discrete equations on the same grid.

    python benchmarks/bench_phasefield.py                      # small default, < 2 min on 1 CPU core
    python benchmarks/bench_phasefield.py --grids 64x64 128x64 256x128 --device cuda --explicit-max 20000

Grid "NxZ" = N^2 in-plane points x Z cells; L and thickness scale with the grid (0.5 Å, 2 Å spacing),
SrTiO3 at 300 K with a shear-network eigenstrain (e_xy = 0.01 (cos kx + cos ky) near the interface).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from twistox.phasefield import Grid, Material, PhaseFieldSolver, RelaxSettings, SlabEnergy, alpha1_pertsev
from twistox.phasefield.materials import EPS0
from twistox.phasefield.solver import ALPHA_REF

STO = Material(alpha1=alpha1_pertsev(300.0), alpha11=1.70e9, alpha12=1.37e9, G=1e-10, c11=3.36e11, c12=1.07e11,
               c44=1.27e11, Q11=0.066, Q12=-0.0135, Q44=0.0096, f11=2.0, f12=1.0, f44=1.0, eps_b=10.0)


class ExplicitSolver(PhaseFieldSolver):
    """Forward Euler P += -dt/alpha_ref dF/dP with the largest stable step (same u/phi solves)."""

    def _assemble_preconditioner(self):
        g, sp = self.E.grid, self.E.sp
        kmax2 = float(sp.k2.max())
        lam = 2 * abs(STO.alpha1) + STO.G * (kmax2 + 4 / g.dz ** 2) + 1 / (EPS0 * STO.eps_b)
        self.dt_explicit = 1.9 * ALPHA_REF / lam
        self.dt = self.s.dt

    def set_dt(self, dt):
        self.dt_explicit *= min(dt, self.s.dt) / self.dt  # never above the stability limit
        self.dt = min(dt, self.s.dt)

    def _precondition(self, g):
        return g * (self.dt_explicit / ALPHA_REF)


def model(n: int, nz: int, device: str) -> SlabEnergy:
    L, T = n * 0.5e-10, nz * 2e-10
    grid = Grid(L=L, n=n, nz=nz, thickness=T, interface_cell=nz // 2)
    x = grid.x_centres().to(device)
    z = grid.z_centres().to(device)
    k = 2 * math.pi / L
    eig = torch.zeros(3, 3, nz, n, n, dtype=torch.float64, device=device)
    w = torch.exp(-(z - grid.interface_z()).abs() / 3.9e-10)[:, None, None]
    eig[0, 1] = eig[1, 0] = 0.01 * w * (torch.cos(k * x)[None, :] + torch.cos(k * x)[:, None])
    return SlabEnergy(grid, (STO, STO), (-2.5, 2.5), eig, device=device)


def run(cls, n, nz, device, tol, max_steps, method="cg"):
    E = model(n, nz, device)
    s = cls(E, RelaxSettings(method=method, dt=10.0, residual_tol_V_per_m=tol, max_steps=max_steps,
                             log_every=10 ** 9, checkpoint_every=0))
    P0 = 5e-5 * (2 * torch.rand(3, nz, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) - 1)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    r = s.relax(P0.to(device))
    if device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    return r, wall, s.setup_s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", nargs="+", default=["12x12", "16x16"], help="NxZ sizes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tol", type=float, default=10.0, help="residual tolerance RMS |dF/dP| (V/m)")
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--explicit-max", type=int, default=3000, help="step cap of the explicit baseline")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"device {a.device}, {a.threads} thread(s)")
    print(f"{'grid':>10} {'setup s':>8} {'ms/step':>8} {'steps':>6} {'t_conv s':>9} | "
          f"{'expl ms/step':>12} {'expl steps':>10} {'expl t s':>9} {'ratio':>7}  max|P| semi/expl")
    for spec in a.grids:
        n, nz = map(int, spec.split("x"))
        tol = a.tol
        r, wall, setup = run(PhaseFieldSolver, n, nz, a.device, tol, a.max_steps)
        re_, wall_e, _ = run(ExplicitSolver, n, nz, a.device, tol, a.explicit_max, method="tdgl")
        steps_e = max(re_.steps, 1)
        flag = "" if re_.converged else " (explicit hit the step cap: ratio is a lower bound)"
        print(f"{spec:>10} {setup:8.2f} {1e3 * wall / max(r.steps, 1):8.1f} {r.steps:6d} {wall:9.2f} | "
              f"{1e3 * wall_e / steps_e:12.1f} {re_.steps:10d} {wall_e:9.2f} {wall_e / wall:7.1f}  "
              f"{float(r.P.abs().max()):.4g}/{float(re_.P.abs().max()):.4g}{flag}")


if __name__ == "__main__":
    main()
