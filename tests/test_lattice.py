"""CSL maths against PHYSICS.md section 1."""

import math

import numpy as np
import pytest

from twistox.supercell.lattice import nearest_csl, shortest_basis, sigma_of, theta_of

A = 3.905
# (theta as printed, m, n, Sigma) from PHYSICS.md section 1
TABLE = [
    (36.87, 3, 1, 5), (22.62, 5, 1, 13), (28.07, 4, 1, 17), (16.26, 7, 1, 25),
    (10.39, 11, 1, 61), (6.73, 17, 1, 145), (4.98, 23, 1, 265), (20.02, 17, 3, 149),
]


@pytest.mark.parametrize("theta,m,n,sigma", TABLE)
def test_table_reproduced(theta, m, n, sigma):
    c = nearest_csl(theta, max_sigma=300)
    assert (c.m, c.n, c.sigma) == (m, n, sigma)
    assert abs(c.theta_deg - theta) < 0.006
    assert math.tan(math.radians(c.theta_deg) / 2) == pytest.approx(n / m, rel=1e-12)


@pytest.mark.parametrize("theta,m,n,sigma", TABLE)
def test_complementary_angle_equivalent(theta, m, n, sigma):
    c = nearest_csl(90.0 - theta, max_sigma=300)
    assert (c.m, c.n, c.sigma) == (m, n, sigma)
    assert c.theta_requested_deg == pytest.approx(90.0 - theta)


@pytest.mark.parametrize("theta,m,n,sigma", TABLE)
def test_shortest_basis_is_a_coincidence_basis(theta, m, n, sigma):
    B = shortest_basis(m, n)
    assert abs(round(np.linalg.det(B))) == sigma
    rot = np.array([[math.cos(math.radians(-theta_of(m, n))), -math.sin(math.radians(-theta_of(m, n)))],
                    [math.sin(math.radians(-theta_of(m, n))), math.cos(math.radians(-theta_of(m, n)))]])
    q = rot @ B
    assert np.allclose(q, np.round(q), atol=1e-9)  # both vectors are lattice vectors of the other layer
    assert np.allclose(np.linalg.norm(B, axis=0), math.sqrt(sigma))  # square cell of side sqrt(Sigma)


def test_paper_angles():
    assert nearest_csl(5.0).name == "theta4.98_m23n1"
    assert nearest_csl(10.0).name == "theta10.39_m11n1"
    assert nearest_csl(20.0).name == "theta20.02_m17n3"


def test_moire_period_and_supercell_length():
    c = nearest_csl(5.0)
    lam = c.moire_period(A)
    assert lam == pytest.approx(44.98, abs=0.05)  # 4.5 nm at 5 deg (paper, Fig. 2)
    # n = 1, m odd: L = sqrt(2) * lambda
    assert c.supercell_length(A) == pytest.approx(math.sqrt(2) * lam, rel=1e-12)
    c = nearest_csl(28.07)  # m even
    assert c.supercell_length(A) == pytest.approx(2 * c.moire_period(A), rel=1e-12)


def test_sigma_rule():
    assert sigma_of(3, 1) == 5 and sigma_of(4, 1) == 17 and sigma_of(17, 3) == 149


@pytest.mark.parametrize("bad", [0.0, 90.0, 95.0, -3.0, float("nan"), "abc"])
def test_bad_angles_rejected(bad):
    with pytest.raises(ValueError, match="0 < theta < 90"):
        nearest_csl(bad)


def test_sigma_limit_too_small():
    with pytest.raises(ValueError, match=r"max_sigma.*allowed: max_sigma >= 265"):
        nearest_csl(4.98, max_sigma=100, max_error_deg=0.1)
