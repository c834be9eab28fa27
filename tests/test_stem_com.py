"""COM of 4D-STEM data: bright-field disc vs whole pattern (issue 13 item 4).

Synthetic 4D data with a known answer: a bright-field disc shifted by a known amount at every
scan position plus Bragg discs whose intensities vary (asymmetrically) across the scan, as at
tilted columns. The BF-disc COM must recover the shift; the whole-pattern COM is biased by the
Bragg discs (shown here, not just assumed)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from twistox.analysis import dpc
from twistox.stem.com import centre_of_mass, find_disc
from twistox.stem.fourd import com_map

DK = 0.1  # detector pixel [mrad]
R_BF = 1.0  # bright-field disc radius [mrad]


def disc(KX, KY, cx, cy, r, sub=4):
    """Uniform disc, pixel-area-weighted on a sub x sub sub-grid with soft edges: COM = (cx, cy)."""
    off = (np.arange(sub) + 0.5) / sub - 0.5
    out = 0.0
    for oy in off:
        for ox in off:
            out = out + np.clip((r - np.hypot(KX + ox * DK - cx, KY + oy * DK - cy)) / (DK / sub) + 0.5, 0.0, 1.0)
    return out / sub**2


def synthetic_4d(shift_amp=0.05, bragg=True, ny=6, nx=7, n=64, seed=0):
    """(ny, nx, n, n) patterns [ky, kx], k axes, and the true BF-disc shifts (2, ny, nx) [mrad]."""
    k = (np.arange(n) - n // 2) * DK  # even grid, k = 0 on a pixel (abTEM-like)
    KY, KX = np.meshgrid(k, k, indexing="ij")
    rng = np.random.default_rng(seed)
    shift = rng.uniform(-shift_amp, shift_amp, (2, ny, nx))
    yy, xx = np.mgrid[0:ny, 0:nx]
    data = np.zeros((ny, nx, n, n))
    for i in range(ny):
        for j in range(nx):
            p = disc(KX, KY, shift[0, i, j], shift[1, i, j], R_BF)
            if bragg:
                # four Bragg discs at 2.5 mrad; +x/-x and +y/-y intensities vary oppositely across the scan
                a = 0.3 * np.sin(2 * np.pi * xx[i, j] / nx)
                b = 0.3 * np.cos(2 * np.pi * yy[i, j] / ny)
                for (gx, gy), w in (((2.5, 0), 0.3 + a), ((-2.5, 0), 0.3 - a), ((0, 2.5), 0.3 + b), ((0, -2.5), 0.3 - b)):
                    p = p + w * disc(KX, KY, gx, gy, 0.5)
            data[i, j] = p
    return data, k, shift


def test_bright_field_com_recovers_shift_whole_pattern_is_biased():
    data, k, shift = synthetic_4d()
    cx, cy, d = centre_of_mass(data, k, k, mode="bright_field", mask_factor=1.5, disc="mean", radius=R_BF)
    err_bf = max(np.abs(cx - shift[0]).max(), np.abs(cy - shift[1]).max())
    assert err_bf < 1e-3  # mrad, against shifts of up to 0.05 mrad
    assert d.radius == pytest.approx(R_BF, rel=0.02) and abs(d.cx) < 0.01 and abs(d.cy) < 0.01
    wx, wy, _ = centre_of_mass(data, k, k, mode="whole", mask_factor=1.5, disc="mean")
    bias = max(np.abs(wx - shift[0]).max(), np.abs(wy - shift[1]).max())
    assert bias > 0.1  # the Bragg-disc asymmetry dominates the whole-pattern COM (> 2x the true signal)
    # without Bragg discs both modes agree: the bias is the Bragg discs', not the method's
    clean, _, _ = synthetic_4d(bragg=False)
    wx0, wy0, _ = centre_of_mass(clean, k, k, mode="whole", mask_factor=1.5, disc="mean")
    assert np.abs(wx0 - shift[0]).max() < 1e-3 and np.abs(wy0 - shift[1]).max() < 1e-3


def test_measured_radius_and_per_pattern_disc():
    data, k, shift = synthetic_4d()
    cx, cy, d = centre_of_mass(data, k, k, mode="bright_field", mask_factor=1.5, disc="mean", radius=None)
    assert np.abs(cx - shift[0]).max() < 1e-3 and np.abs(cy - shift[1]).max() < 1e-3
    # a disc that wanders by up to 0.45 mrad (descan): a 1.3 R mask fixed on the mean disc clips it,
    # a per-pattern mask follows it (and still stays clear of the Bragg discs at 2.0-3.0 mrad)
    big, k, shift = synthetic_4d(shift_amp=0.45, seed=3)
    cx, cy, _ = centre_of_mass(big, k, k, mode="bright_field", mask_factor=1.3, disc="per_pattern", radius=R_BF)
    assert np.abs(cx - shift[0]).max() < 1e-3 and np.abs(cy - shift[1]).max() < 1e-3
    fx, fy, _ = centre_of_mass(big, k, k, mode="bright_field", mask_factor=1.3, disc="mean", radius=R_BF)
    assert max(np.abs(fx - shift[0]).max(), np.abs(fy - shift[1]).max()) > 0.02


def test_experimental_path_uses_the_same_math():
    """dpc.com_from_4dstem (torch, chunked, detector-centre origin) == stem's COM on the same data."""
    data, k, shift = synthetic_4d()
    n = data.shape[-1]
    centre = (n // 2, n // 2)  # pixel of k = 0
    bf = dpc.com_from_4dstem(data.astype(np.float32), DK, center=centre, chunk_rows=4)
    assert np.abs(bf - shift).max() < 2e-3  # measured radius (default for experiments), float32 input
    whole = dpc.com_from_4dstem(data, DK, center=centre, chunk_rows=4, mode="whole")
    ref = np.stack(centre_of_mass(data, k, k, mode="whole", mask_factor=1.5, disc="mean")[:2])
    np.testing.assert_allclose(whole, ref, atol=1e-12)
    with pytest.raises(ValueError, match="com_mode"):
        dpc.com_from_4dstem(data, DK, mode="disc")


def test_stem_com_map_and_mask_on_detector():
    data, k, shift = synthetic_4d()
    pat = xr.DataArray(data, dims=("y", "x", "ky", "kx"),
                       coords={"y": np.arange(6.0), "x": np.arange(7.0), "ky": k, "kx": k})
    fd = {"com_mask_factor": 1.5, "com_disc": "mean", "com_radius": "semiangle"}
    com = com_map(pat, "bright_field", fd, R_BF)
    assert com.dims == ("xy", "y", "x") and list(com["xy"].values) == ["x", "y"]
    np.testing.assert_allclose(com.values, shift, atol=1e-3)
    assert com.attrs["mask_radius_mrad"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="does not fit on the detector"):
        com_map(pat, "bright_field", fd | {"com_mask_factor": 4.0}, R_BF)


def test_find_disc_half_maximum_radius():
    n = 80
    k = (np.arange(n) - n // 2) * DK
    KY, KX = np.meshgrid(k, k, indexing="ij")
    d = find_disc(disc(KX, KY, 0.3, -0.2, 1.7) + 0.2 * disc(KX, KY, 3.0, 0.0, 0.4), k, k)
    assert d.radius == pytest.approx(1.7, abs=DK / 2)  # half-maximum area: ± half a pixel
    assert d.cx == pytest.approx(0.3, abs=0.01) and d.cy == pytest.approx(-0.2, abs=0.01)
