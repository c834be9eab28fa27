"""Phase field: dt-independent convergence, eigenstrain through the stack, flexo sign, analytic network,
non-finite input, and schema-only defaults (issues 13, 14, 15)."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
import torch

from test_phasefield import STO, _pf_config, _rot90_field, write_synthetic_strain
from twistox.core.config import ConfigError
from twistox.phasefield import Grid, PhaseFieldSolver, RelaxSettings, SlabEnergy
from twistox.phasefield.eigenstrain import fit_decay, fourier_field, profile_coefficients, stack_strain
from twistox.phasefield.materials import FLEXO_PRESETS, flexo_coefficients, material_from_config
from twistox.phasefield.network import line_counts, network_coefficients, network_nodes
from twistox.phasefield.settings import check_config, schema_defaults
from twistox.phasefield.stage import build_eigenstrain, run

torch.set_num_threads(1)


def _shear_model(mat=STO, n=12, nz=8, L=1.2e-9, angles=(-10.0, 10.0)):
    g = Grid(L=L, n=n, nz=nz, thickness=3.2e-9, interface_cell=nz // 2)
    x = g.x_centres()
    k = 2 * math.pi / L
    w = torch.exp(-(g.z_centres() - g.interface_z()).abs() / 4e-10)[:, None, None]
    eig = torch.zeros(3, 3, nz, n, n, dtype=torch.float64)
    eig[0, 1] = eig[1, 0] = 0.01 * w * (torch.cos(k * x)[None, :] + torch.cos(k * x)[:, None])
    eig[0, 0] = 0.005 * w * torch.sin(k * x)[None, :]
    return SlabEnergy(g, (mat, mat), angles, eig)


# --- issue 13 item 5: convergence on the residual, independent of the initial dt -------------------

def test_converged_P_does_not_depend_on_initial_dt():
    """dt = 0.01 and dt = 1000 end at the same P (1e-4 relative). The old solver (dt only halves, stop on
    |dF| per step) stops the small-dt run after a few tiny steps, far from the minimum."""
    E = _shear_model()
    P0 = 5e-5 * (2 * torch.rand(3, 8, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) - 1)
    out = []
    for dt in (0.01, 1000.0):
        r = PhaseFieldSolver(E, RelaxSettings(dt=dt, residual_tol_V_per_m=1e-3, max_steps=300)).relax(P0)
        assert r.converged and r.stop_reason == "residual", (dt, r.stop_reason, r.steps)
        assert r.residual[-1] < 1e-3 and np.all(np.diff(r.energy) <= 1e-12 * np.abs(r.energy).max())
        out.append(r.P.numpy())
    scale = np.abs(out[0]).max()
    assert scale > 1e-4
    assert np.abs(out[0] - out[1]).max() < 1e-4 * scale
    # the plain semi-implicit (TDGL) steps reach the same minimum, more slowly
    r = PhaseFieldSolver(E, RelaxSettings(method="tdgl", dt=1000.0, residual_tol_V_per_m=1.0, max_steps=300)).relax(P0)
    assert r.converged and np.abs(r.P.numpy() - out[1]).max() < 1e-4 * scale


def test_dt_grows_after_accepted_steps():
    E = _shear_model()
    s = PhaseFieldSolver(E, RelaxSettings(dt=0.01, dt_grow=2.0, dt_max=50.0, residual_tol_V_per_m=1e-30, max_steps=12))
    r = s.relax(torch.zeros(3, 8, 12, 12, dtype=torch.float64))
    assert r.stop_reason == "max_steps" and r.rejected == 0
    assert s.dt == pytest.approx(min(0.01 * 2 ** 12, 50.0))


# --- issue 13 item 7: flexocoupling sign -----------------------------------------------------------

def test_reversing_flexocoupling_reverses_P():
    """P is odd in f: P(-f) = -P(f) (linear response; the quartic and QPP terms are even in P)."""
    sols = []
    for sgn in (1.0, -1.0):
        mat = STO.with_(f11=sgn * STO.f11, f12=sgn * STO.f12, f44=sgn * STO.f44)
        r = PhaseFieldSolver(_shear_model(mat), RelaxSettings(residual_tol_V_per_m=1e-4, max_steps=300)).relax(
            torch.zeros(3, 8, 12, 12, dtype=torch.float64))
        assert r.converged
        sols.append(r.P.numpy())
    scale = np.abs(sols[0]).max()
    assert scale > 1e-4
    assert np.abs(sols[0] + sols[1]).max() < 1e-4 * scale


def test_flexo_presets_are_cited_and_marked():
    base = _pf_config()["material"]
    f, prov = flexo_coefficients({**base, "flexo_source": "zubko2007"})
    # f = c F with F11, F12, F44 = 2.46, 0.48, 0.05 e-11 m^3/C and Pertsev's c: 9.30, 4.76, 0.064 V
    assert f == pytest.approx((3.36e11 * 2.46e-11 + 2 * 1.07e11 * 0.48e-11,
                               1.07e11 * 2.46e-11 + (3.36e11 + 1.07e11) * 0.48e-11, 1.27e11 * 0.05e-11))
    assert prov["flexo_verified"] is False and "Zubko" in prov["flexo_citation"]
    assert material_from_config({**base, "flexo_source": "zubko2007"}, 300.0).f11 == pytest.approx(f[0])
    with pytest.raises(ValueError, match="hong_vanderbilt2013"):
        flexo_coefficients({**base, "flexo_source": "hong_vanderbilt2013"})
    with pytest.raises(ConfigError, match="phasefield.material.flexo_source"):
        check_config(_pf_config(material={"flexo_source": "hong_vanderbilt2013"}))
    # Zubko's f11 ~ 9 V needs a larger gradient coefficient than G = 1e-10 (f^2/c < G)
    with pytest.raises(ConfigError, match="flexocoupling too strong"):
        check_config(_pf_config(material={"flexo_source": "zubko2007"}))
    check_config(_pf_config(material={"flexo_source": "zubko2007", "G": 1e-9}))
    assert set(FLEXO_PRESETS) == {"zubko2007", "hong_vanderbilt2013"}


# --- issue 13 item 6: eigenstrain through the stack ------------------------------------------------

def test_fitted_profile_recovers_known_decay(tmp_path):
    """Per-plane strain decaying as exp(-d / 3 Å): the fit gives 3 Å in both layers, the slab cells at a
    plane's distance carry that plane's field, and cells beyond the stack follow the fitted tail."""
    ds = write_synthetic_strain(tmp_path / "strain.zarr", decay_A=3.0)
    st = stack_strain(ds, 6)
    assert st.coef.shape[0] == 10 and set(st.layer.tolist()) == {0, 1}
    d_cells = np.array([0.2, st.d[st.layer == 1].min(), 5.0, 30.0])
    for lay in (0, 1):
        cells, fit = profile_coefficients(st, d_cells, np.full(4, lay), "fitted", 3.905)
        assert fit[f"eigenstrain_decay_fit_A_layer{lay}"] == pytest.approx(3.0, rel=1e-6)
        assert fit[f"eigenstrain_planes_layer{lay}"] == 5
        N = st.order
        c1 = cells[:, 2, N + 1, N]  # eps_xy harmonic (1, 0): amp/2 exp(-d/3) with the layer's sign
        sign = 1 if lay else -1
        expect = sign * 0.005 * np.exp(-np.maximum(d_cells, st.d.min()) / 3.0)
        assert c1.real == pytest.approx(expect, rel=2e-2, abs=1e-12)  # linear interpolation of an exponential
        assert c1[-1].real == pytest.approx(expect[-1], rel=1e-6)      # the fitted tail
    pf = _pf_config(thickness_A=24.0, nz=8, dxy_A=0.8)
    eig, grid, attrs = build_eigenstrain(pf, ds)
    assert attrs["eigenstrain_decay_fit_A_layer0"] == pytest.approx(3.0, rel=1e-6)
    xy = np.abs(eig[0, 1]).max((1, 2))
    assert xy[3] > xy[0] and xy[4] > xy[7]  # strongest next to the interface


def test_fit_decay_no_decay_is_infinite():
    ell, a0, _ = fit_decay(np.array([1.0, 3.0, 5.0]), np.array([1.0, 1.1, 1.2]))
    assert ell == float("inf")
    ell, a0, rms = fit_decay(np.array([1.0, 3.0, 5.0]), 2.0 * np.exp(-np.array([1.0, 3.0, 5.0]) / 7.0))
    assert ell == pytest.approx(7.0) and a0 == pytest.approx(2.0) and rms < 1e-12


def test_exponential_and_elastic_profiles_are_explicit(tmp_path):
    ds = write_synthetic_strain(tmp_path / "strain.zarr", decay_A=3.0)
    st = stack_strain(ds, 6)
    d = np.array([0.0, 3.905, 7.81])
    c, fit = profile_coefficients(st, d, np.ones(3, int), "exponential", 3.905)
    N = st.order
    c0 = st.coef[np.argmin(np.where(st.layer == 1, st.d, np.inf))]
    assert c[:, 2, N + 1, N] == pytest.approx(c0[2, N + 1, N] * np.exp(-d / 3.905))
    c, _ = profile_coefficients(st, d, np.ones(3, int), "elastic", 3.905)
    q = 2 * np.pi / st.L
    assert c[:, 2, N + 1, N] == pytest.approx(c0[2, N + 1, N] * np.exp(-q * d))
    with pytest.raises(ValueError, match="profile"):
        profile_coefficients(st, d, np.ones(3, int), "linear", 3.905)


def test_non_finite_strain_is_one_clear_error(tmp_path):
    ds = write_synthetic_strain(tmp_path / "strain.zarr", bad=(7, np.nan))
    with pytest.raises(ValueError, match=r"eps_global has 1 non-finite values on planes \[7\]"):
        run(_pf_config(thickness_A=24.0, nz=8, dxy_A=0.8), ds, "cpu", seed=1)


def test_fitted_needs_two_planes_per_layer(tmp_path):
    ds = write_synthetic_strain(tmp_path / "strain.zarr", planes_per_layer=1)
    with pytest.raises(ValueError, match="fitted"):
        build_eigenstrain(_pf_config(thickness_A=24.0, nz=8, dxy_A=0.8), ds)
    eig, _, attrs = build_eigenstrain(_pf_config(thickness_A=24.0, nz=8, dxy_A=0.8,
                                                 eigenstrain={"profile": "exponential"}), ds)
    assert attrs["eigenstrain_decay_A"] == 3.905 and np.abs(eig).max() > 0


def test_eigenstrain_from_the_bo2_planes_only(tmp_path):
    """plane_kinds [BO2]: the coefficients are those of the BO2 planes (plane_kind 1), at their own distance from
    the interface face of the whole stack; unknown kinds and a strain.zarr without plane_kind are clear errors."""
    ds = write_synthetic_strain(tmp_path / "strain.zarr", decay_A=3.0)  # 5 + 5 planes, plane_kind = plane % 2
    full = stack_strain(ds, 6)
    bo2 = stack_strain(ds, 6, ["BO2"])
    keep = np.flatnonzero(ds["plane_kind"].values == 1)
    assert bo2.coef.shape[0] == 5 and np.array_equal(bo2.layer, full.layer[keep])
    np.testing.assert_allclose(bo2.coef, full.coef[keep])
    np.testing.assert_allclose(bo2.d, full.d[keep])
    assert bo2.info["eigenstrain_plane_kinds"] == ["BO2"] and full.info["eigenstrain_plane_kinds"] == ["AO", "BO2"]
    cells, fit = profile_coefficients(bo2, np.array([1.0, 5.0]), np.array([0, 1]), "fitted", 3.905)
    assert fit["eigenstrain_decay_fit_A_layer1"] == pytest.approx(3.0, rel=1e-6)  # the same decay from fewer planes
    with pytest.raises(ValueError, match=r"plane_kinds: \['TiO2'\]; allowed"):
        stack_strain(ds, 6, ["TiO2"])
    with pytest.raises(ValueError, match="no plane_kind coordinate"):
        stack_strain(ds.drop_vars("plane_kind"), 6, ["AO"])
    pf = _pf_config(thickness_A=24.0, nz=8, dxy_A=0.8, eigenstrain={"plane_kinds": ["BO2"]})
    eig, _, attrs = build_eigenstrain(pf, ds)
    assert attrs["eigenstrain_planes_layer0"] == 2 and attrs["eigenstrain_planes_layer1"] == 3


# --- issue 13: analytic square screw-dislocation network -------------------------------------------

SIGMA265 = dict(L=3.905 * math.sqrt(265), lam=3.905 / (2 * math.sin(math.radians(4.98 / 2))))


def _crystal_shear(c: np.ndarray, L: float, n: int, phi: float) -> np.ndarray:
    """eps_st = eps_xy / cos 2phi (or -eps_xx / sin 2phi) on the n x n grid."""
    x = (np.arange(n) + 0.5) * L / n
    N = (c.shape[-1] - 1) // 2
    hs = np.arange(-N, N + 1)
    f = fourier_field(c, hs, hs, L, x)
    s2 = math.sin(math.radians(2 * phi))
    return -f[0] / s2 if abs(s2) > 0.5 else f[2] / math.cos(math.radians(2 * phi))


@pytest.mark.parametrize("phi", [0.0, 45.0])
def test_network_shear_on_lines_with_period(phi):
    L, n, w, b = 60.0, 120, 1.5, 3.9
    lam = L / 2 if phi == 0 else L / math.sqrt(2)
    c = network_coefficients(L, lam, phi, w, b, 1.0, order=12)
    e = _crystal_shear(c, L, n, phi)
    assert abs(e.mean()) < 1e-12 * np.abs(e).max()                     # zero mean
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    r = math.radians(phi)
    s, t = X * math.cos(r) + Y * math.sin(r), -X * math.sin(r) + Y * math.cos(r)
    ds_ = np.abs((s / lam - 0.5) - np.round(s / lam - 0.5)) * lam     # distance to the nearest t-line
    dt_ = np.abs((t / lam - 0.5) - np.round(t / lam - 0.5)) * lam
    on_t, on_s, off = (ds_ < 0.5 * w) & (dt_ > 4 * w), (dt_ < 0.5 * w) & (ds_ > 4 * w), (ds_ > 4 * w) & (dt_ > 4 * w)
    peak = b / 4 / (w * math.sqrt(2 * math.pi))
    assert e[on_t].min() > 0.7 * peak and e[on_s].max() < -0.7 * peak   # + on lines along t, - along s
    assert np.abs(e[off]).max() < 0.03 * peak                           # coherent domains
    # global-frame components: at 45 deg a crystal shear is eps_xx = -eps_yy, eps_xy = 0
    if phi == 45.0:
        assert np.abs(c[2]).max() < 1e-15 and np.allclose(c[0], -c[1])


def test_network_rotating_by_90_degrees_leaves_it_unchanged():
    L, lam, n = SIGMA265["L"], SIGMA265["lam"], 64
    c = network_coefficients(L, lam, 45.0, 2.0, 3.905, 1.0, order=6)
    x = (np.arange(n) + 0.5) * L / n
    N = (c.shape[-1] - 1) // 2
    hs = np.arange(-N, N + 1)
    xx, yy, xy = fourier_field(c, hs, hs, L, x)
    # eps'(r) = R eps(R^-1 r) R^T for R = +90 deg: xx' = yy(R^-1 r), yy' = xx(R^-1 r), xy' = -xy(R^-1 r)
    assert np.allclose(_rot90_field(yy), xx, atol=1e-12) and np.allclose(_rot90_field(xx), yy, atol=1e-12)
    assert np.allclose(-_rot90_field(xy), xy, atol=1e-12)
    assert np.abs(xx).max() > 0.01


def test_network_geometry_and_commensurability():
    L, lam = SIGMA265["L"], SIGMA265["lam"]
    assert line_counts(L, lam, 45.0) == (1, 1)
    nodes = network_nodes(L, lam, 45.0)
    assert nodes["nodes"].shape == (2, 2) and nodes["aa"].shape == (2, 2) and nodes["midpoints"].shape == (4, 2)
    L149, lam149 = 3.905 * math.sqrt(149), 3.905 / (2 * math.sin(math.radians(20.02 / 2)))
    assert line_counts(L149, lam149, 45.0) == (3, 3)
    with pytest.raises(ValueError, match="commensurate"):
        line_counts(L, 0.8 * lam, 45.0)


def test_analytic_network_source_runs_through_the_stage(tmp_path):
    ds = write_synthetic_strain(tmp_path / "strain.zarr")
    ds.attrs.update(moire_period=8.73 / math.sqrt(2), a=3.905, frame_angle_deg=45.0)
    pf = _pf_config(thickness_A=24.0, nz=8, dxy_A=0.8,
                    eigenstrain={"source": "analytic_network", "profile": "elastic", "network": {"coherence": 0.2}})
    eig, grid, attrs = build_eigenstrain(pf, ds)
    assert attrs["eigenstrain_source"] == "analytic_network" and attrs["network_period_A"] == pytest.approx(6.173, 1e-3)
    assert np.allclose(eig[:, :, :4], -eig[:, :, 4:][:, :, ::-1])  # bottom layer = -top, mirror in z
    with pytest.raises(ConfigError, match="eigenstrain.profile"):
        check_config(_pf_config(eigenstrain={"source": "analytic_network"}))


# --- issue 15: defaults only in the schema ---------------------------------------------------------

def test_library_defaults_are_the_schema_defaults():
    d = schema_defaults()
    rs = RelaxSettings()
    for f in fields(RelaxSettings):
        assert getattr(rs, f.name) == d[f.name], f.name
    assert RelaxSettings.from_config(d) == rs
    check_config(d)  # the schema's defaults pass the semantic checks


def test_material_dataclass_defaults_match_schema():
    """Material fields that carry a dataclass default (interface terms added later) agree with the schema."""
    from dataclasses import MISSING

    from twistox.phasefield import Material

    mat = schema_defaults()["material"]
    for f in fields(Material):
        if f.default is not MISSING:
            assert f.name in mat and mat[f.name] == f.default, f.name
