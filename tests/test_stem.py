"""STEM stage: physics against known answers (bulk HAADF, COM of a phase object, shot noise),
sampling refusal, specimen construction, post-processing and checkpoints."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from ase import Atoms

from twistox.core.checkpoint import Checkpoint
from twistox.core.config import ConfigError, validate_config
from twistox.core.hashing import settings_hash
from twistox.stem import optics
from twistox.stem.checks import check_config
from twistox.stem.com import centre_of_mass
from twistox.stem.cross_section import run_cross_sections
from twistox.stem.fourd import com_map, run_fourd, simulate_patterns
from twistox.stem.multislice import ProbeSettings, configure_abtem, fourier_crop
from twistox.stem.planview import integrate_range, planview_radial, resolve_focus, run_planview
from twistox.stem.postprocess import poisson_noise, postprocess
from twistox.stem.sample import cross_section_sample, planview_sample, structure_atoms
from twistox.supercell.builder import BilayerSpec, build_bilayer
from twistox.supercell.lattice import nearest_csl

A = 3.905


@pytest.fixture(scope="module", autouse=True)
def _abtem_cpu():
    configure_abtem("cpu", "float32", 1)


def probe(**kw) -> ProbeSettings:
    """Probe settings for tests: 300 keV, Lobato, 2 Å slices, no supersampling unless given."""
    base = dict(energy=300e3, semiangle=30.0, potential_sampling=0.05, scan_sampling=0.5, slice_thickness=2.0,
                parametrization="lobato", supersampling=1)
    return ProbeSettings(**(base | kw))


def base_config(**stem_cfg) -> dict:
    cfg = {"systems": {"STO": {}}, "twist": {"angles_deg": [36.87], "max_sigma": 30}, "stem": stem_cfg}
    return validate_config(cfg)


def bilayer(theta=36.87, cells=(2, 2), translation=(0.0, 0.0)) -> Atoms:
    spec = BilayerSpec(bottom_cells=cells[0], top_cells=cells[1], translation=translation, vacuum=10.0)
    atoms = build_bilayer(nearest_csl(theta, 30), spec)
    atoms.info["rigid_positions"] = atoms.positions.copy()
    return atoms


# --------------------------------------------------------------------------------- grids, checks


def test_wavelength_and_reach_match_abtem():
    import abtem
    from abtem.core.energy import energy2wavelength

    assert optics.wavelength(300e3) == pytest.approx(energy2wavelength(300e3), rel=1e-6)
    probe = abtem.Probe(energy=300e3, semiangle_cutoff=30, extent=10, gpts=200)
    ours = optics.max_scattering_angle(0.05, 300e3)
    # ours is the conservative 2/3 aperture; abTEM reports the aperture edge incl. its taper
    assert ours <= min(probe.cutoff_angles) <= ours * 1.01
    assert optics.max_sampling_for_angle(ours, 300e3) == pytest.approx(0.05)


def test_fft_friendly_sizes():
    assert optics.fft_friendly(391) == 392  # 2^3 7^2
    assert optics.fft_friendly(2119) == 2160
    for n in (1, 97, 211, 1021):
        m = optics.fft_friendly(n)
        assert m >= n
        for p in optics.FFT_PRIMES:
            while m % p == 0:
                m //= p
        assert m == 1
    assert optics.grid_points(63.6, 0.03) * 0.03 >= 63.6


def test_refuses_sampling_that_cannot_reach_detector():
    cfg = base_config(planview={"potential_sampling": 0.05, "detector": {"outer_mrad": 200.0}})
    with pytest.raises(ConfigError) as exc:
        check_config(cfg["stem"])
    msg = str(exc.value)
    assert "stem.planview.potential_sampling" in msg and "stem.planview.detector.outer_mrad" in msg
    assert "131" in msg and "0.0328" in msg  # reach at 0.05 Å and the sampling that 200 mrad needs
    # paper set-up passes; a range beyond the detector is refused; cross-section detector too
    check_config(base_config()["stem"])
    with pytest.raises(ConfigError, match="stem.planview.ranges.haadf"):
        check_config(base_config(planview={"ranges": {"haadf": [60, 250], "laadf": [32, 120]}})["stem"])
    with pytest.raises(ConfigError, match="stem.cross_section.potential_sampling"):
        check_config(base_config(cross_section={"potential_sampling": 0.1})["stem"])


def test_schema_rejects_unknown_keys_and_values():
    with pytest.raises(ConfigError, match="stem.structures"):
        base_config(structures=["annealed"])
    with pytest.raises(ConfigError, match="stem.planview"):
        base_config(planview={"semiangle": 30})


# --------------------------------------------------------------------------------- specimens


def test_structure_atoms_refuses_relaxed_from_rigid_store():
    from twistox.core.io import structure_dataset

    ds = structure_dataset(build_bilayer(nearest_csl(36.87, 30), BilayerSpec()))
    assert len(structure_atoms(ds, "rigid")) == ds.sizes["atom"]
    with pytest.raises(ValueError, match="stem.structures"):
        structure_atoms(ds, "relaxed")


def test_planview_sample_extends_rigidly_and_centres_interface():
    atoms = bilayer(translation=(0.25, 0.1))
    # displace the top layer rigidly in-plane (as a relaxation may): the bulk continuation must follow
    shift = np.array([0.3, -0.2, 0.0])
    atoms.positions[atoms.arrays["layer"] == 1] += shift
    T, vac = 60.0, 4.0
    s = planview_sample(atoms, T, vac, "top")
    L = atoms.cell[0, 0]
    assert s.info["sample_thickness"] == pytest.approx(T, abs=A / 2)
    assert s.info["interface_depth"] == pytest.approx(T / 2, abs=A / 2)
    z = s.positions[:, 2]
    assert z.min() == pytest.approx(vac) and s.cell[2, 2] - z.max() == pytest.approx(vac)
    # beam enters through the top layer (layer 1 nearest z = 0)
    assert z[s.arrays["layer"] == 1].max() < z[s.arrays["layer"] == 0].min()
    # stoichiometry of whole perovskite planes: per plane Sigma A+X (AO) or B+2X (BO2)
    n = np.bincount(s.numbers, minlength=39)
    n_ao, n_bo2 = n[38] // 5, n[22] // 5
    assert n[8] == 5 * (n_ao + 2 * n_bo2)
    # each new plane sits on the in-plane sites of its layer's planes of the same kind (mod L)
    for layer, extra in ((0, 0.0), (1, shift[:2])):
        for kind in (0, 1):
            m = (s.arrays["layer"] == layer) & (s.arrays["plane_kind"] == kind)
            ref = atoms.info["rigid_positions"][(atoms.arrays["layer"] == layer) & (atoms.arrays["plane_kind"] == kind)]
            ref_xy = np.unique(np.round(np.mod(ref[:, :2] + extra, L), 4) % round(L, 4), axis=0)
            # entrance 'top': specimen rotated (x, y, z) -> (x, -y, -z); back to the sample frame
            got_xy = np.unique(np.round(np.mod(s.positions[m, :2] * [1, -1], L), 4) % round(L, 4), axis=0)
            assert len(got_xy) == len(ref_xy)
            d = np.abs(got_xy[:, None, :] - ref_xy[None, :, :])
            d = np.minimum(d, L - d).max(-1).min(1)
            assert d.max() < 1e-3


@pytest.mark.parametrize("view", ["100", "110"])
def test_cross_section_sample_periodic_and_dense(view):
    atoms = bilayer()
    L = atoms.cell[0, 0]
    s, geo = cross_section_sample(atoms, view, 40.0, 3.0)
    assert geo.lateral_period == pytest.approx(L if geo.beam_angle_deg == 0 else np.sqrt(2) * L)
    assert s.cell[2, 2] >= 40.0 and s.info["repeats_along_beam"] == int(np.ceil(40.0 / geo.beam_period))
    # same number of atoms per in-plane area as the supercell, nothing lost or duplicated in the re-cut
    assert len(s) / (s.cell[0, 0] * s.cell[2, 2]) == pytest.approx(len(atoms) / L**2)
    pos = np.round(s.positions, 3)
    assert len(np.unique(pos, axis=0)) == len(s)
    # stacking axis became the image y, with the vacuum padding on both sides
    assert s.positions[:, 1].min() == pytest.approx(3.0)
    assert s.cell[1, 1] - s.positions[:, 1].max() == pytest.approx(3.0)


# --------------------------------------------------------------------------------- physics


def sto_cell() -> Atoms:
    return Atoms("SrTiO3", scaled_positions=[(0, 0, 0), (.5, .5, .5), (.5, .5, 0), (.5, 0, .5), (0, .5, .5)],
                 cell=[A, A, A], pbc=True)


def test_bulk_srtio3_haadf_columns():
    """[001] HAADF: maxima on Sr and Ti-O columns, Sr brightest, O columns dim, lattice period a."""
    atoms = sto_cell().repeat((2, 2, 4))
    # 128 pixels per 2a: every column sits on a grid point (see the sub-pixel test below)
    s = probe(semiangle=30.0, potential_sampling=2 * A / 128, scan_sampling=A / 8)
    radial = planview_radial(atoms, s, 0.0, outer=100.0, step=2.0)
    img = integrate_range(radial, 60, 100).values  # (y, x) over 2a x 2a, 16 x 16
    n = img.shape[0] // 2
    # lattice period: the 2x2 cell image repeats with a
    assert np.allclose(img[:n, :n], img[n:, n:], rtol=1e-3, atol=1e-7)
    assert np.allclose(img[:n, :n], img[:n, n:], rtol=1e-3, atol=1e-7)
    sr, tio, o = img[0, 0], img[n // 2, n // 2], img[0, n // 2]
    assert sr > tio > o
    # both cation columns are local maxima of the periodic image
    for (i, j) in ((0, 0), (n // 2, n // 2)):
        neigh = [img[(i + di) % (2 * n), (j + dj) % (2 * n)] for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]
        assert img[i, j] > max(neigh)
    assert img.max() == pytest.approx(sr)


def test_supersampled_potential_restores_translation_invariance():
    """A Sr column half a pixel off the grid must image like one on it: abTEM's bilinear atom
    placement breaks that (~40 % at 0.058 Å); the supersampled, Fourier-cropped build restores it."""
    atoms = sto_cell().repeat((2, 2, 4))  # 135 px per 2a: Sr at 0 on a pixel, Sr at a half-way between

    def ratio(n):
        s = probe(potential_sampling=2 * A / 135, scan_sampling=A / 2, supersampling=n)
        img = integrate_range(planview_radial(atoms, s, 0.0, outer=100.0, step=2.0), 60, 100).values
        assert optics.grid_points(2 * A, s.potential_sampling) == 135
        return img[2, 2] / img[0, 0]

    assert ratio(1) < 0.7
    assert ratio(3) == pytest.approx(1.0, abs=0.03)


def test_fourier_crop_is_exact_for_band_limited_arrays():
    x = np.arange(60) / 60
    f = (1 + np.cos(2 * np.pi * 3 * x))[:, None] * (2 + np.sin(2 * np.pi * 5 * x))[None, :]
    g = fourier_crop(f[None], (20, 20))[0]
    xs = np.arange(20) / 20
    exact = (1 + np.cos(2 * np.pi * 3 * xs))[:, None] * (2 + np.sin(2 * np.pi * 5 * xs))[None, :]
    assert np.allclose(g, exact, atol=1e-12)


def test_com_of_weak_phase_object_follows_gradient():
    """COM = (λσ/2π) <∇V_proj> over the probe intensity: sign and magnitude within a few percent."""
    import abtem
    from abtem.core.energy import energy2sigma
    from abtem.potentials.iam import PotentialArray

    P, n = 40.0, 400
    V0 = 0.05 / energy2sigma(300e3)  # weak phase: σ V0 = 0.05 rad (V Å, projected)
    x = np.arange(n) * P / n
    V = V0 * np.sin(2 * np.pi * x / P)[:, None] * np.ones((1, n))  # abTEM index order [x, y]
    pot = PotentialArray(V[None].astype(np.float32), slice_thickness=1.0, extent=(P, P))
    s = probe(semiangle=4.0, potential_sampling=P / n, scan_sampling=P / 8)
    pat = simulate_patterns(None, s, (P, P / 8), None, pot=pot)
    fd = {"com_mask_factor": 1.5, "com_disc": "mean", "com_radius": "semiangle"}
    # the ±1st orders (0.49 mrad) overlap the 4 mrad disc: the BF mask (6 mrad) keeps all the signal
    com = com_map(pat, "bright_field", fd, s.semiangle)
    whole = com_map(pat, "whole", fd, s.semiangle)
    assert np.abs(com.values - whole.values).max() < 1e-3 * np.abs(whole.values).max()
    cx, cy = com.sel(xy="x").values[0], com.sel(xy="y").values[0]
    # probe-intensity weighting damps the q = 1/P component by the probe's intensity transform
    wave = abtem.Probe(energy=300e3, semiangle_cutoff=4.0, extent=P, gpts=n).build(lazy=False)
    I = np.abs(wave.array) ** 2
    d = np.real(np.sum(I * np.exp(2j * np.pi * x[:, None] / P)) / I.sum())
    x0 = com["x"].values
    lam, sigma = optics.wavelength(300e3), energy2sigma(300e3)
    expected = 1e3 * lam * sigma / (2 * np.pi) * V0 * (2 * np.pi / P) * np.cos(2 * np.pi * x0 / P) * abs(d)
    amp = np.abs(expected).max()
    assert amp > 0.01  # mrad: a measurable deflection
    assert np.max(np.abs(cx - expected)) < 0.03 * amp
    assert np.max(np.abs(cy)) < 0.01 * amp


def test_poisson_noise_variance():
    rng = np.random.default_rng(7)
    I, dose, area = 0.02, 1.0e4, 0.04  # 8 electrons per pixel on average
    noisy = poisson_noise(np.full((300, 300), I), dose, area, rng)
    assert noisy.mean() == pytest.approx(I, rel=0.01)
    assert noisy.var() == pytest.approx(I / (dose * area), rel=0.03)
    # counts are integers: the image takes values k / (dose * area)
    k = noisy * dose * area
    assert np.allclose(k, np.round(k))
    # same path through postprocess (pixel area from the scan sampling)
    img = xr.DataArray(np.full((200, 100), I), dims=("y", "x"),
                       coords={"y": np.arange(200) * 0.25, "x": np.arange(100) * 0.1})
    out = postprocess(img, interpolate=None, blur=None, tiles=1, dose=dose, rng=np.random.default_rng(1))
    assert out.values.var() == pytest.approx(I / (dose * 0.025), rel=0.05)


def test_postprocess_interpolation_blur_tiling_keep_mean():
    y = x = np.arange(32) * 0.25
    X, Y = np.meshgrid(x, y)
    f = 1 + 0.5 * np.cos(2 * np.pi * X / 8.0) * np.cos(2 * np.pi * Y / 4.0)
    img = xr.DataArray(f, dims=("y", "x"), coords={"y": y, "x": x})
    out = postprocess(img, interpolate=0.125, blur=None, tiles=(1, 2), dose=None)
    assert out.shape == (64, 128)
    Xo, Yo = np.meshgrid(out["x"].values, out["y"].values)
    exact = 1 + 0.5 * np.cos(2 * np.pi * Xo / 8.0) * np.cos(2 * np.pi * Yo / 4.0)
    assert np.allclose(out.values, exact, atol=1e-6)  # band-limited: Fourier interpolation is exact
    sig = 0.5
    blurred = postprocess(img, interpolate=None, blur=sig, tiles=1, dose=None).values
    damp = np.exp(-2 * np.pi**2 * sig**2 * ((1 / 8.0) ** 2 + (1 / 4.0) ** 2))
    assert np.allclose(blurred, 1 + damp * (f - 1), atol=1e-4)


def test_fourd_tiling_resolves_disc():
    n = optics.fourd_tiling(8.73, 1.0, 300e3, 5.0)
    assert 1.0e-3 * n * 8.73 / optics.wavelength(300e3) >= 5.0
    assert 1.0e-3 * (n - 1) * 8.73 / optics.wavelength(300e3) < 5.0


def test_resolve_focus_signs():
    f = resolve_focus([0.0, -12.0, "surface", "interface"], 95.0)
    assert [d for _, d in f] == [0.0, 120.0, 0.0, 95.0]


def test_checkpoints_resume(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return xr.Dataset({"a": ("x", np.arange(3.0), {"units": "1"})})

    ck = Checkpoint(tmp_path / "ck")
    key = settings_hash({"s": 1}, np.arange(3.0))
    first = ck.dataset("part", compute, key=key)
    again = ck.dataset("part", compute, key=key)
    assert len(calls) == 1 and np.array_equal(first["a"], again["a"])
    ck.dataset("part", compute, key=settings_hash({"s": 2}, np.arange(3.0)))  # other settings: recomputed
    assert len(calls) == 2
    ck.clear()
    assert not (tmp_path / "ck").exists()


@pytest.mark.slow
def test_drivers_on_toy_bilayer(tmp_path):
    """All three parts on the rigid Sigma5 bilayer with coarse settings: names, dims, units."""
    import logging

    cfg = copy.deepcopy(base_config(
        structures=["rigid"], sample={"thickness_nm": 0.0},
        planview={"focus": ["surface", "interface"], "potential_sampling": 0.06, "scan_sampling": 0.8,
                  "detector": {"step_mrad": 4.0, "outer_mrad": 100.0},
                  "ranges": {"haadf": [60, 100], "laadf": [32, 100]}, "tiles": 2},
        cross_section={"views": ["110"], "thickness_nm": 0.9, "scan_sampling": 0.8, "potential_sampling": 0.08,
                       "detector_mrad": [40, 80]},
        fourd={"potential_sampling": 0.3, "scan_sampling": 2.0, "min_disc_radius_px": 1.5},
        postprocess={"interpolate_sampling": 0.4})["stem"])
    check_config(cfg)
    structs = {"rigid": bilayer(cells=(1, 1))}
    log = logging.getLogger("test")
    ck = Checkpoint(tmp_path / "ck")
    pv = run_planview(structs, cfg, "cpu", 1, ck, log)
    assert pv["haadf"].dims == ("defocus", "y_image", "x_image") and pv.sizes["defocus"] == 2
    assert pv["haadf"].attrs["units"] == "1" and float(pv["haadf"].min()) >= 0
    cs = run_cross_sections(structs, cfg, "cpu", 1, ck, log)
    assert cs["cross_section_110"].dims == ("z_110", "s_110")
    fd, _ = run_fourd(structs, cfg, "cpu", 1, ck, log)
    assert fd["com"].dims == ("xy", "y", "x") and fd["com"].attrs["units"] == "mrad"
    assert fd["com"].attrs["com_mode"] == "bright_field" and fd["com_whole"].attrs["com_mode"] == "whole"
    assert list(fd["xy"].values) == ["x", "y"]
    from twistox.stem.stage import figures, merge_parts

    merged = merge_parts([pv, cs, fd])
    assert {"haadf", "com", "com_whole", "cross_section_110"} <= set(merged.data_vars)
    figs = figures(merged.assign_attrs(structures=["rigid"]), cfg)
    assert set(figs) == {"haadf", "laadf", "cross_sections", "com", "com_modes"}


def test_structure_atoms_reads_relaxed_and_rigid_from_relaxed_store():
    from twistox.core.io import structure_dataset

    ds = structure_dataset(build_bilayer(nearest_csl(36.87, 30), BilayerSpec()))
    rigid = ds["positions"].values.copy()
    ds["positions_rigid"] = (("atom", "xyz"), rigid, {"units": "Å"})
    ds["positions"] = (("atom", "xyz"), rigid + np.random.default_rng(0).normal(0, 0.05, rigid.shape), {"units": "Å"})
    assert np.allclose(structure_atoms(ds, "relaxed").positions, ds["positions"].values)
    assert np.allclose(structure_atoms(ds, "rigid").positions, rigid)
    # the bulk continuation uses the rigid template whatever the relaxed positions are
    assert np.allclose(structure_atoms(ds, "relaxed").info["rigid_positions"], rigid)


def test_centre_of_mass_ignores_unpaired_nyquist_row():
    k = np.arange(-4, 4) * 0.5  # even grid: -2.0 has no +2.0 partner
    p = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2))
    p[0, :] += 1.0  # intensity in the unpaired row must not bias the COM
    cx, cy, _ = centre_of_mass(p[None], k, k, mode="whole", mask_factor=1.5, disc="mean")
    assert abs(cx[0]) < 1e-12 and abs(cy[0]) < 1e-12
    shifted = np.roll(p[1:, 1:], 1, axis=1)  # odd 7x7 pattern [ky, kx] shifted by +1 pixel in kx
    cx, cy, _ = centre_of_mass(shifted[None], k[1:], k[1:], mode="whole", mask_factor=1.5, disc="mean")
    assert cx[0] > 0.1 and abs(cy[0]) < 1e-12


def test_non_finite_inputs_and_outputs_are_refused():
    from twistox.core.io import structure_dataset
    from twistox.stem.multislice import build_potential
    from twistox.stem.postprocess import check_finite

    ds = structure_dataset(build_bilayer(nearest_csl(36.87, 30), BilayerSpec()))
    ds["positions"][3, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        structure_atoms(ds, "rigid")
    atoms = sto_cell()
    atoms.positions[0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        build_potential(atoms, probe())
    img = xr.DataArray(np.array([[1.0, np.nan]]), dims=("y", "x"))
    with pytest.raises(FloatingPointError, match="plan view relaxed.*1 non-finite"):
        check_finite(img, "plan view relaxed")


def test_com_defaults_of_the_experimental_path_match_the_schema():
    """dpc.com_from_4dstem's keyword defaults are the analysis.experiment schema's defaults."""
    import inspect

    import yaml

    from twistox.analysis import dpc

    root = Path(__file__).resolve().parents[1] / "workflow" / "schemas"
    schema = yaml.safe_load((root / "analysis.schema.yaml").read_text())
    entry = schema["properties"]["experiment"]["items"]["properties"]
    params = inspect.signature(dpc.com_from_4dstem).parameters
    for key, arg in (("com_mode", "mode"), ("com_mask_factor", "mask_factor"), ("com_disc", "disc")):
        assert params[arg].default == entry[key]["default"], key
    stem_fd = yaml.safe_load((root / "stem.schema.yaml").read_text())["properties"]["fourd"]["properties"]
    for key in ("com_mode", "com_mask_factor", "com_disc"):
        assert stem_fd[key]["default"] == entry[key]["default"], key
