"""Twist angle from a plan-view image (twistox.imaging.twist_angle) against known answers."""

import numpy as np
import pytest

from twistox.imaging import twist_angle
from twistox.imaging.patches import ImagingModel, planes_for_sample, render, rot

A = 3.905
DOSE = 4.2e6  # e/Å², the paper's plan-view dose


@pytest.fixture(scope="module")
def model():
    return ImagingModel(planes=planes_for_sample(A, 200.0, 100.0), focus_depth=100.0)


def bilayer_image(model, theta, alpha, sampling, n, seed, dose=DOSE, mirror=False):
    """Rigid bilayer: bottom at alpha − θ/2, top at alpha + θ/2 (deg, CCW); Poisson noise at `dose`."""
    c = np.arange(n) * sampling
    yy, xx = np.meshgrid(c, c, indexing="ij")
    coords = np.column_stack([xx.ravel(), yy.ravel()])[None]
    th, al = np.radians(theta), np.radians(alpha)
    bases = np.stack([rot(al - th / 2) * A, rot(al + th / 2) * A])[None]
    rng = np.random.default_rng(seed)
    img = render(model, coords, bases, rng.uniform(0, A, (1, 2, 2))).reshape(n, n)
    img = img / img.mean() * 0.05  # a HAADF fraction of the beam
    N = dose * sampling**2
    img = rng.poisson(img * N) / N
    return img[:, ::-1] if mirror else img


@pytest.mark.parametrize("theta,alpha,seed", [(5.0, 3.0, 0), (5.0, 17.0, 1), (6.73, 45.0, 2)])
def test_twist_within_0p05_deg_at_paper_dose(model, theta, alpha, seed):
    lam = A / (2 * np.sin(np.radians(theta / 2)))
    s = 0.2
    n = int(np.ceil(4.1 * lam / s))  # > 4 moiré periods
    img = bilayer_image(model, theta, alpha, s, n, seed)
    r = twist_angle(img, s, a=A)
    err = abs(r["theta_deg"] - theta)
    assert err <= 0.05
    assert err <= r["theta_uncertainty_deg"]  # the quoted uncertainty covers the true error
    assert r["theta_uncertainty_deg"] < 0.05
    assert r["lattice_parameters"] == pytest.approx([A, A], rel=2e-3)
    assert min(r["n_reflections"]) >= 4


def test_layer_labels_and_mirror_flip_the_sign(model):
    theta, alpha, s = 10.39, 20.0, 0.2
    n = int(np.ceil(4.1 * A / (2 * np.sin(np.radians(theta / 2))) / s))
    img = bilayer_image(model, theta, alpha, s, n, 5)
    hint = (alpha - theta / 2, alpha + theta / 2)
    assert twist_angle(img, s, a=A, layer_angles_deg=hint)["theta_deg"] == pytest.approx(theta, abs=0.05)
    assert twist_angle(img, s, a=A, layer_angles_deg=hint[::-1])["theta_deg"] == pytest.approx(-theta, abs=0.05)
    # mirror x -> -x: orientations α -> −α, so the same layers give −θ
    r = twist_angle(img[:, ::-1], s, a=A, layer_angles_deg=(-hint[0], -hint[1]))
    assert r["theta_deg"] == pytest.approx(-theta, abs=0.05)
    assert r["lattice_angles_deg"][0] == pytest.approx(((-hint[0] + 45) % 90) - 45, abs=0.05)


def test_unresolved_twist_is_an_error(model):
    img = bilayer_image(model, 0.3, 0.0, 0.2, 200, 0)
    with pytest.raises(ValueError, match="one square lattice"):
        twist_angle(img, 0.2, a=A)
    with pytest.raises(ValueError, match="resolve"):
        twist_angle(img, 2.0, a=A)


def _fourier_upsample(img: np.ndarray, f: int) -> np.ndarray:
    """Band-limited interpolation of a scanned image to f x finer pixels (what stem.postprocess does)."""
    n = img.shape[0]
    G = np.zeros((n * f, n * f), complex)
    o = (n * f - n) // 2
    G[o:o + n, o:o + n] = np.fft.fftshift(np.fft.fft2(img))
    return np.real(np.fft.ifft2(np.fft.ifftshift(G))) * f * f


@pytest.mark.parametrize("scan", [1.0, 0.5])
def test_coarse_scan_aliases_220_onto_the_100_ring_and_is_refused(model, scan):
    """Scanned at s, a {220} reflection G reappears at G − m/s; at s = 1 Å that is |g| ≈ 1.07/a, on the {100} ring
    the twist is read from (the network demo's abTEM plan view: those aliases were its strongest ring peaks).
    Interpolating afterwards keeps them, so the scan step decides: refused above alias_free_scan_step."""
    from twistox.imaging.twist import _dtft, alias_free_scan_step

    theta, alpha = 6.73, 45.0
    n = int(np.ceil(4.1 * A / (2 * np.sin(np.radians(theta / 2))) / scan))
    n += n % 2
    f = int(round(scan / 0.1))
    img = _fourier_upsample(bilayer_image(model, theta, alpha, scan, n, 3), f)
    s = scan / f
    assert alias_free_scan_step(A) == pytest.approx(A / (2 * np.sqrt(2) + 2.3))
    # the (2, -2) reflection of the bottom layer, and where the scan puts it
    b = np.radians(alpha - theta / 2)
    G = np.array([[np.cos(b), -np.sin(b)], [np.sin(b), np.cos(b)]]) @ (2, -2) / A
    alias = G - np.round(G * scan) / scan
    w = img - img.mean()
    p_alias = _dtft(w, s, s, alias[:1], alias[1:])[0, 0]
    p_ring = _dtft(w, s, s, np.array([1.1 / A]), np.array([0.3 / A]))[0, 0]  # empty ring point, no reflection
    if scan > alias_free_scan_step(A):
        assert abs(np.hypot(*alias) * A - 1.0) < 0.2  # inside the {100} search ring
        assert p_alias > 100 * p_ring
        with pytest.raises(ValueError, match="alias"):
            twist_angle(img, s, a=A, scan_step=scan)
    else:
        assert np.hypot(*alias) > 2.3 / A  # outside the range used
        r = twist_angle(img, s, a=A, scan_step=scan)
        assert r["theta_deg"] == pytest.approx(theta, abs=0.05)
