"""Stage image_inference on a synthetic stem.zarr (incoherent model), experiment images in, bad input out."""

import json

import numpy as np
import pytest
import xarray as xr

from twistox.core.config import ConfigError, _check, _schema
from twistox.imaging.inference import stage
from twistox.imaging.io import ImageError, read_haadf
from twistox.imaging.patches import render, rot

A = 3.905
SYSTEM = {"A": "Sr", "B": "Ti", "X": "O", "a": A}
TOY = {"regressor": {"patch_size": 25, "patch_sampling": 0.4, "n_train": 1500, "n_val": 200, "epochs": 3,
                     "width": 8, "stride_A": 1.0}}


def cfg(extra=None):
    c = json.loads(json.dumps(TOY | (extra or {})))
    _check(c, _schema("image_inference"), ("image_inference",))
    return c


def fake_stem(theta=22.62, alpha=45.0, L=14.08, tiles=3, s=0.1, seed=0, top_shear=0.0):
    """A stem.zarr look-alike: haadf (defocus, y_image, x_image) of a rigid bilayer with its attrs.
    top_shear: homogeneous crystal-frame ε_xy of the top layer (frame at alpha + theta/2)."""
    model = stage.imaging_model_for(A, (38, 22, 8), 21.5, 10.7, 10.7, 300e3, 30.0, 1590.0)
    n = int(round(tiles * L / s))
    c = np.arange(n) * s
    yy, xx = np.meshgrid(c, c, indexing="ij")
    th, al = np.radians(theta), np.radians(alpha)
    bases = np.stack([rot(al - th / 2) * A, rot(al + th / 2) @ np.array([[1, top_shear], [top_shear, 1]]) * A])[None]
    img = render(model, np.column_stack([xx.ravel(), yy.ravel()])[None], bases, np.zeros((1, 2, 2))).reshape(n, n)
    img = img / img.mean() * 0.05
    rng = np.random.default_rng(seed)
    img = rng.poisson(img * 4.2e6 * s * s) / (4.2e6 * s * s)
    da = xr.DataArray(np.stack([img, img])[None].squeeze(0), dims=("defocus", "y_image", "x_image"),
                      coords={"y_image": c, "x_image": c, "defocus": [0.0, -107.0], "focus_depth": ("defocus", [0.0, 107.0]),
                              "focus_label": ("defocus", ["surface", "interface"])})
    ds = xr.Dataset({"haadf": da})
    ds.attrs.update(theta_deg=theta, supercell_length=L, layer_angles_deg=[alpha - theta / 2, alpha + theta / 2],
                    planview_sample=json.dumps({"sample_thickness": 215.0, "interface_depth": 107.0}),
                    planview_settings=json.dumps({"energy": 300e3, "semiangle": 30.0, "cs": 1590.0}))
    return ds, bases[0]


@pytest.fixture(scope="module")
def result():
    stem, bases = fake_stem()
    c = cfg()
    img, s, model, hint, label = stage.simulated_input(stem, c, {}, SYSTEM)
    assert label == "interface" and s == pytest.approx(0.1) and model.focus_depth == 107.0
    ds, net, meta = stage.infer(img, s, c, model, layer_angles_deg=hint, seed=0)
    return ds, bases, meta, stem


def test_binding_names_units_and_twist(result):
    ds, bases, meta, stem = result
    for v in ("exx", "eyy", "exy", "rotation", "local_twist"):
        assert ds[v].dims == ("y", "x")
    assert ds["slip"].dims == ("xy", "y", "x") and ds["slip"].attrs["units"] == "Å"
    assert ds["local_twist"].attrs["units"] == "deg" and ds["rotation"].attrs["units"] == "rad"
    assert abs(ds.attrs["theta_deg"] - 22.62) <= max(ds.attrs["theta_uncertainty_deg"], 1e-3)
    assert abs(ds.attrs["theta_deg"] - 22.62) < 0.05


def test_registry_map_matches_the_rigid_structure(result):
    """Against the analytic registry of the rendered bilayer; toy training, so a loose bound."""
    from twistox.imaging.patches import registry
    from twistox.imaging.regressor import registry_error

    ds, bases, meta, _ = result
    Y, X = np.meshgrid(ds["y"].values, ds["x"].values, indexing="ij")
    r = np.stack([X.ravel(), Y.ravel()])
    true = registry(np.linalg.solve(bases[0], r).T, np.linalg.solve(bases[1], r).T)
    err = registry_error((ds["slip_ab"].values / A).reshape(2, -1).T, true, A)
    assert np.median(err) < 0.6  # chance level is ~1.5 Å
    # local twist from curl D recovers θ on average
    assert np.nanmedian(ds["local_twist"].values) == pytest.approx(22.62, abs=3.0)


def test_comparison_with_atomistic_truth(result):
    ds, _, _, stem = result
    L = stem.attrs["supercell_length"]
    n = 40
    g = np.arange(n) * L / n
    tw = 22.62 + 0.5 * np.sin(2 * np.pi * g / L)[None, :] * np.ones((n, 1))
    strain = xr.Dataset({"interlayer_twist": (("y", "x"), tw),
                         "eps_xy": (("plane", "y", "x"), np.zeros((2, n, n))),
                         "rotation": (("plane", "y", "x"), np.zeros((2, n, n)))},
                        coords={"plane": [3, 4], "plane_layer": ("plane", [0, 1]), "y": g, "x": g})
    strain.attrs.update(supercell_length=L, interface_planes=[3, 4])
    out = stage.compare_with_truth(ds, strain, 22.62)
    assert out["theta_error_deg"] == pytest.approx(ds.attrs["theta_deg"] - 22.62)
    assert out["local_twist_true_mean_deg"] == pytest.approx(22.62, abs=0.05)
    assert np.isfinite(out["local_twist_correlation"])
    assert np.isnan(out["gpa_layer0_exy_correlation"])  # a zero true field has no correlation


def test_figure(result, tmp_path):
    from twistox.core.plots import save
    from twistox.imaging import figures

    ds, _, _, stem = result
    p = save(figures.overview(ds, stem["haadf"].isel(defocus=1).values, 0.1, "test"), tmp_path / "f.png")
    assert p.stat().st_size > 10_000


def test_config_errors():
    with pytest.raises(ValueError, match="patch_size"):
        stage.check_config(cfg({"regressor": {"patch_size": 32}}))
    with pytest.raises(ConfigError, match="image_inference.regressor.epochs"):
        cfg({"regressor": {"epochs": 0}})
    stem, _ = fake_stem(L=8.73, tiles=2)
    with pytest.raises(ValueError, match="image_inference.focus"):
        stage.simulated_input(stem, cfg({"focus": 5}), {}, SYSTEM)
    with pytest.raises(ValueError, match="image_inference.image"):
        stage.simulated_input(stem, cfg({"image": "laadf"}), {}, SYSTEM)


def test_read_haadf(tmp_path):
    img = np.random.default_rng(0).random((80, 96))
    np.save(tmp_path / "a.npy", img)
    out, ps = read_haadf(tmp_path / "a.npy", pixel_size=0.2)
    assert out.shape == (80, 96) and ps == 0.2
    with pytest.raises(ImageError, match="pixel_size"):
        read_haadf(tmp_path / "a.npy")  # no calibration anywhere
    np.save(tmp_path / "b.npy", np.zeros((2, 80, 80)))
    with pytest.raises(ImageError, match="2D"):
        read_haadf(tmp_path / "b.npy", pixel_size=0.2)
    np.save(tmp_path / "c.npy", np.ones((80, 80)))
    with pytest.raises(ImageError, match="constant"):
        read_haadf(tmp_path / "c.npy", pixel_size=0.2)
    with pytest.raises(ImageError, match="not found"):
        read_haadf(tmp_path / "missing.npy", pixel_size=0.2)
    from PIL import Image

    Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path / "d.tif")
    out, _ = read_haadf(tmp_path / "d.tif", pixel_size=0.2)
    assert out.shape == (80, 96)
    (tmp_path / "e.xyz").write_text("x")
    with pytest.raises(ImageError, match="format"):
        read_haadf(tmp_path / "e.xyz", pixel_size=0.2)


def test_experiment_image_runs_the_same_analysis(tmp_path):
    stem, _ = fake_stem(theta=36.87, L=8.73, tiles=4)
    img = stem["haadf"].isel(defocus=1).values
    np.save(tmp_path / "haadf.npy", img)
    c = cfg({"regressor": {"patch_size": 21, "patch_sampling": 0.4, "n_train": 300, "n_val": 50, "epochs": 1,
                           "width": 4, "stride_A": 2.0}, "specimen": {"thickness_nm": 2.15}})
    entry = {"path": str(tmp_path / "haadf.npy"), "pixel_size": 0.1, "kind": "haadf", "sample": "theta36.87_m3n1"}
    ds = stage.experiment_inference(entry, c, SYSTEM)
    assert ds.attrs["theta_deg"] == pytest.approx(36.87, abs=0.1)
    assert ds["slip"].dims == ("xy", "y", "x")
    with pytest.raises(ImageError, match="pixel_size"):
        stage.experiment_inference({**entry, "pixel_size": None}, c, SYSTEM)


def test_haadf_experiment_entries_go_to_image_inference_not_analysis(tmp_path):
    """kind haadf is a schema value; the analysis stage skips it (it would read it as a COM map), the
    image_inference stage takes it; the workflow-start check reads it as an image and wants its calibration."""
    import copy

    import yaml

    from conftest import TOY_CONFIG
    from twistox.analysis.experiment import experiment_entries
    from twistox.checks import check_all

    img = np.random.default_rng(1).random((96, 96))
    np.save(tmp_path / "h.npy", img)
    from PIL import Image

    Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path / "h.tif")
    np.save(tmp_path / "com.npy", np.random.default_rng(2).random((2, 16, 16)))
    toy = yaml.safe_load(TOY_CONFIG.read_text())
    sample = "theta36.87_m3n1"
    entries = [{"path": str(tmp_path / "com.npy"), "sample": sample, "pixel_size": 0.5},
               {"path": str(tmp_path / "h.npy"), "sample": sample, "pixel_size": 0.2, "kind": "haadf"},
               {"path": str(tmp_path / "h.tif"), "sample": sample, "pixel_size": 0.2, "kind": "haadf", "name": "tif"}]
    c = copy.deepcopy(toy)
    c.setdefault("analysis", {})["experiment"] = entries
    check_all(c)  # schema accepts kind haadf, .tif allowed for it, images read with their pixel size
    first = next(iter(c["systems"]))
    assert [n for n, _ in experiment_entries(entries, first, sample, first)] == ["experiment_0"]
    assert [n for n, _ in experiment_entries(entries, first, sample, first, kinds=("haadf",))] == ["experiment_1", "tif"]
    c = copy.deepcopy(toy)
    c.setdefault("analysis", {})["experiment"] = [{**entries[1], "pixel_size": None}]
    with pytest.raises(ConfigError, match=r"analysis\.experiment\[0\]\.pixel_size"):
        check_all(c)
    c = copy.deepcopy(toy)
    c.setdefault("analysis", {})["experiment"] = [{**entries[0], "path": str(tmp_path / "h.tif")}]
    with pytest.raises(ConfigError, match="allowed"):  # .tif only for kind haadf
        check_all(c)


def test_report_reads_image_inference_attrs(result, tmp_path):
    """summary.csv gets the image-derived twist and the image-vs-truth correlations; NaN without the artifact."""
    from twistox.core.io import write_dataset
    from twistox.report.stage import IMAGE_ATTRS, sample_row

    ds, _, _, _ = result
    d = tmp_path / "theta22.62_m5n1"
    sc = xr.Dataset(attrs={"theta_deg": 22.62, "sigma": 13, "supercell_length": 14.08})
    write_dataset(sc, d / "supercell.zarr")
    row = sample_row("STO", d.name, d)
    assert all(np.isnan(row[f"image_{k}"]) for k in IMAGE_ATTRS)
    ds = ds.copy()
    ds.attrs.update(local_twist_correlation=0.8, gpa_layer0_exy_correlation=0.3, theta_error_deg=0.01)
    write_dataset(ds, d / "image_inference.zarr")
    row = sample_row("STO", d.name, d)
    assert row["image_theta_deg"] == pytest.approx(ds.attrs["theta_deg"])
    assert row["image_theta_uncertainty_deg"] == pytest.approx(ds.attrs["theta_uncertainty_deg"])
    assert row["image_local_twist_correlation"] == pytest.approx(0.8)
    assert row["image_gpa_layer0_exy_correlation"] == pytest.approx(0.3)
    assert np.isnan(row["image_gpa_layer1_exy_correlation"])  # attr absent: NaN, not invented
    assert row["theta_deg"] == 22.62  # the supercell's θ column is not overwritten


def test_coarse_scan_step_falls_back_to_the_sample_geometry():
    """An image interpolated from a scan coarser than alias_free_scan_step: the image twist is not measured
    (aliased {220} on the {100} ring), the reason is recorded, the regressor still runs around the CSL."""
    stem, _ = fake_stem()
    settings = json.loads(stem.attrs["planview_settings"]) | {"scan_sampling": 1.0}
    stem.attrs["planview_settings"] = json.dumps(settings)
    assert stage.planview_scan_step(stem) == 1.0
    c = cfg({"regressor": TOY["regressor"] | {"n_train": 200, "n_val": 50, "epochs": 1}})
    img, s, model, hint, _ = stage.simulated_input(stem, c, {}, SYSTEM)
    ds, _, _ = stage.infer(img, s, c, model, layer_angles_deg=hint, seed=0, scan_step=1.0)
    assert np.isnan(ds.attrs["theta_deg"]) and ds.attrs["theta_source"] == "sample geometry"
    assert "alias" in ds.attrs["theta_failure"]
    assert ds.attrs["scan_step_A"] == 1.0 and ds.attrs["alias_free_scan_step_A"] == pytest.approx(0.7614, abs=1e-3)
    assert np.isfinite(ds["local_twist"].values).mean() > 0.9


@pytest.mark.parametrize("shear", [0.01, -0.01])
def test_layer_strain_is_read_in_the_sample_frame_of_each_layer(shear):
    """45° frame (m, n odd): the top layer at 56.3° is reported mod 90 as −33.7°, a frame in which its ε_xy has the
    opposite sign. A homogeneous crystal-frame shear of the top layer must come out with its own sign."""
    stem, _ = fake_stem(top_shear=shear)
    c = cfg({"regressor": TOY["regressor"] | {"n_train": 200, "n_val": 50, "epochs": 1}})
    img, s, model, hint, _ = stage.simulated_input(stem, c, {}, SYSTEM)
    ds, _, _ = stage.infer(img, s, c, model, layer_angles_deg=hint, seed=0)
    assert ds.attrs["lattice_angles_deg"][1] == pytest.approx(hint[1] - 90.0, abs=0.1)  # as measured, mod 90
    assert ds.attrs["layer_frame_angles_deg"] == pytest.approx(hint, abs=0.1)
    inner = (slice(10, -10), slice(10, -10))  # GPA's edge band (one mask width) left out
    exy = ds["layer_exy"].sel(layer=1).values[inner]
    assert np.nanmedian(exy) == pytest.approx(shear, rel=0.1)
    assert abs(np.nanmedian(ds["layer_exy"].sel(layer=0).values[inner])) < 0.1 * abs(shear)
