"""The image-inference chain on one (cheap) abTEM multislice image of a rigid Σ13 bilayer (22.62°):
twist from the image, the incoherent patch model against abTEM, and the registry regressor on abTEM."""

import numpy as np
import pytest

from twistox.imaging import regressor as reg
from twistox.imaging import twist_angle
from twistox.imaging.patches import ImagingModel, PatchSpec, planes_for_sample, registry, render, rot

abtem = pytest.importorskip("abtem")

A = 3.905
DOSE = 4.2e6


@pytest.fixture(scope="module")
def sim():
    return simulate(22.62)


def simulate(theta):
    """abTEM ADF (50–80 mrad, 30 mrad probe, 300 keV) over one CSL cell (1 + 1 cells thick), then the
    paper's post-processing: Fourier interpolation to 0.1 Å, 0.5 Å blur, 4 x 4 tiles, Poisson noise."""
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    abtem.config.set({"device": "cpu", "precision": "float32", "diagnostics.progress_bar": False})
    atoms = build_bilayer(nearest_csl(theta, 30), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=8.0))
    L = float(atoms.cell[0, 0])
    pot = abtem.Potential(atoms, sampling=0.08, slice_thickness=2.0, parametrization="lobato", projection="infinite")
    probe = abtem.Probe(energy=300e3, semiangle_cutoff=30.0, Cs=1590.0)
    probe.grid.match(pot)
    scan = abtem.GridScan(start=(0, 0), end=(L, L), sampling=0.35, endpoint=False)
    det = abtem.AnnularDetector(inner=50.0, outer=80.0)
    img = np.asarray(probe.scan(pot, scan=scan, detectors=det).compute().array).T  # [y, x]
    n0 = img.shape[0]
    s = 0.1
    n = int(round(L / s))
    F = np.fft.fft2(img)
    k0 = np.fft.fftfreq(n0, 1 / n0).astype(int)
    G = np.zeros((n, n), complex)
    G[np.ix_(k0 % n, k0 % n)] = F
    k = np.fft.fftfreq(n, L / n)
    G *= np.exp(-2 * np.pi**2 * 0.5**2 * (k[:, None] ** 2 + k[None, :] ** 2))
    fine = np.fft.ifft2(G).real * (n * n) / (n0 * n0)
    fine = np.tile(fine, (4, 4))
    s = L / n
    rng = np.random.default_rng(0)
    noisy = rng.poisson(np.clip(fine, 0, None) * DOSE * s * s) / (DOSE * s * s)
    z = atoms.positions[:, 2]
    lay, num = atoms.arrays["layer"], atoms.numbers
    origins = np.stack([atoms.positions[(lay == li) & (num == 38)][0, :2] for li in (0, 1)])
    thick = float(z.max() - z.min()) + A / 2
    return {"image": noisy, "clean": fine, "sampling": s, "L": L, "angles": atoms.info["layer_angles_deg"],
            "theta": float(atoms.info["theta_deg"]), "origins": origins, "thickness": thick,
            "interface_depth": float(z.max() - atoms.info["interface_z"]) + A / 4}


@pytest.fixture(scope="module")
def model(sim):
    return ImagingModel(planes=planes_for_sample(A, sim["thickness"], sim["interface_depth"]), focus_depth=0.0)


def truth_bases(sim, alpha_bottom_est):
    ab_true, _ = sim["angles"]
    ab = alpha_bottom_est + ((ab_true - alpha_bottom_est + 45) % 90 - 45)  # the estimate's branch (mod 90°)
    return rot(np.radians(ab)) * A, rot(np.radians(ab + sim["theta"])) * A


def test_twist_from_abtem_image(sim):
    r = twist_angle(sim["image"], sim["sampling"], a=A, layer_angles_deg=sim["angles"])
    err = abs(r["theta_deg"] - sim["theta"])
    assert err <= 0.05 and err <= r["theta_uncertainty_deg"], (r["theta_deg"], r["theta_uncertainty_deg"])


def test_incoherent_model_against_abtem(sim, model):
    r = twist_angle(sim["clean"], sim["sampling"], a=A, layer_angles_deg=sim["angles"])
    Bb, Bt = truth_bases(sim, r["lattice_angles_deg"][0])
    n = sim["clean"].shape[0]
    c = np.arange(n) * sim["sampling"]
    yy, xx = np.meshgrid(c, c, indexing="ij")
    gen = render(model, np.column_stack([xx.ravel(), yy.ravel()])[None], np.stack([Bb, Bt])[None],
                 sim["origins"][None]).reshape(n, n)
    rho = np.corrcoef(gen.ravel(), sim["clean"].ravel())[0, 1]
    assert rho > 0.8, rho
    # a wrong registry (top layer moved by half a cell) is clearly worse
    wrong = render(model, np.column_stack([xx.ravel(), yy.ravel()])[None], np.stack([Bb, Bt])[None],
                   (sim["origins"] + [[0, 0], [A / 2, 0]])[None]).reshape(n, n)
    assert np.corrcoef(wrong.ravel(), sim["clean"].ravel())[0, 1] < rho - 0.2


def test_regressor_on_abtem_patches(sim, model):
    """A small CNN trained on the incoherent model only, evaluated on abTEM patches against the
    analytic registry of the rigid structure (chance level ~1.5 Å)."""
    r = twist_angle(sim["image"], sim["sampling"], a=A, layer_angles_deg=sim["angles"])
    ab, _ = r["lattice_angles_deg"]
    spec = PatchSpec(size=25, sampling=0.4, theta_deg=r["theta_deg"], mean_angle_deg=ab + r["theta_deg"] / 2)
    net, metrics = reg.train(model, spec, n_train=2000, n_val=200, epochs=3, width=8, seed=1)
    delta, yc, xc = reg.registry_map(net, sim["image"], sim["sampling"], spec, stride=1.3)
    Bb, Bt = truth_bases(sim, ab)
    Y, X = np.meshgrid(yc, xc, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel()])
    true = registry(np.linalg.solve(Bb, pts - sim["origins"][0][:, None]).T,
                    np.linalg.solve(Bt, pts - sim["origins"][1][:, None]).T)
    err = reg.registry_error(delta.reshape(2, -1).T, true, A)
    assert np.median(err) < 0.5, reg.error_stats(err)


def test_contrast_calibrated_at_another_twist_transfers(sim, model):
    """The incoherent model's contrast fitted to an abTEM image of a Σ5 (36.87°) bilayer matches the
    held-out Σ13 (22.62°) abTEM image better than the default contrast."""
    from twistox.imaging.calibration import fit_contrast

    cal = simulate(36.87)
    fit = fit_contrast(cal["image"], cal["sampling"], model, np.stack(truth_bases(cal, cal["angles"][0])),
                       cal["origins"], max_pixels=8000)
    assert fit["correlation"] > fit["correlation_default"]
    n = sim["clean"].shape[0]
    c = np.arange(n) * sim["sampling"]
    yy, xx = np.meshgrid(c, c, indexing="ij")
    pts = np.column_stack([xx.ravel(), yy.ravel()])[None]
    bases = np.stack(truth_bases(sim, sim["angles"][0]))[None]

    def rho(**p):
        g = render(model, pts, bases, sim["origins"][None], **p).ravel()
        return np.corrcoef(g, sim["clean"].ravel())[0, 1]

    calibrated = rho(exponent=fit["exponent"], blur=fit["blur"], x_weight=fit["x_weight"], b_weight=fit["b_weight"],
                     layer_weight=np.array([[1.0, fit["layer_ratio"]]]))
    assert calibrated > rho() + 0.005, (calibrated, rho(), fit)
