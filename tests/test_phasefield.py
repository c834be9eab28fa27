"""Phase-field stage: physics against analytic answers, energy decrease, symmetry, I/O, resume."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import xarray as xr

from twistox.core.config import ConfigError
from twistox.core.io import read_dataset, write_dataset
from twistox.phasefield import (Grid, Material, PhaseFieldSolver, RelaxSettings, SlabEnergy, alpha1_pertsev,
                                landau_minimum_inplane)
from twistox.phasefield.eigenstrain import fourier_field
from twistox.phasefield.materials import cubic_tensor, rotate_tensor4
from twistox.phasefield.stage import check_config, run

torch.set_num_threads(1)
STO = Material(alpha1=alpha1_pertsev(300.0), alpha11=1.70e9, alpha12=1.37e9, G=1e-10, c11=3.36e11, c12=1.07e11,
               c44=1.27e11, Q11=0.066, Q12=-0.0135, Q44=0.0096, f11=2.0, f12=1.0, f44=1.0, eps_b=10.0)


def _pf_config(**over) -> dict:
    """The phasefield section validated (defaults filled) by its own schema, as validate_config does."""
    from twistox.core.config import _check, _schema

    cfg = copy.deepcopy(over)
    _check(cfg, _schema("phasefield"), ("phasefield",))
    return cfg


def test_alpha1_pertsev_room_temperature():
    # 4.05e7 [coth(0.18) - coth(1.8)] = 1.846e8 J m/C^2 -> eps_r = 1/(2 eps0 a1) ~ 306 (SrTiO3 at 300 K)
    a1 = alpha1_pertsev(300.0)
    assert a1 == pytest.approx(1.8464e8, rel=1e-3)
    assert 1.0 / (2 * 8.8541878128e-12 * a1) == pytest.approx(306, rel=0.01)


def test_tensor_rotation_cubic_invariance():
    c = cubic_tensor(3.36e11, 1.07e11, 1.27e11)
    assert np.allclose(rotate_tensor4(c, 90.0), c, rtol=0, atol=1e-3)
    r = rotate_tensor4(c, 45.0)
    # C'_1111 at 45 deg = (c11 + c12 + 2 c44) / 2
    assert r[0, 0, 0, 0] == pytest.approx((3.36e11 + 1.07e11 + 2 * 1.27e11) / 2, rel=1e-12)


def test_ferroelectric_uniform_P_relaxes_to_landau_minimum():
    """(1) alpha1 < 0: a uniform in-plane P relaxes to the stress-free Landau minimum ([110] of the crystal)."""
    fe = STO.with_(alpha1=-5e7)
    g = Grid(L=1.2e-9, n=8, nz=8, thickness=3.2e-9, interface_cell=4)
    angle = 20.0
    solver = PhaseFieldSolver(SlabEnergy(g, (fe, fe), (angle, angle)),
                              RelaxSettings(dt=10, residual_tol_V_per_m=1e-2, max_steps=400))
    P0 = torch.zeros(3, 8, 8, 8, dtype=torch.float64)
    P0[0], P0[1] = 0.05, 0.02
    r = solver.relax(P0)
    assert r.converged
    Pm, fmin = landau_minimum_inplane(fe)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    P = r.P.mean((1, 2, 3)).numpy()
    Pc = np.array([c * P[0] + s * P[1], -s * P[0] + c * P[1]])  # crystal frame of the layer
    assert np.abs(Pc) == pytest.approx(Pm[:2], rel=2e-3)
    assert abs(P[2]) < 1e-6
    f = r.energy[-1] * 1e-18 / (g.L ** 2 * g.thickness)
    assert f == pytest.approx(fmin, rel=2e-3)
    # free membrane: electrostrictive strain Q P P is taken up by the mean strain, not stressed
    assert abs(r.energy_terms[2, -1]) < 1e-4 * abs(r.energy[-1])


def test_paraelectric_shear_eigenstrain_linear_response():
    """(2) SrTiO3 at 300 K, eps*_xy = e0 sin(qx), uniform in z: 1D equilibrium gives sigma_xy = 0, i.e.
    e_xy = e* + f44 P_y'/(2 c44), no depolarising field (div P = d_y P_y = 0), and the TDGL
    2 a1 P_y - G P_y'' + 2 f44 d_x e_xy = 0 gives P_y = A cos(qx), A = -2 f44 e0 q / (2 a1 + (G - f44^2/c44) q^2)."""
    L, n, nz = 1.4e-9, 16, 8
    g = Grid(L=L, n=n, nz=nz, thickness=0.4e-9 * nz, interface_cell=nz // 2)
    x = g.x_centres()
    e0, q = 1e-3, 2 * math.pi / L
    eig = torch.zeros(3, 3, nz, n, n, dtype=torch.float64)
    eig[0, 1] = eig[1, 0] = e0 * torch.sin(q * x)[None, None, :]
    solver = PhaseFieldSolver(SlabEnergy(g, (STO, STO), (0.0, 0.0), eig),
                              RelaxSettings(dt=10, residual_tol_V_per_m=1e-2, max_steps=400))
    r = solver.relax(1e-5 * torch.randn(3, nz, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    assert r.converged
    A = -2 * STO.f44 * e0 * q / (2 * STO.alpha1 + (STO.G - STO.f44 ** 2 / STO.c44) * q ** 2)
    amp = (r.P[1] * torch.cos(q * x)).mean((1, 2)) * 2  # per z cell
    assert amp.numpy() == pytest.approx(A, rel=1e-2)
    assert amp.numpy() == pytest.approx(A, rel=1e-3)  # exact up to the (tiny) quartic and electrostrictive terms
    assert float(r.P[0].abs().max()) < 1e-3 * abs(A) and float(r.P[2].abs().max()) < 1e-3 * abs(A)
    # flexoelectric sign: P_y follows -f44 d(e_xy)/dx
    assert A < 0


def test_energy_never_increases_and_resume(tmp_path):
    """(3) F is non-increasing every step (rejected steps retried with dt/2); a checkpoint resumes identically."""
    L, n, nz = 1.2e-9, 12, 8
    g = Grid(L=L, n=n, nz=nz, thickness=3.2e-9, interface_cell=4)
    x = g.x_centres()
    k = 2 * math.pi / L
    eig = torch.zeros(3, 3, nz, n, n, dtype=torch.float64)
    eig[0, 1] = eig[1, 0] = 0.01 * (torch.cos(k * x)[None, :] + torch.cos(k * x)[:, None])[None]
    eig[0, 0] = 0.005 * torch.sin(k * x)[None, None, :]
    make = lambda ms: PhaseFieldSolver(SlabEnergy(g, (STO, STO), (-10.0, 10.0), eig),  # noqa: E731
                                       RelaxSettings(dt=10, residual_tol_V_per_m=1e-9, max_steps=ms, checkpoint_every=5))
    P0 = 5e-5 * (2 * torch.rand(3, nz, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) - 1)
    ref = make(30).relax(P0)
    d = np.diff(ref.energy)
    assert (d <= 1e-12 * np.abs(ref.energy).max()).all(), d.max()
    assert ref.energy[-1] < ref.energy[0]
    ck = tmp_path / "pf.ckpt.pt"
    part = make(10).relax(P0, checkpoint=ck, fingerprint="abc")
    assert part.steps == 10 and ck.exists()
    resumed = make(30).relax(P0, checkpoint=ck, fingerprint="abc")
    assert resumed.resumed_from == 10
    assert resumed.steps == ref.steps
    assert torch.allclose(resumed.P, ref.P, rtol=0, atol=1e-12)
    fresh = make(30).relax(P0, checkpoint=ck, fingerprint="other")  # foreign checkpoint is ignored
    assert fresh.resumed_from == 0


def _rot90_field(f: np.ndarray) -> np.ndarray:
    """Scalar field (y, x) on the cell-centred grid, rotated by +90 deg about z: f'(r) = f(R^-1 r)."""
    n = f.shape[-1]
    i = np.arange(n)
    # f'(x_i, y_j) = f(y_j, -x_i) -> f'[j, i] = f[y = n-1-i, x = j]
    return f[..., (n - 1 - i)[None, :], i[:, None]]


def test_rotating_eigenstrain_by_90_rotates_solution():
    """(4) eps*' = R eps* R^T (R = 90 deg about z): P' = R P(R^-1 r); cubic tensors are invariant."""
    L, n, nz = 1.2e-9, 12, 8
    g = Grid(L=L, n=n, nz=nz, thickness=3.2e-9, interface_cell=4)
    xa = g.x_centres().numpy()
    rng = np.random.default_rng(7)
    N = 2
    fields = []
    for _ in range(3):
        c = rng.normal(size=(2 * N + 1, 2 * N + 1)) + 1j * rng.normal(size=(2 * N + 1, 2 * N + 1))
        c = 0.5 * (c + np.conj(c[::-1, ::-1]))  # real field
        fields.append(2e-3 * fourier_field(c, np.arange(-N, N + 1), np.arange(-N, N + 1), L, xa))
    exx, eyy, exy = fields
    w = np.exp(-np.abs(g.z_centres().numpy() - g.interface_z()) / 4e-10)[:, None, None]

    def eig_of(xx, yy, xy):
        e = np.zeros((3, 3, nz, n, n))
        e[0, 0], e[1, 1], e[0, 1], e[1, 0] = w * xx, w * yy, w * xy, w * xy
        return torch.as_tensor(e)

    def solve(e):
        s = PhaseFieldSolver(SlabEnergy(g, (STO, STO), (-18.43, 18.43), e),
                             RelaxSettings(dt=10, residual_tol_V_per_m=1e-3, max_steps=400))
        r = s.relax(torch.zeros(3, nz, n, n, dtype=torch.float64))
        assert r.converged
        return r.P.numpy()

    P = solve(eig_of(exx, eyy, exy))
    Pr = solve(eig_of(_rot90_field(eyy), _rot90_field(exx), -_rot90_field(exy)))
    expect = np.stack([-_rot90_field(P[1]), _rot90_field(P[0]), _rot90_field(P[2])])
    scale = np.abs(P).max()
    assert scale > 1e-4
    assert np.abs(Pr - expect).max() < 1e-4 * scale


def write_synthetic_strain(path, L=8.73, angles=(-18.435, 18.435), decay_A=3.0, planes_per_layer=5, n=32,
                           amp=0.01, bad=None):
    """strain.zarr per docs/architecture.md: eps_global (global frame) on every plane, with
    eps_xy = +-amp (cos kx + cos ky) exp(-d / decay_A) (sign per layer) and eps_xx = amp/4 sin(kx) times the
    same profile; d = distance of the plane from the interface face. ``bad``: (plane, value) to inject."""
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    k = 2 * np.pi / L
    dz = 1.9525
    z = np.arange(2 * planes_per_layer) * dz
    layer = (np.arange(2 * planes_per_layer) >= planes_per_layer).astype(int)
    z_if = 0.5 * (z[planes_per_layer - 1] + z[planes_per_layer])
    eg = np.zeros((3, z.size, n, n))
    for p in range(z.size):
        w = np.exp(-abs(z[p] - z_if) / decay_A) * (1 if layer[p] else -1)
        eg[2, p] = amp * w * (np.cos(k * X) + np.cos(k * Y))
        eg[0, p] = 0.25 * amp * w * np.sin(k * X)
    if bad is not None:
        eg[2, bad[0], 3, 3] = bad[1]
    planes = np.arange(z.size)
    ip = [planes_per_layer - 1, planes_per_layer]
    ds = xr.Dataset({"eps_global": (("component", "plane", "y", "x"), eg, {"units": "1"})},
                    coords={"plane": planes, "component": ["xx", "yy", "xy"], "x": x, "y": x,
                            "plane_layer": ("plane", layer), "plane_z": ("plane", z, {"units": "Å"}),
                            "plane_kind": ("plane", planes % 2)},
                    attrs={"supercell_length": L, "interface_planes": ip, "layer_angles_deg": list(angles),
                           "theta_deg": 36.87, "fourier_order": 6, "interface_z": z_if})
    write_dataset(ds, path, stage="strain-synthetic")
    return read_dataset(path)


def test_stage_run_outputs(tmp_path):
    pf = _pf_config(thickness_A=24.0, nz=8, dxy_A=0.8, residual_tol_V_per_m=10.0, max_steps=200)
    check_config(pf)
    strain = write_synthetic_strain(tmp_path / "strain.zarr")
    ds, res = run(pf, strain, "cpu", seed=1234)
    n = ds.sizes["x"]
    assert n >= 13 and ds.sizes["z"] == 8
    for name, dims, units in (("P", ("component", "z", "y", "x"), "C/m²"), ("E", ("component", "z", "y", "x"), "V/Å"),
                              ("phi", ("z", "y", "x"), "V"), ("E_projected", ("xy", "y", "x"), "V"),
                              ("u", ("component", "z", "y", "x"), "Å"), ("energy", ("step",), "aJ")):
        assert ds[name].dims == dims and ds[name].attrs["units"] == units
    assert res.converged and ds.attrs["stop_reason"] == "residual"
    assert ds["residual"].values[-1] < 10.0 and ds["residual"].attrs["units"] == "V/m"
    assert ds.attrs["eigenstrain_profile"] == "fitted" and ds.attrs["flexo_source"] == "custom"
    # the shear network polarises the interface, and P decays away from it
    mag = np.sqrt((ds["P"].values ** 2).sum(0)).max((1, 2))
    zi = ds.attrs["interface_z"]
    z = ds["z"].values
    assert mag[np.argmin(np.abs(z - zi))] > 5 * mag[0]
    assert ds.attrs["max_abs_P"] > 1e-4
    ds2, _ = run(pf, strain, "cpu", seed=1234)  # seeded: same numbers
    assert np.array_equal(ds2["P"].values, ds["P"].values)
    write_dataset(ds, tmp_path / "phasefield.zarr", stage="phasefield")
    assert read_dataset(tmp_path / "phasefield.zarr")["P"].shape == ds["P"].shape


def test_bad_config_is_reported():
    with pytest.raises(ConfigError, match="phasefield.nz"):
        _pf_config(nz=3)
    with pytest.raises(ConfigError, match="phasefield.material.alpha1"):
        _pf_config(material={"alpha1": "hot"})
    with pytest.raises(ValueError, match="phasefield.nz"):
        check_config(_pf_config(nz=15))
    with pytest.raises(ValueError, match="initial_amplitude"):
        check_config(_pf_config(initial_amplitude=2e-4))
    with pytest.raises(ValueError, match="flexocoupling too strong"):
        check_config(_pf_config(material={"f44": 10.0, "G": 1e-11}))


def test_missing_strain_contract(tmp_path):
    ds = xr.Dataset({"eps_xy": (("y", "x"), np.zeros((4, 4)))}, attrs={"supercell_length": 8.7,
                                                                       "layer_angles_deg": [-2.5, 2.5]})
    with pytest.raises(ValueError, match="eps_global"):
        run(_pf_config(), ds, "cpu", seed=1)
