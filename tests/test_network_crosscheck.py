"""Map analysis of benchmarks/network_crosscheck.py (registry-aligned correlation, periods) against known
answers; fast, no CHGNet."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "network_crosscheck.py"
_spec = importlib.util.spec_from_file_location("network_crosscheck", _PATH)
xc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(xc)

L = 40.0


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    x = (np.arange(n) + 0.5) * L / n  # cell-centred, as twistox.strain.gridding.grid_coords
    return np.meshgrid(x, x)  # [y, x]


def generic_map(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X, Y = grid(n)
    return sum(rng.normal() * np.cos(2 * np.pi * (h * X + k * Y) / L + rng.uniform(0, 2 * np.pi))
               for h in range(-3, 4) for k in range(4))


@pytest.mark.parametrize("shift", [(0, 0), (5, -7), (-20, 13), (24, 1)])
def test_periodic_shift_gives_one_and_the_shift(shift):
    f = generic_map(48)
    r, s = xc.aligned_correlation(f, np.roll(f, shift, axis=(0, 1)))
    assert r == pytest.approx(1.0, abs=1e-12)
    # rolling b by s undoes the shift (modulo the period, reported in [-n/2, n/2))
    assert np.allclose(np.roll(np.roll(f, shift, axis=(0, 1)), s, axis=(0, 1)), f)
    assert all(-24 <= c < 24 for c in s)


def test_negative_map_gives_minus_one_and_offset_and_noise_lower_it():
    f = generic_map(40, seed=1)
    r, s = xc.aligned_correlation(f, -f)
    assert r == pytest.approx(-1.0, abs=1e-12) and s == (0, 0)
    # scale and offset do not matter; white noise of the map's variance gives r = 1/sqrt(2) (known answer)
    r2, s2 = xc.aligned_correlation(f, 3.0 * np.roll(f, (2, 3), axis=(0, 1)) + 7.0)
    assert r2 == pytest.approx(1.0, abs=1e-12) and s2 == (-2, -3)
    rng = np.random.default_rng(0)
    big = generic_map(64, seed=4)
    noisy = big + rng.normal(size=big.shape) * big.std()
    r4, s4 = xc.aligned_correlation(big, noisy)
    assert s4 == (0, 0) and r4 == pytest.approx(1 / np.sqrt(2), abs=0.03)


def test_flat_map_and_shape_mismatch():
    r, s = xc.aligned_correlation(np.ones((8, 8)), generic_map(8))
    assert np.isnan(r) and s == (0, 0)
    with pytest.raises(ValueError, match="same 2-D shape"):
        xc.aligned_correlation(np.zeros((8, 8)), np.zeros((9, 9)))


def test_resampling_between_grids_is_exact_for_band_limited_maps():
    X, Y = grid(48)
    Xm, Ym = grid(37)

    def f(X, Y):
        return np.cos(2 * np.pi * (2 * X + 3 * Y) / L) + 0.5 * np.sin(2 * np.pi * (X - 4 * Y) / L)

    assert np.abs(xc.fourier_resample(f(Xm, Ym), 48) - f(X, Y)).max() < 1e-10
    assert np.abs(xc.fourier_resample(f(X, Y), 37) - f(Xm, Ym)).max() < 1e-10
    # two grids of one map, one shifted by a quarter of the cell: aligned r = 1 at that shift
    r, s, _ = xc.compare_maps(f(X, Y), f(Xm, Ym))
    assert r == pytest.approx(1.0, abs=1e-10) and s == (0, 0)
    r, s, aligned = xc.compare_maps(f(X, Y), f(Xm + L / 4, Ym))
    assert r == pytest.approx(1.0, abs=1e-10) and s == (0, 12)
    assert np.abs(aligned - f(X, Y)).max() < 1e-9


def test_period_of_analytic_maps():
    X, Y = grid(64)
    lam = L / 4
    square = np.cos(2 * np.pi * X / lam) + np.cos(2 * np.pi * Y / lam) + 0.3 * np.cos(2 * np.pi * (X + Y) / lam)
    assert xc.map_period(square, L) == pytest.approx(lam, abs=1e-12)
    assert xc.map_period(np.cos(2 * np.pi * (3 * X + 4 * Y) / L), L) == pytest.approx(L / 5, abs=1e-12)
    assert np.isnan(xc.map_period(np.full((16, 16), 2.0), L))  # flat: no period


def test_self_test_mode_runs(capsys):
    assert xc.main(["--self-test"]) == 0
    assert "self-test passed" in capsys.readouterr().out


def test_relaxation_resumes_from_its_checkpoint_bit_identically(tmp_path, monkeypatch):
    """A relaxation stopped after 6 steps and rerun with 14 ends where an uninterrupted 14-step one does
    (the CHGNet check of 2900 atoms outlasts a CPU session); another start structure is not resumed."""
    from ase.build import bulk
    from ase.calculators.lj import LennardJones

    monkeypatch.setenv("TWISTOX_CHECKPOINT_INTERVAL_S", "0")
    atoms = bulk("Ar", "fcc", a=5.4, cubic=True).repeat(2)
    atoms.rattle(0.15, seed=3)
    calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0)
    ref = xc.relax_chgnet(atoms, calc, fmax=1e-6, steps=14, maxstep=0.1, optimizer="twistox")
    part = xc.relax_chgnet(atoms, calc, fmax=1e-6, steps=6, maxstep=0.1, optimizer="twistox", checkpoint_dir=tmp_path)
    assert part[4] == 6 and not np.allclose(part[0], ref[0])
    full = xc.relax_chgnet(atoms, calc, fmax=1e-6, steps=14, maxstep=0.1, optimizer="twistox",
                           checkpoint_dir=tmp_path)
    assert full[4] == 14
    np.testing.assert_array_equal(full[0], ref[0])
    other = atoms.copy()
    other.positions[0, 0] += 0.01
    fresh = xc.relax_chgnet(other, calc, fmax=1e-6, steps=6, maxstep=0.1, optimizer="twistox",
                            checkpoint_dir=tmp_path)
    assert fresh[4] == 6
