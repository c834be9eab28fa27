"""Region masks from the interlayer twist map and the network enrichment fractions (known answers)."""

import numpy as np
import pytest

from twistox.electronic import dos as D
from twistox.electronic import regions as R


def _square_network(n=96, L=40.0, theta=6.7, amp=1.0):
    """Twist map θ + amp·(cos Gx + cos Gy) with λ = L/2 (two moiré periods per cell): nodes (maxima) at
    (0, 0) + λ(i, j), domain centres at (λ/2, λ/2) + λ(i, j); cell-centred grid (i + ½)L/n."""
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    lam = L / 2
    G = 2 * np.pi / lam
    return theta + amp * (np.cos(G * X) + np.cos(G * Y)), x, L, lam, X, Y, G


def test_region_levels_follow_the_normalised_twist():
    tw, x, L, lam, X, Y, G = _square_network()
    code, t, found = R.region_map(tw, L, lam, line_level=0.4, node_level=0.75)
    assert found
    t_exact = (2 + np.cos(G * X) + np.cos(G * Y)) / 4
    # the grid does not hit the extrema exactly: normalisation by the sampled min/max
    t_ref = (t_exact - t_exact.min()) / np.ptp(t_exact)
    np.testing.assert_allclose(t, t_ref, atol=1e-12)
    clear = (np.abs(t_ref - 0.75) > 1e-9) & (np.abs(t_ref - 0.4) > 1e-9)     # round-off at the levels
    np.testing.assert_array_equal(code[clear], np.where(t_ref >= 0.75, 2, np.where(t_ref >= 0.4, 1, 0))[clear])
    # a node sits at the maxima, a domain at the minima, the wall midpoint (saddle, t = 1/2) is a line
    assert R.mask_at(code, x, x, np.array([[0.1, 0.1]]), L)[0] == 2
    assert R.mask_at(code, x, x, np.array([[lam / 2, lam / 2]]), L)[0] == 0
    assert R.mask_at(code, x, x, np.array([[lam / 2, 0.1]]), L)[0] == 1


def test_lowpass_removes_atomistic_noise_and_flat_map_has_no_network():
    tw, x, L, lam, *_ = _square_network()
    rng = np.random.default_rng(0)
    noisy = tw + 0.05 * rng.standard_normal(tw.shape)
    c0, _, _ = R.region_map(tw, L, lam)
    c1, _, _ = R.region_map(noisy, L, lam)
    assert (c0 != c1).mean() < 0.01
    code, t, found = R.region_map(np.full_like(tw, 6.7), L, lam)
    assert not found and (code == 0).all()
    frac = R.network_fractions(np.ones_like(tw), code, found)
    assert np.isnan(frac["ldos_fraction_lines"]) and np.isnan(frac["area_fraction_nodes"])


def test_network_fractions_known_answers():
    tw, x, L, lam, X, Y, G = _square_network(n=200)
    code, t, found = R.region_map(tw, L, lam, line_level=0.4, node_level=0.75)
    # area of {t >= 0.75} = {cos u + cos v >= 1} per period: independent quadrature on a fine grid
    u = (np.arange(2000) + 0.5) * 2 * np.pi / 2000
    U, V = np.meshgrid(u, u)
    s = np.cos(U) + np.cos(V)
    area_node = (s >= 1.0).mean()
    area_line = ((s >= -0.4) & (s < 1.0)).mean()
    # uniform LDOS: LDOS fraction = area fraction
    f = R.network_fractions(np.ones_like(tw), code, found)
    assert f["area_fraction_nodes"] == pytest.approx(area_node, abs=0.01)
    assert f["area_fraction_lines"] == pytest.approx(area_line, abs=0.01)
    assert f["ldos_fraction_nodes"] == pytest.approx(f["area_fraction_nodes"], rel=1e-12)
    assert f["enrichment_lines"] == pytest.approx(1.0, rel=1e-12)
    # LDOS only on the lines: all of it there, enrichment 1/area
    f = R.network_fractions((code == 1).astype(float), code, found)
    assert f["ldos_fraction_lines"] == 1.0 and f["ldos_fraction_nodes"] == 0.0
    assert f["enrichment_lines"] == pytest.approx(1.0 / area_line, rel=0.03)
    # LDOS 3× denser on nodes than elsewhere: fraction = 3a/(3a + 1 − a)
    a = f["area_fraction_nodes"]
    f = R.network_fractions(np.where(code == 2, 3.0, 1.0), code, found)
    assert f["ldos_fraction_nodes"] == pytest.approx(3 * a / (3 * a + 1 - a), rel=1e-12)


def test_atom_groups_interface_regions_and_bulk():
    tw, x, L, lam, *_ = _square_network()
    code, _, _ = R.region_map(tw, L, lam)
    pos = np.array([[0.1, 0.1, 10.0], [lam / 2, lam / 2, 10.0], [lam / 2, 0.1, 12.0], [0.0, 0.0, 8.0], [0, 0, 0.0]])
    plane = np.array([3, 3, 4, 2, 0])
    g = R.atom_groups(pos, plane, [3, 4], code, x, x, L, interface_depth=1)
    assert [R.GROUPS[i] for i in g] == ["node", "domain", "line", "interface_near", "bulk_like"]


def test_gaussian_dos_normalisation_and_pdos_sum():
    rng = np.random.default_rng(1)
    eps = np.sort(np.hstack([rng.uniform(-8, -1, (3, 10)), rng.uniform(1, 6, (3, 10))]), axis=1)  # gap after 10
    wk = np.array([0.25, 0.5, 0.25])
    E = np.arange(-12, 8, 0.005)
    dos = D.gaussian_dos(eps, wk, E, 0.05)
    edges = D.band_edges(eps, 20.0)
    assert edges["gap"] > 0.3
    assert D.integrated_states(dos, E, 0.5 * (edges["vbm"] + edges["cbm"])) == pytest.approx(20.0, abs=1e-3)
    assert D.electrons_below(eps, wk, 0.5 * (edges["vbm"] + edges["cbm"]), 0.05) == pytest.approx(20.0, abs=1e-9)
    w = rng.uniform(0, 1, (3, 20, 4))
    w /= w.sum(-1, keepdims=True)
    np.testing.assert_allclose(D.gaussian_dos(eps, wk, E, 0.05, w).sum(0), dos, rtol=1e-10, atol=1e-12)


def test_to_grid_interpolates_periodic_map():
    L = 12.0
    xs = np.arange(48) * L / 48
    X, Y = np.meshgrid(xs, xs)
    f = np.cos(2 * np.pi * X / L) * np.sin(4 * np.pi * Y / L)
    x = (np.arange(30) + 0.5) * L / 30
    g = D.to_grid(f, xs, xs, x, x, (L, L))
    Xt, Yt = np.meshgrid(x, x)
    np.testing.assert_allclose(g, np.cos(2 * np.pi * Xt / L) * np.sin(4 * np.pi * Yt / L), atol=0.02)
