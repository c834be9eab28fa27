"""Contrast calibration of the incoherent model against an image of a known bilayer, and labelled
patches cut from such images (the abTEM fine-tuning source)."""

import numpy as np
import pytest

from twistox.imaging import regressor as reg
from twistox.imaging.calibration import PARAMS, contrast_ranges, fit_contrast
from twistox.imaging.patches import ImagingModel, PatchSpec, planes_for_sample, registry, render, rot

A = 3.905
TRUE = {"exponent": 1.9, "x_weight": 1.8, "b_weight": 0.7, "blur": 0.45, "layer_ratio": 1.4}


@pytest.fixture(scope="module")
def model():
    return ImagingModel(planes=planes_for_sample(A, 21.5, 10.7), focus_depth=10.7)


def bilayer(theta=36.87, alpha=45.0):
    th, al = np.radians(theta), np.radians(alpha)
    return np.stack([rot(al - th / 2) * A, rot(al + th / 2) * A]), np.array([[0.3, -0.2], [1.1, 0.7]])


def image(model, bases, shifts, n=120, s=0.1, dose=None, seed=0, **p):
    c = np.arange(n) * s
    yy, xx = np.meshgrid(c, c, indexing="ij")
    img = render(model, np.column_stack([xx.ravel(), yy.ravel()])[None], bases[None], shifts[None],
                 exponent=p["exponent"], blur=p["blur"], layer_weight=np.array([[1.0, p["layer_ratio"]]]),
                 x_weight=p["x_weight"], b_weight=p["b_weight"]).reshape(n, n)
    img = np.clip(img, 0, None)
    img = img / img.mean() * 0.05  # a fraction of the beam, like abTEM's HAADF
    if dose:
        img = np.random.default_rng(seed).poisson(img * dose * s * s) / (dose * s * s)
    return img


def test_fit_recovers_known_contrast(model):
    """An image made by the model itself with off-default parameters and the paper's dose: the fit
    finds them (the default start values correlate worse)."""
    bases, shifts = bilayer()
    img = image(model, bases, shifts, dose=4.2e6, **TRUE)
    f = fit_contrast(img, 0.1, model, bases, shifts, max_pixels=5000)
    for k in PARAMS:
        assert f[k] == pytest.approx(TRUE[k], rel=0.1), (k, f)
    assert f["correlation"] > f["correlation_default"]
    r = contrast_ranges(f, 0.2)
    assert r["blur"][0] < f["blur"] < r["blur"][1] and r["exponent"][1] / r["exponent"][0] == pytest.approx(1.1 / 0.9)


def test_image_patches_are_the_image_at_the_labelled_point(model):
    """Patches cut from an image of a known bilayer equal the model rendered at the same points, and
    their labels are the analytic registry at the centre."""
    bases, shifts = bilayer(22.62, 30.0)
    p = dict(exponent=1.7, x_weight=1.0, b_weight=1.0, blur=0.5, layer_ratio=1.0)
    img = image(model, bases, shifts, n=200, **p)
    spec = PatchSpec(size=15, sampling=0.4)
    X, d = reg.image_patches(img, 0.1, bases, shifts, spec, 20, np.random.default_rng(1))
    assert X.shape == (20, 15, 15) and d.shape == (20, 2) and np.all(np.abs(d) <= 0.5)
    # find each patch's centre again by rendering candidates: the labelled centre must reproduce the patch
    rng = np.random.default_rng(1)
    half = 7 * 0.4
    yc = rng.uniform(half, 199 * 0.1 - half, 20)
    xc = rng.uniform(half, 199 * 0.1 - half, 20)
    c = np.column_stack([xc, yc])
    true = registry(np.linalg.solve(bases[0], (c - shifts[0]).T).T, np.linalg.solve(bases[1], (c - shifts[1]).T).T)
    assert np.allclose(d, true, atol=1e-6)
    g = spec.grid()
    ref = render(model, (c[:, None, :] + g[None]), np.broadcast_to(bases, (20, 2, 2, 2)), np.broadcast_to(shifts, (20, 2, 2)),
                 exponent=1.7, blur=0.5).reshape(20, 15, 15)
    from twistox.imaging.patches import normalise

    rho = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(X, normalise(ref))]
    assert min(rho) > 0.99
    # a fresh Poisson realisation per call
    X1, _ = reg.image_patches(img, 0.1, bases, shifts, spec, 4, np.random.default_rng(2), dose=4.2e6)
    X2, _ = reg.image_patches(img, 0.1, bases, shifts, spec, 4, np.random.default_rng(3), dose=4.2e6)
    assert not np.allclose(X1, X2)


def test_stage_multislice_training_wiring(model, monkeypatch):
    """regressor.multislice: the calibration image is simulated at calibration_theta_deg (not the sample's
    twist), the training images at the sample's CSL with the configured translations; contrast ranges
    come back centred on the fit. The abTEM simulation is replaced by the incoherent model here (the real
    one is measured in benchmarks/imaging_heldout.py)."""
    import json

    from twistox.core.config import _check, _schema
    from twistox.imaging import multislice
    from twistox.imaging.inference import stage

    calls = []

    def fake(theta_deg, translation, stem_cfg, **kw):
        calls.append((theta_deg, tuple(translation), kw.get("max_sigma")))
        bases, _ = bilayer(theta_deg, 30.0)
        shifts = np.array([[0.0, 0.0], bases[1] @ np.asarray(translation)])
        img = image(model, bases, shifts, n=400, dose=4.2e6, **TRUE)
        return multislice.KnownImage(img, 0.1, bases, shifts, theta_deg, 4.2e6)

    monkeypatch.setattr(multislice, "simulate_known_bilayer", fake)
    cfg = {"regressor": {"multislice": {"calibrate": True, "translations": [[0.3, 0.6]]}}}
    _check(cfg, _schema("image_inference"), ("image_inference",))
    contrast, known, fit = stage.multislice_training(cfg, {}, 22.62, model, max_sigma=13)
    assert calls == [(36.87, (0.0, 0.0), None), (22.62, (0.3, 0.6), 13)]
    assert len(known) == 1 and fit["exponent"] == pytest.approx(TRUE["exponent"], rel=0.1)
    lo, hi = contrast["layer_ratio"]
    assert lo < TRUE["layer_ratio"] < hi and hi / lo == pytest.approx(1.15 / 0.85)
    # infer uses both: the contrast ranges and the known images' patches
    img = known[0].image
    c = json.loads(json.dumps(cfg))
    c["regressor"].update(patch_size=15, patch_sampling=0.4, n_train=64, n_val=16, epochs=1, width=2, stride_A=2.0)
    _check(c, _schema("image_inference"), ("image_inference",))
    cut = []
    image_patches = reg.image_patches

    def spy(*a, **kw):
        out = image_patches(*a, **kw)
        cut.append((len(out[0]), kw.get("dose")))
        return out

    monkeypatch.setattr(reg, "image_patches", spy)
    ds, _, meta = stage.infer(img, 0.1, c, model, seed=0, known_images=known, known_fraction=0.5, contrast=contrast)
    assert cut == [(32, 4.2e6)]  # half of the 64 training patches, fresh noise at the image's dose
    assert meta["metrics"]["known_images"] == 1 and meta["patch_spec"]["layer_ratio"] == list(contrast["layer_ratio"])


def test_contrast_config_must_be_ranges():
    from twistox.core.config import ConfigError, _check, _schema
    from twistox.imaging.inference import stage

    c = {"regressor": {"contrast": {"blur": [0.8, 0.3]}}}
    _check(c, _schema("image_inference"), ("image_inference",))
    with pytest.raises(ValueError, match=r"image_inference\.regressor\.contrast\.blur"):
        stage.check_config(c)
    with pytest.raises(ConfigError, match="contrast"):
        _check({"regressor": {"contrast": {"blur": [0.3]}}}, _schema("image_inference"), ("image_inference",))
