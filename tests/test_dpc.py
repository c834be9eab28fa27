"""twistox.analysis.dpc: constants, COM <-> projected field with its sign, 4D-STEM COM."""

import numpy as np
import pytest

from twistox.analysis import dpc

E300 = 300e3


def test_constants_against_abtem_and_literature():
    from abtem.core.energy import energy2sigma, energy2wavelength   # independent implementation

    assert dpc.wavelength(E300) == pytest.approx(0.019687, abs=2e-6)          # Å, 300 kV
    assert dpc.wavelength(E300) == pytest.approx(energy2wavelength(E300), rel=1e-6)
    assert dpc.interaction_parameter(E300) == pytest.approx(energy2sigma(E300), rel=1e-6)
    assert dpc.interaction_parameter(200e3) == pytest.approx(energy2sigma(200e3), rel=1e-6)
    # PHYSICS.md §7: at 300 kV 1 mrad ~ 490 V of projected field (we get 489.0 V)
    assert 1.0 / dpc.mrad_per_volt(E300) == pytest.approx(489.0, abs=0.5)


def _phase_object_com(V, dx, probe_xy, probe_sigma, energy=E300):
    """COM (mrad) of the far-field pattern of a Gaussian probe through exp(iσV) (numpy FFT, k = 1/λ)."""
    n = V.shape[0]
    x = np.arange(n) * dx
    X, Y = np.meshgrid(x, x)
    probe = np.exp(-((X - probe_xy[0]) ** 2 + (Y - probe_xy[1]) ** 2) / (4 * probe_sigma**2))
    psi = probe * np.exp(1j * dpc.interaction_parameter(energy) * V)
    inten = np.abs(np.fft.fft2(psi)) ** 2
    k = np.fft.fftfreq(n, dx)
    KX, KY = np.meshgrid(k, k)
    lam = dpc.wavelength(energy)
    return np.array([(KX * inten).sum(), (KY * inten).sum()]) / inten.sum() * lam * 1e3, probe**2


def test_com_sign_and_magnitude_on_a_known_potential():
    """Positive Gaussian potential bump: a probe left of it is deflected toward it (+x), while E = -∇V
    points away (-x); E_proj from the COM equals the probe-averaged -∇V_proj."""
    n, dx = 256, 0.05
    x = np.arange(n) * dx
    X, Y = np.meshgrid(x, x)
    x0, s = n * dx / 2, 1.0
    V = 50.0 * np.exp(-((X - x0) ** 2 + (Y - x0) ** 2) / (2 * s**2))        # V·Å, positive (attractive)
    gx = -(X - x0) / s**2 * V                                                  # ∂V/∂x
    gy = -(Y - x0) / s**2 * V
    probe_at = (x0 - 1.0, x0 + 0.3)
    com, weight = _phase_object_com(V, dx, probe_at, 0.4)
    assert com[0] > 0 and com[1] < 0                                           # toward the bump centre
    e = dpc.com_to_projected_field(com, E300)
    e_true = -np.array([(gx * weight).sum(), (gy * weight).sum()]) / weight.sum()
    assert e[0] < 0 and e[1] > 0                                               # COM ∝ -E
    np.testing.assert_allclose(e, e_true, rtol=0.02)


def test_abtem_center_of_mass_has_the_same_sign():
    """abTEM's COM of a probe beside a positive potential points toward it, as our convention assumes."""
    abtem = pytest.importorskip("abtem")
    abtem.config.set({"device": "cpu", "precision": "float64"})
    n, dx = 128, 0.1
    x = np.arange(n) * dx
    X, Y = np.meshgrid(x, x, indexing="ij")                                   # abTEM arrays are (x, y)
    x0 = n * dx / 2
    V = 30.0 * np.exp(-((X - x0) ** 2 + (Y - x0) ** 2) / 2.0)
    pot = abtem.PotentialArray(V[None], slice_thickness=1.0, sampling=dx)
    probe = abtem.Probe(energy=E300, semiangle_cutoff=5.0)
    probe.grid.match(pot)
    dp = probe.scan(pot, scan=abtem.CustomScan([[x0 - 1.0, x0 + 0.3]]),
                    detectors=abtem.PixelatedDetector(max_angle="valid")).compute()
    com = complex(np.asarray(dp.center_of_mass(units="mrad").array).ravel()[0])
    assert com.real > 0 and com.imag < 0


def test_inverse_round_trip_and_blur():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(2, 16, 16)) * 100
    com = dpc.projected_field_to_com(e, E300)
    np.testing.assert_allclose(dpc.com_to_projected_field(com, E300), e, rtol=1e-12)
    blurred = dpc.projected_field_to_com(e, E300, blur_sigma_px=1.5)
    assert np.abs(blurred).mean() < np.abs(com).mean()
    np.testing.assert_allclose(blurred.mean(axis=(1, 2)), com.mean(axis=(1, 2)), atol=1e-12)   # periodic blur keeps mean


def test_com_from_4dstem_recovers_disc_shifts():
    sy, sx, nk = 4, 5, 33
    k = np.arange(nk) - (nk - 1) / 2
    KX, KY = np.meshgrid(k, k)
    shifts = np.random.default_rng(1).uniform(-3, 3, (2, sy, sx))
    data = np.zeros((sy, sx, nk, nk), np.float32)
    for i in range(sy):
        for j in range(sx):
            data[i, j] = np.exp(-((KX - shifts[0, i, j]) ** 2 + (KY - shifts[1, i, j]) ** 2) / 8.0)
    # Gaussian spots (no disc edge): whole-pattern COM; the bright-field mode is tested in test_stem_com.py
    com = dpc.com_from_4dstem(data, 0.25, chunk_rows=3, mode="whole")
    np.testing.assert_allclose(com, shifts * 0.25, atol=1e-5)
    with pytest.raises(ValueError, match="4D"):
        dpc.com_from_4dstem(data[0], 0.25)
    bad = data.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        dpc.com_from_4dstem(bad, 0.25)


def test_background_and_rotation():
    ny, nx = 8, 9
    yy, xx = np.mgrid[0:ny, 0:nx]
    v = np.stack([0.3 + 0.01 * xx, -0.2 + 0.02 * yy]).astype(float)
    assert np.abs(dpc.remove_background(v, "plane")).max() < 1e-12
    assert np.abs(dpc.remove_background(v, "mean").mean(axis=(1, 2))).max() < 1e-12
    r = dpc.rotate_vectors(np.array([[1.0], [0.0]]), 90.0)
    np.testing.assert_allclose(r.ravel(), [0, 1], atol=1e-12)
    with pytest.raises(ValueError, match="allowed: none, mean, plane"):
        dpc.remove_background(v, "median")
