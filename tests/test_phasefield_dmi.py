"""Chiral Lifshitz invariant (electric DMI) of the twisted interface: known answers, symmetry, TDGL hook."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from twistox.phasefield import TERMS, Grid, Material, PhaseFieldSolver, RelaxSettings, SlabEnergy, alpha1_pertsev
from twistox.phasefield.dmi import ChiralLifshitz, critical_dmi, helix_angle_per_face, interface_weights, twist_sense
from twistox.phasefield.materials import material_from_config
from twistox.phasefield.spectral import Spectral

torch.set_num_threads(1)
STO = Material(alpha1=alpha1_pertsev(300.0), alpha11=1.70e9, alpha12=1.37e9, G=1e-10, c11=3.36e11, c12=1.07e11,
               c44=1.27e11, Q11=0.066, Q12=-0.0135, Q44=0.0096, f11=2.0, f12=1.0, f44=1.0, eps_b=10.0)
D = 0.05            # J m^2/C^2
DECAY = 3.905e-10   # m
TWIST = (-2.5, 2.5)  # bottom, top layer angles (deg): theta = +5 deg


def _grid(n=64, nz=4, L=6.4e-9, T=1.6e-9) -> Grid:
    return Grid(L=L, n=n, nz=nz, thickness=T, interface_cell=nz // 2)


def _term(g: Grid, angles=TWIST, d_par=D, d_perp=D) -> ChiralLifshitz:
    return ChiralLifshitz(g, Spectral(g), d_par, d_perp, angles, DECAY)


def _vortex(g: Grid, s: int, A: float, B: float, r0: float) -> torch.Tensor:
    """z-independent vortex at the cell centre: P_inplane = s A (r/r0) e^{-r²/2r0²} phi_hat (s = +1 CCW seen from +z),
    P_z = B e^{-r²/2r0²} (a polar core). Array layout [y, x]."""
    x = g.x_centres()
    X, Y = x[None, :] - g.L / 2, x[:, None] - g.L / 2
    env = torch.exp(-(X ** 2 + Y ** 2) / (2 * r0 ** 2))
    P = torch.zeros(3, g.nz, g.n, g.n, dtype=torch.float64)
    P[0] = s * A / r0 * (-Y) * env
    P[1] = s * A / r0 * X * env
    P[2] = B * env
    return P


def test_twist_sense_and_untwisted_interface_is_off():
    assert twist_sense((-2.5, 2.5)) == 1 and twist_sense((2.5, -2.5)) == -1 and twist_sense((3.0, 3.0)) == 0
    g = _grid(n=8)
    P = torch.randn(3, g.nz, g.n, g.n, dtype=torch.float64)
    # theta = 0: the interface has C4v, whose mirrors forbid the chiral invariant
    assert float(_term(g, angles=(10.0, 10.0)).energy(P)) == 0.0
    assert float(_term(g).energy(P)) != 0.0


def test_zero_for_uniform_P():
    g = _grid(n=16, nz=6)
    P = torch.zeros(3, g.nz, g.n, g.n, dtype=torch.float64)
    P[0], P[1], P[2] = 0.03, -0.02, 0.01
    assert float(_term(g).energy(P)) == 0.0
    # (its derivative is not zero: D(z) varies, and -dD/dz z x P is the force that starts the helix of the next test)


def test_zero_for_curl_free_inplane_field():
    """P_inplane = grad chi (any chi(x, y, z)), any P_z: the invariant integrates to zero (it sees only the curl).
    A Néel (radial) polar texture is such a field: the chiral term cannot tell its two senses apart."""
    g = _grid(n=16, nz=6)
    torch.manual_seed(0)
    chi = torch.randn(g.nz, g.n, g.n, dtype=torch.float64) * 1e-11   # C/m
    sp = Spectral(g)
    cx, cy = sp.grad_xy(chi)
    P = torch.stack([cx, cy, torch.randn(g.nz, g.n, g.n, dtype=torch.float64) * 0.01])
    t = _term(g)
    scale = float(_term(g).energy(P + 0.01 * torch.randn_like(P)).abs())   # a generic field of the same size
    assert abs(float(t.energy(P))) < 1e-12 * scale


def test_vortex_cw_ccw_energy_difference_equals_analytic_integral():
    """For the z-independent vortex with a polar core (see _vortex), by hand:
    P.curl P = s [P_z (r P_phi)'/r - P_phi P_z'];  int dA = 2 pi s ([r P_phi P_z]_0^inf - 2 int r P_phi P_z' dr)
             = -4 pi s int r (A r/r0)(-B r/r0²) e^{-r²/r0²} dr = 4 pi s A B / r0³ · r0⁴/2 = 2 pi s A B r0,
    so F(CCW) - F(CW) = sign(theta) D · 4 pi A B r0 · sum_m w(z_m) dz (only the in-plane part acts)."""
    g = _grid()
    A, B, r0 = 0.02, 0.01, g.L / 16
    wc, _ = interface_weights(g, DECAY)
    W = float(wc.sum()) * g.dz
    expected = 4 * math.pi * D * A * B * r0 * W
    for angles, sense in ((TWIST, 1), (TWIST[::-1], -1)):
        t = _term(g, angles)
        ccw, cw = float(t.energy(_vortex(g, +1, A, B, r0))), float(t.energy(_vortex(g, -1, A, B, r0)))
        assert ccw - cw == pytest.approx(sense * expected, rel=1e-9)
        assert ccw == pytest.approx(-cw, rel=1e-9)
    # theta > 0, D > 0 favours CW around a core with P_z > 0; reversing the twist favours CCW
    assert float(_term(g).energy(_vortex(g, -1, A, B, r0))) < 0 < float(_term(g).energy(_vortex(g, +1, A, B, r0)))
    # without a polar core the term is even in P_inplane: CW and CCW cost the same (it selects handedness
    # relative to P_z or to the sense of rotation along z, never alone)
    t = _term(g)
    assert float(t.energy(_vortex(g, +1, A, 0.0, r0))) == pytest.approx(0.0, abs=1e-12 * expected)


def test_symmetry_c4_invariant_mirror_odd():
    """C4 about z leaves the term invariant; a vertical mirror reverses its sign (forbidden in C4v)."""
    g = _grid(n=12, nz=6)
    torch.manual_seed(1)
    P = torch.randn(3, g.nz, g.n, g.n, dtype=torch.float64)
    t = _term(g)
    E = float(t.energy(P))
    # rotation by +90 deg: r -> (-y, x), P -> (-P_y, P_x, P_z); on [y, x] arrays, rot90 (k=1) over (y, x) axes
    rot = lambda f: torch.rot90(f, 1, dims=(-1, -2))  # noqa: E731  (x index -> -y: CCW on the cell-centred grid)
    Pr = torch.stack([-rot(P[1]), rot(P[0]), rot(P[2])])
    assert float(t.energy(Pr)) == pytest.approx(E, rel=1e-10)
    # mirror x -> -x: P -> (-P_x, P_y, P_z)(-x, y, z)
    Pm = torch.stack([-P[0].flip(-1), P[1].flip(-1), P[2].flip(-1)])
    assert float(t.energy(Pm)) == pytest.approx(-E, rel=1e-10)
    # a mirror of the field equals the same field in the mirrored (theta -> -theta) structure
    assert float(_term(g, TWIST[::-1]).energy(Pm)) == pytest.approx(E, rel=1e-10)


def test_derivative_matches_autograd_and_finite_difference():
    g = _grid(n=10, nz=6)
    torch.manual_seed(2)
    t = _term(g, d_par=0.03, d_perp=0.07)   # distinct, so each part's derivative is checked
    P = 0.01 * torch.randn(3, g.nz, g.n, g.n, dtype=torch.float64)
    dF = t.derivative(P)
    Pr = P.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(t.energy(Pr), Pr)
    assert torch.allclose(dF, ga / g.dV, rtol=1e-12, atol=1e-12 * float(dF.abs().max()))
    v = torch.randn_like(P)
    h = 1e-4
    fd = (float(t.energy(P + h * v)) - float(t.energy(P - h * v))) / (2 * h)  # exact: F is quadratic
    assert fd == pytest.approx(float((dF * v).sum()) * g.dV, rel=1e-7)


@pytest.mark.parametrize("angles", [TWIST, TWIST[::-1]])
def test_relaxed_helix_across_interface_matches_discrete_answer(angles):
    """TDGL with the term on: a ferroelectric (alpha1 < 0, isotropic quartic, no elastic/flexo coupling) with
    laterally uniform in-plane P twists across the interface by exactly dpsi_f = atan(sign(theta) D w_f dz / G)
    per face (helix_angle_per_face); reversing the twist reverses the sense of rotation."""
    a11 = 1.7e9
    fe = Material(alpha1=-5e7, alpha11=a11, alpha12=2 * a11, G=1e-10, c11=3.36e11, c12=1.07e11, c44=1.27e11,
                  Q11=0, Q12=0, Q44=0, f11=0, f12=0, f44=0, eps_b=10.0, dmi=0.03, dmi_decay_A=4.0)
    g = Grid(L=1.2e-9, n=4, nz=16, thickness=6.4e-9, interface_cell=8)
    solver = PhaseFieldSolver(SlabEnergy(g, (fe, fe), angles), RelaxSettings(dt=10, residual_tol_V_per_m=1e-3,
                                                                             max_steps=500))
    P0 = torch.zeros(3, g.nz, g.n, g.n, dtype=torch.float64)
    P0[0] = 0.1
    r = solver.relax(P0)
    assert r.converged
    psi = torch.atan2(r.P[1, :, 0, 0], r.P[0, :, 0, 0])
    _, wf = interface_weights(g, 4e-10)
    s = twist_sense(angles)
    ref = torch.tensor([helix_angle_per_face(s * 0.03 * float(w), 1e-10, g.dz) for w in wf], dtype=torch.float64)
    assert torch.allclose(torch.diff(psi), ref, atol=1e-6)
    assert s * float(psi[-1] - psi[0]) > 0.2   # a visible twist (0.26 rad) with the sense of the twist
    assert np.all(np.diff(r.energy) <= 1e-12 * np.abs(r.energy).max())


def test_energy_decreases_with_dmi_on_flexo_driven_vortices():
    """Paraelectric SrTiO3 driven by an antisymmetric (bottom/top) shear eigenstrain of two perpendicular line sets:
    switching the term on at the D = 0 state, the TDGL energy never rises, the term is in the energy history
    (zero when off), and the relaxation lowers F below its starting value F_D(P_0)."""
    g = Grid(L=4e-9, n=12, nz=8, thickness=3.2e-9, interface_cell=4)
    x = g.x_centres().numpy()
    X, Y = np.meshgrid(x, x)
    q = 2 * np.pi / g.L
    e = 0.01 * (np.cos(q * X) - np.cos(q * Y))
    eig = np.zeros((3, 3, g.nz, g.n, g.n))
    zc = g.z_centres().numpy()
    for m in range(g.nz):
        sgn = 1.0 if m >= g.interface_cell else -1.0
        eig[0, 1, m] = eig[1, 0, m] = sgn * e * np.exp(-abs(zc[m] - g.interface_z()) / DECAY)
    P = torch.as_tensor(np.random.default_rng(0).uniform(-5e-5, 5e-5, (3, g.nz, g.n, g.n)))
    k = TERMS.index("dmi")
    for d in (0.0, 0.1):
        mat = STO.with_(dmi=d)
        en = SlabEnergy(g, (mat, mat), TWIST, torch.as_tensor(eig))
        r = PhaseFieldSolver(en, RelaxSettings(dt=10, residual_tol_V_per_m=1.0, max_steps=40)).relax(P)
        assert r.energy_terms.shape[0] == len(TERMS)
        assert np.all(np.diff(r.energy) <= 1e-12 * np.abs(r.energy).max())
        if d == 0:
            assert np.all(r.energy_terms[k] == 0)
        else:
            assert r.energy_terms[k, -1] < 0
            assert r.energy[-1] < r.energy[0] - 1e-6 * abs(r.energy[0])
        P = r.P


def test_config_key_default_off_and_threshold():
    from twistox.phasefield.settings import validated

    pf = validated({})
    assert pf["material"]["dmi"] == 0.0 and pf["material"]["dmi_decay_A"] == pytest.approx(3.905)
    mat = material_from_config(pf["material"], pf["temperature_K"])
    assert mat.dmi == 0.0
    g = _grid(n=8)
    en = SlabEnergy(g, (mat, mat), TWIST)
    assert not en.dmi.active
    pf = validated({"material": {"dmi": 0.02}})
    assert material_from_config(pf["material"], 300.0).dmi == 0.02
    # bulk threshold of the paraelectric: alpha1 + G k²/2 - D k < 0 for some k iff D > sqrt(2 alpha1 G)
    a1 = alpha1_pertsev(300.0)
    Dc = critical_dmi(a1, 1e-10)
    k = Dc / 1e-10
    assert a1 + 1e-10 * k ** 2 / 2 - Dc * k == pytest.approx(0.0, abs=1e-6 * a1)
