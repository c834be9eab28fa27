"""twistox.analysis.periodicity: periods of synthetic line patterns (within 2 %), line spacings, moiré sites."""

import numpy as np
import pytest

from twistox.analysis.periodicity import dominant_period_2d, field_maxima, fourier_period, line_spacing, moire_sites


def _lines(period, width=500.0, dx=0.37, fringe=3.905, noise=0.0, seed=0, nz=30):
    """Cross-section-like image: atomic fringes + Gaussian dark lines every `period` Å (+ noise)."""
    lat = np.arange(int(width / dx)) * dx
    prof = 1 + 0.4 * np.cos(2 * np.pi * lat / fringe)
    d = (lat % period) - period / 2
    prof = prof - 0.5 * np.exp(-(d**2) / (2 * 3.0**2))
    img = np.tile(prof, (nz, 1))
    if noise:
        img = img + noise * np.random.default_rng(seed).standard_normal(img.shape)
    return img, lat


@pytest.mark.parametrize("period", [40.0, 30.0, 45.3, 31.8])
def test_paper_scale_dark_line_spacing_within_2_percent(period):
    img, _ = _lines(period, noise=0.3)
    sp = line_spacing(img, 0.37, min_period=12.0)
    assert sp.mean == pytest.approx(period, rel=0.02)
    assert sp.n >= int(500 / period) - 2
    assert sp.std < 0.05 * period
    assert sp.fourier.value == pytest.approx(period, rel=0.02)
    assert abs(sp.fourier.value - period) <= sp.fourier.uncertainty      # the stated uncertainty covers the error


def test_line_spacing_statistics_of_irregular_lines():
    """Lines spaced 40 ± 3 Å (random): mean and std of the neighbour distances are returned."""
    rng = np.random.default_rng(5)
    pos = np.cumsum(rng.normal(40.0, 3.0, 14))
    dx = 0.4
    lat = np.arange(int((pos[-1] + 40) / dx)) * dx
    prof = 1 - 0.6 * sum(np.exp(-((lat - p) ** 2) / 8.0) for p in pos)
    sp = line_spacing(prof, dx, min_period=12.0)
    true = np.diff(pos)
    assert sp.n == true.size
    assert sp.mean == pytest.approx(true.mean(), abs=0.05)
    assert sp.std == pytest.approx(true.std(ddof=1), abs=0.1)


def test_periodic_line_spacing_includes_wrap():
    L = 4 * 11.3
    lat = np.arange(200) * L / 200
    prof = 1 - np.exp(-(((lat + 2.0) % 11.3 - 5.0) ** 2) / 2.0)
    sp = line_spacing(prof, L / 200, min_period=6.0, periodic=True)
    assert sp.n == 4 and sp.mean == pytest.approx(11.3, rel=1e-3)
    assert sp.fourier.value == pytest.approx(11.3) and sp.fourier.uncertainty == 0.0


def test_fourier_period_of_profile():
    x = np.arange(2000) * 0.25
    p = np.cos(2 * np.pi * x / 37.7) + 0.5 * np.cos(2 * np.pi * x / 3.905)
    assert fourier_period(p, 0.25, min_period=8.0).value == pytest.approx(37.7, rel=0.005)
    with pytest.raises(ValueError, match="finite 1D"):
        fourier_period(np.array([1.0, np.nan, 2, 3, 4]), 1.0)


def test_dominant_period_2d_periodic_and_windowed():
    L, n = 40.0, 64
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    f = np.cos(2 * np.pi * (X + Y) / L)                      # wavevector (1, 1)/L: period L/√2 along 45°
    p = dominant_period_2d(f, L / n, L / n)
    assert p.value == pytest.approx(L / np.sqrt(2)) and p.direction_deg == pytest.approx(45.0)
    xs = np.arange(300) * 0.5
    X, Y = np.meshgrid(xs, xs)
    a = np.deg2rad(20)
    g = np.cos(2 * np.pi * (X * np.cos(a) + Y * np.sin(a)) / 23.4)
    q = dominant_period_2d(g, 0.5, 0.5, periodic=False)
    assert q.value == pytest.approx(23.4, rel=0.01) and q.direction_deg == pytest.approx(20.0, abs=1.0)


def test_field_maxima_between_grid_points():
    L, n = 8.73, 20
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    k = 2 * np.pi / L
    m = field_maxima(np.abs(np.cos(k * X) + np.cos(k * Y)), x, x)
    got = sorted(map(tuple, np.round(m, 6)))
    assert got == sorted([(0.0, 0.0), (round(L / 2, 6), round(L / 2, 6))])
    m2 = field_maxima(np.cos(k * (X - 1.1)) + np.cos(k * (Y - 2.0)), x, x)
    np.testing.assert_allclose(m2, [[1.1, 2.0]], atol=0.02)


@pytest.mark.parametrize("m, n", [(3, 1), (5, 1), (4, 1), (7, 2)])
def test_moire_sites_are_registry_points(m, n):
    """Sites count L²/λ², sit λ apart, and at a coincidence site both layers' lattices have the same
    fractional offset (local registry 0); at anti-coincidence sites it is (1/2, 1/2)."""
    a = 3.905
    theta = 2 * np.degrees(np.arctan2(n, m))
    frame = 45.0 if (m % 2 and n % 2) else 0.0
    sigma = (m * m + n * n) // (2 if (m % 2 and n % 2) else 1)
    L = a * np.sqrt(sigma)
    lam = a / (2 * np.sin(np.radians(theta) / 2))
    angles = [frame - theta / 2, frame + theta / 2]
    origins = [np.array([0.3, 0.7]), np.array([1.1, -0.4])]
    aa = moire_sites(a, angles, origins, L)
    ab = moire_sites(a, angles, origins, L, shift=(0.5, 0.5))
    assert len(aa) == len(ab) == round(L**2 / lam**2)
    if len(aa) > 1:
        d = aa[1:] - aa[0]
        d = d - L * np.round(d / L)
        assert np.hypot(d[:, 0], d[:, 1]).min() == pytest.approx(lam, rel=1e-6)

    def frac(r, k):
        c, s = np.cos(np.radians(-angles[k])), np.sin(np.radians(-angles[k]))
        v = np.array([[c, -s], [s, c]]) @ (r - origins[k]) / a
        return v

    for r in aa:
        diff = frac(r, 1) - frac(r, 0)
        np.testing.assert_allclose(diff - np.round(diff), 0, atol=1e-9)
    for r in ab:
        diff = frac(r, 1) - frac(r, 0) - 0.5
        np.testing.assert_allclose(diff - np.round(diff), 0, atol=1e-9)
