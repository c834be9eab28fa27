"""Registry regressor: labels, periodic encoding, local twist from curl D, training, model file."""

import numpy as np
import pytest

from twistox.imaging import regressor as reg
from twistox.imaging.patches import ImagingModel, PatchSpec, generate_patches, planes_for_sample, registry, render, rot

A = 3.905


@pytest.fixture(scope="module")
def model():
    return ImagingModel(planes=planes_for_sample(A, 20.0, 10.0), focus_depth=10.0)


def rigid_registry(theta_deg, alpha_deg, spacing, n, shift=(0.0, 0.0)):
    """Analytic δ = f_b − f_t on an n x n grid (rows = y) of a rigid bilayer, top shifted by `shift` (Å)."""
    th, al = np.radians(theta_deg), np.radians(alpha_deg)
    Bb, Bt = rot(al - th / 2) * A, rot(al + th / 2) * A
    c = np.arange(n) * spacing
    yy, xx = np.meshgrid(c, c, indexing="ij")
    r = np.stack([xx.ravel(), yy.ravel()])
    d = registry(np.linalg.solve(Bb, r).T, np.linalg.solve(Bt, r - np.array(shift)[:, None]).T)
    return d.T.reshape(2, n, n)


def test_untwisted_registry_is_the_top_layer_shift():
    d = rigid_registry(0.0, 30.0, 0.5, 8, shift=rot(np.radians(30.0)) @ (0.7, -1.1))
    assert np.allclose(A * d[0], 0.7) and np.allclose(A * d[1], -1.1)
    D = reg.slip_vectors(d, A, 30.0)
    assert np.allclose(D[:, 3, 3], rot(np.radians(30.0)) @ (0.7, -1.1))


@pytest.mark.parametrize("theta", [3.0, -5.0, 22.62])
def test_local_twist_of_a_rigid_twist(theta):
    d = rigid_registry(theta, 10.0, 0.5, 40)
    lt = reg.local_twist(d, A, 10.0, 0.5)
    assert np.allclose(lt[2:-2, 2:-2], theta, atol=0.01)
    # mirror (x -> −x) reverses the twist
    dm = rigid_registry(-theta, -10.0, 0.5, 40)
    assert np.allclose(reg.local_twist(dm, A, -10.0, 0.5)[2:-2, 2:-2], -theta, atol=0.01)


def test_periodic_encoding():
    d = np.array([[0.49, -0.3], [-0.25, 0.1]])
    assert np.allclose(reg.decode(reg.encode(d)), d)
    assert reg.registry_error(np.array([[0.49, 0.0]]), np.array([[-0.49, 0.0]]), A)[0] == pytest.approx(0.02 * A)


def test_labels_follow_the_rendered_structure(model):
    """Re-render a generated (noise-free) patch's labels independently: the image of the bilayer must
    not change when both layers move together, and must change with the registry."""
    spec = PatchSpec(size=21, sampling=0.4, theta_deg=10.0, mean_angle_deg=0.0)
    g = spec.grid()[None]
    th = np.radians(10.0)
    bases = np.stack([rot(-th / 2) * A, rot(th / 2) * A])[None]
    base = render(model, g, bases, np.zeros((1, 2, 2)))
    # translating both layers by a common vector of the coincidence... the registry at the centre is what
    # matters: shifting only the top layer by a full top-lattice vector leaves the image unchanged
    same = render(model, g, bases, np.array([[[0.0, 0.0], bases[0, 1] @ (1.0, 0.0)]]))
    assert np.allclose(base, same, atol=1e-6 * np.abs(base).max())
    other = render(model, g, bases, np.array([[[0.0, 0.0], [0.5 * A, 0.0]]]))
    assert not np.allclose(base, other, atol=1e-3 * np.abs(base).max())
    X, y = generate_patches(model, spec, 4, np.random.default_rng(0), augment=False)
    assert X.shape == (4, 21, 21) and np.all(np.abs(y) <= 0.5)
    assert np.allclose(X.mean(axis=(1, 2)), 0, atol=1e-5) and np.allclose(X.std(axis=(1, 2)), 1, atol=1e-3)


def test_training_learns_the_registry_and_the_model_file_round_trips(model, tmp_path):
    spec = PatchSpec(size=25, sampling=0.4, theta_deg=10.0, mean_angle_deg=20.0)
    net, metrics = reg.train(model, spec, n_train=1500, n_val=200, epochs=3, width=8, seed=0)
    val = metrics["validation"]
    # guessing gives a mean error of ~0.38 a = 1.5 Å; a few CPU seconds of training must do much better
    assert val["mean_A"] < 0.5, val
    assert metrics["history"][-1]["val_mean_A"] < metrics["history"][0]["val_mean_A"]
    meta = reg.model_meta(model, spec, 8, metrics)
    reg.save(tmp_path / "m.pt", net, meta)
    net2, meta2 = reg.load(tmp_path / "m.pt")
    X, _ = generate_patches(model, spec, 16, np.random.default_rng(1))
    assert np.allclose(reg.predict(net, X), reg.predict(net2, X), atol=1e-6)
    assert meta2["metrics"]["validation"]["mean_A"] == pytest.approx(val["mean_A"])
    assert reg.spec_from_meta(meta2) == spec
