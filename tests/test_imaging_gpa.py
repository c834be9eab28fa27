"""GPA against known answers on synthetic lattice images (twistox.imaging.gpa)."""

import numpy as np
import pytest

from twistox.imaging import gpa
from twistox.imaging.patches import ImagingModel, render, rot

A = 3.905
S = 0.3  # Å per pixel


@pytest.fixture(scope="module")
def model():
    return ImagingModel(planes=([(10.0, 0), (12.0, 1)], [(8.0, 1)]), focus_depth=10.0)


def lattice_image(model, basis, n=400, displacement=None):
    """One square lattice (bottom layer only) with basis columns `basis` (Å), optional u(r) (Å)."""
    c = np.arange(n) * S
    yy, xx = np.meshgrid(c, c, indexing="ij")
    r = np.column_stack([xx.ravel(), yy.ravel()])
    if displacement is not None:
        r = r - displacement(r)  # atoms at R + u(R): pixel r shows the lattice point r − u(r) (first order)
    bases = np.stack([basis, basis])[None]
    img = render(model, r[None], bases, np.zeros((1, 2, 2)), layer_weight=np.array([[1.0, 0.0]]))
    return img.reshape(n, n)


def ref_g(alpha_deg=10.0):
    R = rot(np.radians(alpha_deg)) * A
    return np.linalg.inv(R).T.T, R  # rows of inv(R) are the reciprocal vectors


def interior(da, border=40):
    return da.values[border:-border, border:-border]


def test_uniform_strain(model):
    G, R = ref_g()
    eps = np.array([[0.01, 0.004], [0.004, -0.005]])
    img = lattice_image(model, (np.eye(2) + eps) @ R)
    ds = gpa(img, S, g_vectors=G)
    for name, want in (("exx", 0.01), ("eyy", -0.005), ("exy", 0.004), ("rotation", 0.0)):
        got = interior(ds[name])
        assert abs(got.mean() - want) < 0.05 * 0.01, (name, got.mean())
        assert got.std() < 2e-4, name
    assert ds["exx"].attrs["units"] == "1" and ds["rotation"].attrs["units"] == "rad"
    assert np.allclose(ds.attrs["g_vectors"], G)


def test_uniform_rotation_sign_and_mirror(model):
    G, R = ref_g()
    w = np.radians(2.0)
    img = lattice_image(model, rot(w) @ R)  # CCW in (x, y), y = row × sampling
    ds = gpa(img, S, g_vectors=G)
    assert interior(ds["rotation"]).mean() == pytest.approx(w, rel=0.02)
    assert abs(interior(ds["exx"]).mean()) < 5e-4
    # a mirror (rows reversed: y -> -y) turns CCW into CW
    Gm = G * np.array([1.0, -1.0])
    dm = gpa(img[::-1], S, g_vectors=Gm)
    assert interior(dm["rotation"]).mean() == pytest.approx(-w, rel=0.02)


def test_sinusoidal_rotation_field(model):
    G, R = ref_g(0.0)
    w0, lam = 0.01, 90.0
    k = 2 * np.pi / lam
    # u = (0, u_y(x)), du_y/dx = 2 w0 sin(kx): rotation = w0 sin(kx) (and exy = w0 sin(kx))
    disp = lambda r: np.column_stack([np.zeros(len(r)), -2 * w0 / k * np.cos(k * r[:, 0])])
    n = 600
    img = lattice_image(model, R, n=n, displacement=disp)
    ds = gpa(img, S, g_vectors=G, sigma=3.0)  # mask σ_k = 0.053 1/Å: passes the 1/90 Å satellites at 98 %
    x = ds["x"].values
    b = 60
    basis = np.sin(k * x)[b:-b]
    for name in ("rotation", "exy"):
        prof = ds[name].values[b:-b, b:-b].mean(axis=0)
        amp = 2 * np.mean(prof * basis) / (2 * np.mean(basis**2)) * 1.0
        assert amp == pytest.approx(w0, rel=0.05), (name, amp)
    assert np.abs(ds["exx"].values[b:-b, b:-b]).max() < 0.1 * w0


def test_poisson_noise_does_not_bias(model):
    G, R = ref_g()
    eps = np.array([[0.01, 0.0], [0.0, 0.01]])
    clean = lattice_image(model, (np.eye(2) + eps) @ R)
    clean = clean / clean.mean() * 0.05
    rng = np.random.default_rng(3)
    n = 2e4 * S * S  # a low dose: 2e4 e/Å², ~90 counts per pixel on the mean (fraction 0.05)
    noisy = rng.poisson(clean * n) / n
    d0, d1 = gpa(clean, S, g_vectors=G), gpa(noisy, S, g_vectors=G)
    for name in ("exx", "eyy", "exy"):
        m0, m1 = interior(d0[name]).mean(), interior(d1[name]).mean()
        assert abs(m1 - m0) < 5e-4, (name, m0, m1)
    assert interior(d1["exx"]).std() > interior(d0["exx"]).std()  # the noise is really there


def test_auto_g_vectors_measure_against_the_image_lattice(model):
    _, R = ref_g()
    img = lattice_image(model, 1.01 * R)
    ds = gpa(img, S)
    assert abs(interior(ds["exx"]).mean()) < 1e-3
    g = np.linalg.norm(np.asarray(ds.attrs["g_vectors"]), axis=1)
    assert np.all(np.isclose(g, 1 / (1.01 * A), rtol=0.01) | np.isclose(g, np.sqrt(2) / (1.01 * A), rtol=0.01))


def test_bad_input():
    with pytest.raises(ValueError, match="2D"):
        gpa(np.zeros((10, 10, 3)), S)
    with pytest.raises(ValueError, match="constant"):
        gpa(np.ones((64, 64)), S)
    with pytest.raises(ValueError, match="collinear"):
        gpa(np.random.default_rng(0).random((64, 64)), S, g_vectors=[[0.25, 0], [0.5, 0]])
