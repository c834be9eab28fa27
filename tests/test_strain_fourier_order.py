"""strain.fourier_order counts harmonics of the moiré period (issue 13 item 3): N_sc = round(N L / lambda).

At 20 degrees (Sigma149, m = 17, n = 3, L / lambda = sqrt(18) = 4.24) N = 6 supercell harmonics (the old
reading) keeps barely the first moiré harmonic; N = 6 moiré harmonics are 25 supercell harmonics.
"""

import numpy as np
import pytest
from strain_models import A, bilayer, relaxed_dataset

from twistox.core.config import ConfigError
from twistox.strain.fields import strain_dataset
from twistox.strain.fourier import fourier_fit, fourier_grid, moire_harmonics, supercell_order
from twistox.strain.gridding import grid_coords, grid_size
from twistox.strain.stage import check_settings

M, N_, SIGMA = 17, 3, 149


@pytest.fixture(scope="module")
def geometry():
    from twistox.supercell.lattice import nearest_csl

    c = nearest_csl(20.02, 200)
    assert (c.m, c.n, c.sigma) == (M, N_, SIGMA)
    return c, c.supercell_length(A), c.moire_period(A)


def moire_field(G_hk: np.ndarray, order: int, L: float, n: int, seed: int = 0) -> np.ndarray:
    """Real field with every moiré harmonic p G1 + q G2 of |p G1 + q G2| <= order |G| (random amplitudes), [y, x]."""
    rng = np.random.default_rng(seed)
    X, Y = np.meshgrid(grid_coords(L, n), grid_coords(L, n))
    f = np.zeros((n, n))
    for p in range(-order, order + 1):
        for q in range(-order, order + 1):
            if p * p + q * q > order * order or (p, q) <= (0, 0) and (p, q) != (0, 0):
                continue
            h, k = p * G_hk[0] + q * G_hk[1]
            a, b = rng.normal(size=2)
            f += a * np.cos(2 * np.pi * (h * X + k * Y) / L) + b * np.sin(2 * np.pi * (h * X + k * Y) / L)
    return f


def test_sigma149_orders(geometry):
    csl, L, lam = geometry
    assert L / lam == pytest.approx(np.sqrt(18))
    assert supercell_order(6, L, lam) == 25
    G = moire_harmonics(csl.layer_angles_deg, A, L)
    assert sorted(map(tuple, np.abs(G))) == [(3, 3), (3, 3)]  # |G| = sqrt(18) 2 pi / L = 2 pi / lambda
    assert np.hypot(*G[0]) * lam == pytest.approx(L)


@pytest.mark.parametrize("order", [2, 6])
def test_moire_band_limited_field_needs_the_supercell_order(geometry, order):
    csl, L, lam = geometry
    n = grid_size(L, 0.25)
    G = moire_harmonics(csl.layer_angles_deg, A, L)
    f = moire_field(G, order, L, n)
    Nsc = supercell_order(order, L, lam)
    exact = fourier_grid(fourier_fit(f, Nsc), L, n)
    assert np.abs(exact - f).max() < 1e-9 * np.abs(f).max()
    old = fourier_grid(fourier_fit(f, order), L, n)  # the old reading: N supercell harmonics
    assert np.sqrt(np.mean((old - f) ** 2)) > 0.3 * np.sqrt(np.mean(f**2))


def test_grid_must_resolve_the_supercell_order(geometry):
    _, L, lam = geometry
    cfg = {"neighbour_cutoff": 0.85, "bo_cutoff": 2.4, "born_charge": 7.12, "grid_spacing": 1.0,
           "smoothing_sigma": 1.0, "fourier_order": 6}
    # 48 points resolve 6 supercell harmonics (the old check) but not the 25 that 6 moiré harmonics need
    assert 2 * 6 < grid_size(L, 1.0) == 48 <= 2 * 25
    with pytest.raises(ConfigError, match=r"strain.grid_spacing.*25 supercell harmonics"):
        check_settings(cfg, L, lam, A)
    check_settings({**cfg, "grid_spacing": 0.9}, L, lam, A)  # 54 points


def test_sigma149_dataset_records_both_orders():
    b = bilayer(20.02)
    cfg = {"neighbour_cutoff": 0.85, "bo_cutoff": 2.4, "born_charge": 7.12, "grid_spacing": 0.45,
           "smoothing_sigma": 1.0, "fourier_order": 6}
    ds = strain_dataset(relaxed_dataset(b), cfg)
    assert ds.attrs["fourier_order_moire"] == 6 and ds.attrs["fourier_order_supercell"] == 25
    assert ds.attrs["fourier_order"] == 25  # the h, k range of fourier_coefficients
    assert list(ds["h"].values) == list(range(-25, 26))
    assert ds["fourier_coefficients"].dims == ("plane", "field", "h", "k")
