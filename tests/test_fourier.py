"""Gridding and the truncated Fourier series against analytic periodic fields."""

import numpy as np
import pytest

from twistox.strain.fourier import dominant_period, fourier_eval, fourier_fit, fourier_grid
from twistox.strain.gridding import NonFiniteFieldError, grid_complete, grid_coords, grid_periodic, grid_size

L = 17.3


def band_limited(N, seed=0):
    """Random real field with |h|, |k| <= N: Hermitian coefficients c[h + N, k + N]."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(2 * N + 1, 2 * N + 1)) + 1j * rng.normal(size=(2 * N + 1, 2 * N + 1))
    c = 0.5 * (c + np.conj(c[::-1, ::-1]))
    return c


def test_band_limited_field_is_fit_exactly():
    N = 6
    c = band_limited(N)
    for n in (13, 24, 31):  # odd and even grids, just above 2N
        field = fourier_grid(c, L, n)
        fit = fourier_fit(field, N)
        assert np.abs(fit - c).max() < 1e-12
        assert np.abs(fourier_grid(fit, L, n) - field).max() < 1e-12


def test_fit_is_hermitian_and_matches_point_evaluation():
    N = 3
    c = band_limited(N, seed=1)
    fit = fourier_fit(fourier_grid(c, L, 20), N)
    assert np.allclose(fit, np.conj(fit[::-1, ::-1]), atol=1e-14)
    # convention: h along x, k along y
    c1 = np.zeros((2 * N + 1, 2 * N + 1), complex)
    c1[N + 1, N] = c1[N - 1, N] = 0.5  # cos(2 pi x / L)
    g = grid_coords(L, 20)
    X, Y = np.meshgrid(g, g)
    assert np.allclose(fourier_grid(c1, L, 20), np.cos(2 * np.pi * X / L))
    assert np.allclose(fourier_fit(np.cos(2 * np.pi * X / L), N), c1, atol=1e-14)


def test_truncation_drops_only_higher_harmonics():
    g = grid_coords(L, 40)
    X, Y = np.meshgrid(g, g)
    f = np.sin(2 * np.pi * 2 * X / L) + 0.3 * np.cos(2 * np.pi * 9 * Y / L)
    N = 6
    fit = fourier_fit(f, N)
    rec = fourier_grid(fit, L, 40)
    assert np.allclose(rec, np.sin(2 * np.pi * 2 * X / L), atol=1e-12)
    assert np.sqrt(np.mean((f - rec) ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=1e-9)


def test_grid_order_check():
    with pytest.raises(ValueError, match="fourier_order"):
        fourier_fit(np.zeros((10, 10)), 6)


def _atoms_on_lattice(n_side, L, seed=0):
    rng = np.random.default_rng(seed)
    s = (np.arange(n_side) + 0.5) / n_side
    X, Y = np.meshgrid(s * L, s * L)
    xy = np.stack([X.ravel(), Y.ravel()], 1) + rng.normal(scale=0.05, size=(n_side * n_side, 2))
    return np.mod(xy, L)


def test_gridding_a_periodic_field_has_no_seam():
    xy = _atoms_on_lattice(25, L)
    f = lambda p: np.sin(2 * np.pi * p[:, 0] / L) * np.cos(2 * np.pi * 2 * p[:, 1] / L)  # noqa: E731
    n = 36
    sigma = 0.6
    grid = grid_periodic(xy, f(xy), L, n, sigma)
    # translating the atoms by half the cell rolls the grid by exactly half: the edge is not special
    shifted = grid_periodic(np.mod(xy + L / 2, L), f(xy), L, n, sigma)
    assert np.abs(np.roll(grid, (n // 2, n // 2), axis=(0, 1)) - shifted).max() < 1e-12
    # error against the analytic field is the same at the cell edge as inside
    g = grid_coords(L, n)
    X, Y = np.meshgrid(g, g)
    exact = np.sin(2 * np.pi * X / L) * np.cos(2 * np.pi * 2 * Y / L)
    # on a near-uniform set of points the kernel average is a Gaussian convolution, which
    # damps the (1, 2) mode by exp(-2 pi^2 sigma^2 (1 + 4) / L^2) (~11 % here)
    damp = np.exp(-2 * np.pi**2 * sigma**2 * 5 / L**2)
    err = np.abs(grid - damp * exact)
    assert err.max() < 0.05  # the rest: discreteness of the 0.05 Å-jittered points
    edge = np.concatenate([err[0], err[-1], err[:, 0], err[:, -1]])
    assert edge.max() <= 1.2 * err[5:-5, 5:-5].max()
    # jump across the seam is no larger than between interior neighbours
    assert np.abs(grid[:, 0] - grid[:, -1]).max() <= 1.1 * np.abs(np.diff(grid, axis=1)).max()


def test_gridding_constant_and_vector_fields():
    xy = _atoms_on_lattice(10, L, seed=3)
    v = np.tile([0.25, -1.5], (len(xy), 1))
    g = grid_periodic(xy, v, L, grid_size(L, 0.5), 0.8)
    assert g.shape == (36, 36, 2)
    assert np.allclose(g[..., 0], 0.25) and np.allclose(g[..., 1], -1.5)


def test_dominant_period():
    g = grid_coords(L, 32)
    X, Y = np.meshgrid(g, g)
    f = np.cos(2 * np.pi * (X + Y) / L) + 0.2 * np.cos(2 * np.pi * 3 * X / L)
    period, hk = dominant_period(f, L)
    assert period == pytest.approx(L / np.sqrt(2))
    assert abs(hk[0]) == 1 and abs(hk[1]) == 1
    # point evaluation of the fitted series at arbitrary points
    c = fourier_fit(f, 4)
    pts = np.array([0.1, 3.3, 16.0])
    assert np.allclose(fourier_eval(c, pts, pts[::-1], L),
                       np.cos(2 * np.pi * (pts + pts[::-1]) / L) + 0.2 * np.cos(2 * np.pi * 3 * pts / L))


def test_dominant_period_flat_and_stacked_fields():
    g = grid_coords(L, 32)
    X, Y = np.meshgrid(g, g)
    # round-off of an ideal lattice has no period (it used to return a random harmonic)
    noise = 1e-16 * np.random.default_rng(0).normal(size=(32, 32))
    assert np.isnan(dominant_period(noise, L, atol=1e-9)[0])
    assert np.isnan(dominant_period(np.full((32, 32), 7.0), L)[0])
    # two planes with opposite patterns reinforce (power summed), a cancelling sum would have none
    f = np.cos(2 * np.pi * 2 * X / L)
    assert dominant_period(np.stack([f, -f]), L)[0] == pytest.approx(L / 2)


def test_nonfinite_field_is_never_fit_silently():
    """A NaN in a gridded field used to skip its fit and leave zero coefficients (issue 14 item 3)."""
    f = np.ones((20, 20))
    f[3, 4] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        fourier_fit(f, 3)
    # gridding: a kernel too narrow for the atom spacing leaves holes -> one clear error naming the fix
    xy = _atoms_on_lattice(8, L)
    with pytest.raises(NonFiniteFieldError, match="smoothing_sigma"):
        grid_complete(xy, np.ones(len(xy)), L, 40, 0.05, "test field")
    # atoms with NaN values are left out; where others reach, the grid stays complete
    v = np.ones(len(xy))
    v[0] = np.nan
    assert np.allclose(grid_complete(xy, v, L, 20, 1.5, "test field"), 1.0)
