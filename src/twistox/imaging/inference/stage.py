"""Stage `image_inference` (issue 16): from one plan-view HAADF image back to the structure.

1. twist angle from the two lattices' reflections (twistox.imaging.twist);
2. GPA: the microscopist's "HAADF strain" on the mean lattice of the bilayer (both layers'
   reflections inside one mask, what earlier work measured) and each layer on its own reflections;
3. registry (slip) map from a small CNN trained here on the fast incoherent model of this specimen
   (thickness, focus, probe), and the local twist = 2 arcsin(curl D / 4);
4. when the ground truth is at hand (strain.zarr of the same sample), the image-derived local twist
   and GPA strain are compared with the atomistic interface fields on the same grid.
All maps share one grid: the patch centres (stride Å) inside the image. image[y, x], y = row × sampling.
"""

from __future__ import annotations

import json
import time

import numpy as np
import xarray as xr

from twistox.imaging import regressor as reg
from twistox.imaging.gpa import check_image, gpa, rotate_strain
from twistox.imaging.patches import ImagingModel, PatchSpec, planes_for_sample, rot
from twistox.imaging.twist import _reduce90, alias_free_scan_step, twist_angle


def check_config(cfg: dict) -> None:
    """Semantic checks of the image_inference section (ValueError naming the key)."""
    r = cfg["regressor"]
    if r["patch_size"] % 2 == 0:
        raise ValueError(f"config key 'image_inference.regressor.patch_size': {r['patch_size']} must be odd "
                         "(the registry label belongs to the centre pixel); allowed: odd integers >= 9")
    if r["stride_A"] > 0.5 * r["patch_size"] * r["patch_sampling"]:
        raise ValueError("config key 'image_inference.regressor.stride_A': larger than half a patch; allowed: "
                         f"<= {0.5 * r['patch_size'] * r['patch_sampling']:.2f} Å")
    for k, (lo, hi) in r.get("contrast", {}).items():
        if lo > hi:
            raise ValueError(f"config key 'image_inference.regressor.contrast.{k}': [{lo}, {hi}] is not a range; "
                             "allowed: [low, high] with low <= high")


def multislice_training(cfg: dict, stem_cfg: dict, theta_deg: float, model: ImagingModel, material=None,
                         interface: str | None = None, max_sigma: int = 30, seed: int = 0, log=None,
                         image: str = "haadf", focus="interface") -> tuple[dict | None, list, dict | None]:
    """``regressor.multislice``: abTEM images of rigid bilayers of known registry with the sample's stem settings.

    Returns (contrast ranges or None, KnownImage list for training, calibration fit or None). The calibration
    bilayer is at ``calibration_theta_deg`` (not the sample's twist); its image gets Poisson noise at the dose
    before the fit. Training images are at the sample's CSL (nearest θ with Σ <= max_sigma: pass the sample's
    Σ) with the configured top-layer translations. image, focus: the analysed image ('haadf' / 'laadf') and
    the stem focus entry ('interface', 'surface' or a defocus in nm) of the sample's image."""
    from twistox.imaging.calibration import contrast_ranges, fit_contrast
    from twistox.imaging.multislice import simulate_known_bilayer

    ms = cfg["regressor"].get("multislice", {})
    contrast, fit = None, None
    if ms.get("calibrate"):
        t = time.time()
        kn = simulate_known_bilayer(float(ms["calibration_theta_deg"]), (0.0, 0.0), stem_cfg, material=material,
                                    interface=interface, image=image, focus=focus, log=log)
        img = kn.image
        if kn.dose:
            rng = np.random.default_rng([seed, 7])
            img = rng.poisson(np.clip(img, 0, None) * kn.dose * kn.sampling**2) / (kn.dose * kn.sampling**2)
        fit = fit_contrast(img, kn.sampling, model, kn.bases, kn.shifts, seed=seed)
        fit["theta_deg"] = kn.theta_deg
        contrast = contrast_ranges(fit, float(ms["spread"]))
        if log:
            log.info("contrast calibrated on abTEM at %.2f° in %.0f s: %s", kn.theta_deg, time.time() - t, fit)
    known = []
    for tr in ms.get("translations", []):
        t = time.time()
        known.append(simulate_known_bilayer(theta_deg, tuple(map(float, tr)), stem_cfg, material=material,
                                            interface=interface, max_sigma=max_sigma, image=image,
                                            focus=focus, log=log))
        if log:
            log.info("abTEM training image, top layer translated by %s: %.0f s", tr, time.time() - t)
    return contrast, known, fit


def imaging_model_for(a: float, Z, thickness: float, interface_depth: float, focus_depth: float,
                      energy: float, semiangle: float, cs: float) -> ImagingModel:
    """Incoherent model of a plan-view specimen (Å, eV, mrad; beam entering through the top layer)."""
    return ImagingModel(a=a, Z=tuple(int(z) for z in Z), planes=planes_for_sample(a, thickness, interface_depth),
                        focus_depth=focus_depth, energy=energy, semiangle=semiangle, cs=cs)


def _layer_g(alpha_deg: float, a: float) -> np.ndarray:
    R = rot(np.radians(alpha_deg)) / a
    return np.array([R @ (1, 0), R @ (0, 1)])


def _sample(field: np.ndarray, sampling: float, yc: np.ndarray, xc: np.ndarray) -> np.ndarray:
    """Bilinear samples of an image-grid field at the map grid (Å)."""
    from scipy.ndimage import map_coordinates

    yy, xx = np.meshgrid(yc / sampling, xc / sampling, indexing="ij")
    return map_coordinates(field, [yy, xx], order=1, mode="nearest")


# GPA phases are meaningless where the Bragg-filtered amplitude vanishes (e.g. the mean lattice of a
# large-angle bilayer, whose reflections lie between the layers' peaks): such points become NaN
MIN_AMPLITUDE = 0.2  # fraction of the median amplitude


def _masked(g: xr.Dataset, name: str, sampling: float, yc: np.ndarray, xc: np.ndarray) -> np.ndarray:
    amp = np.minimum(g["amplitude_0"].values, g["amplitude_1"].values)
    f = np.where(amp >= MIN_AMPLITUDE * np.median(amp), g[name].values, np.nan)
    out = _sample(np.nan_to_num(f), sampling, yc, xc)
    ok = _sample(np.isfinite(f).astype(float), sampling, yc, xc) > 0.999
    return np.where(ok, out, np.nan).astype(np.float32)


def infer(image: np.ndarray, sampling: float, cfg: dict, model: ImagingModel, *, layer_angles_deg=None,
          seed: int = 0, log=None, threads: int = 1, device: str = "cpu", known_images=(),
          known_fraction: float = 0.0, contrast: dict | None = None,
          scan_step: float | None = None) -> tuple[xr.Dataset, object, dict]:
    """Run twist + GPA + registry regressor on one image. Returns (dataset, trained net, model meta).

    known_images: multislice images of known bilayers (twistox.imaging.multislice.KnownImage); each epoch
    ``known_fraction`` of the training patches are cut from them (fresh Poisson noise at their dose).
    contrast: augmentation ranges {param: (low, high)} replacing ``regressor.contrast`` (e.g. from
    twistox.imaging.calibration.contrast_ranges). scan_step: probe step (Å) of a scanned image that was
    interpolated to ``sampling``; above :func:`twistox.imaging.twist.alias_free_scan_step` the image twist is
    not measured (aliases of {220} fall on the {100} ring) and the sample geometry guides the regressor."""
    img = check_image(image)
    a = model.a
    t0 = time.time()
    try:
        tw = twist_angle(img, sampling, a=a, g_max=cfg["twist"]["g_max"], layer_angles_deg=layer_angles_deg,
                         min_snr=cfg["twist"]["min_snr"], scan_step=scan_step)
        tw["source"] = "image"
        theta = tw["theta_deg"]
    except ValueError as exc:
        # e.g. a small toy cell: its field of view cannot separate both lattices. The image's twist is
        # then unmeasured (NaN, reason recorded); the known sample geometry only guides the regressor.
        if layer_angles_deg is None:
            raise
        if log:
            log.warning("twist angle not measurable from this image (%s); regressor trained around the "
                        "sample's CSL geometry instead", exc)
        lb, lt = (float((x + 45.0) % 90.0 - 45.0) for x in layer_angles_deg)
        tw = {"theta_deg": float("nan"), "theta_uncertainty_deg": float("nan"), "lattice_angles_deg": [lb, lt],
              "lattice_parameters": [float(a), float(a)], "n_reflections": 0, "source": "sample geometry",
              "failure": str(exc)}
        theta = float((lt - lb + 45.0) % 90.0 - 45.0)
    ab, at = tw["lattice_angles_deg"]
    if layer_angles_deg is not None:
        # a square lattice's orientation is known mod 90° (reported in (−45°, 45°]); its crystal-frame ε_xy changes
        # sign under a 90° turn of the frame (ε_x'y' = −ε_xy), so the layer frames must be the sample's own
        # representatives (strain.zarr's layer_angles_deg, PHYSICS.md §9): in the 45° frame of m, n odd the top
        # layer sits at 48.4°, reported as −41.6°
        ab, at = (float(h + _reduce90(x - h)) for x, h in zip((ab, at), layer_angles_deg))
    mean_angle = ab + theta / 2.0
    if log:
        log.info("twist %.4f ± %.4f° (lattices at %.3f°, %.3f°; %s reflections) in %.1f s", theta,
                 tw["theta_uncertainty_deg"], ab, at, tw["n_reflections"], time.time() - t0)
    # --- GPA: mean lattice ("HAADF strain") and each layer on its own reflections
    t1 = time.time()
    a_fit = float(np.mean(tw["lattice_parameters"]))
    dg = 2 * np.sin(np.radians(abs(theta)) / 2) / a_fit
    g_mean = _layer_g(mean_angle, a_fit)
    mean = gpa(img, sampling, g_vectors=g_mean, sigma=cfg["gpa"]["sigma_A"])
    # a layer's mask must exclude the other layer's reflection |Δg| away: σ_k <= |Δg| / 3
    layer_sigma = cfg["gpa"]["layer_sigma_A"] or max(3.0 / (2 * np.pi * dg), a_fit)
    layers = [gpa(img, sampling, g_vectors=_layer_g(al, ap), sigma=layer_sigma)
              for al, ap in zip((ab, at), tw["lattice_parameters"])]
    if log:
        log.info("GPA (mean lattice σ = %.1f Å, per layer σ = %.1f Å) in %.1f s", mean.attrs["sigma"], layer_sigma,
                 time.time() - t1)
    # --- registry regressor, trained on this specimen's incoherent model around the measured twist
    r = cfg["regressor"]
    spec = PatchSpec(size=int(r["patch_size"]), sampling=float(r["patch_sampling"]), theta_deg=theta,
                     mean_angle_deg=mean_angle, twist_spread_deg=float(r["twist_spread_deg"]),
                     angle_spread_deg=float(r["angle_spread_deg"]),
                     **{k: tuple(map(float, v)) for k, v in (contrast or r.get("contrast", {})).items()})
    known_images = list(known_images)

    def extra(n: int, rng: np.random.Generator):
        k = rng.integers(len(known_images), size=n)
        parts = [reg.image_patches(kn.image, kn.sampling, kn.bases, kn.shifts, spec, int((k == i).sum()), rng,
                                   dose=kn.dose) for i, kn in enumerate(known_images) if (k == i).any()]
        return np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts])

    net, metrics = reg.train(model, spec, n_train=int(r["n_train"]), n_val=int(r["n_val"]), epochs=int(r["epochs"]),
                             batch=int(r["batch"]), lr=float(r["lr"]), width=int(r["width"]), seed=seed, log=log,
                             threads=threads, device=device, extra=extra if known_images else None,
                             extra_fraction=float(known_fraction) if known_images else 0.0)
    metrics["known_images"] = len(known_images)
    metrics["known_fraction"] = float(known_fraction) if known_images else 0.0
    t2 = time.time()
    delta, yc, xc = reg.registry_map(net, img, sampling, spec, float(r["stride_A"]))
    n_patches = delta.shape[1] * delta.shape[2]
    metrics["inference_seconds"] = time.time() - t2
    metrics["inference_patches"] = int(n_patches)
    twist_map = reg.local_twist(delta, a, mean_angle, float(r["stride_A"]), smooth=float(r["smoothing_A"]))
    slip = reg.slip_vectors(delta, a, mean_angle)
    if log:
        log.info("registry map: %d patches in %.1f s; local twist median %.3f° (image θ %.3f°)", n_patches,
                 time.time() - t2, float(np.nanmedian(twist_map)), theta)
    meta = reg.model_meta(model, spec, int(r["width"]), metrics, {"twist": tw})
    # --- one grid for everything
    dims = ("y", "x")
    coords = {"y": ("y", yc, {"units": "Å"}), "x": ("x", xc, {"units": "Å"}), "xy": ("xy", ["x", "y"]),
              "ab": ("ab", ["a", "b"]), "layer": ("layer", [0, 1], {"description": "0 bottom, 1 top"})}
    data = {}
    for name in ("exx", "eyy", "exy", "rotation"):
        data[name] = (dims, _masked(mean, name, sampling, yc, xc),
                      {**mean[name].attrs, "description": f"GPA on the mean lattice of the bilayer (both layers in one mask), "
                                                          f"image frame; {mean[name].attrs.get('description', '')}"})
    crystal = []
    for li, (ds_l, al) in enumerate(zip(layers, (ab, at))):
        exx, eyy, exy = (_masked(ds_l, c, sampling, yc, xc) for c in ("exx", "eyy", "exy"))
        crystal.append(rotate_strain(exx, eyy, exy, np.radians(al)) + (_masked(ds_l, "rotation", sampling, yc, xc),))
    for ci, name in enumerate(("layer_exx", "layer_eyy", "layer_exy", "layer_rotation")):
        data[name] = (("layer",) + dims, np.stack([c[ci] for c in crystal]).astype(np.float32),
                      {"units": "rad" if "rotation" in name else "1",
                       "description": "GPA of each layer on its own {100} reflections, in that layer's crystal frame"})
    data["slip"] = (("xy",) + dims, slip.astype(np.float32),
                    {"units": "Å", "description": "registry D = a (f_bottom − f_top) at each point, Cartesian (x, y), "
                                                  "wrapped to the cell along the mean-lattice base vectors"})
    data["slip_ab"] = (("ab",) + dims, (a * delta).astype(np.float32),
                       {"units": "Å", "description": "registry along the mean-lattice base vectors a, b (in [−a/2, a/2))"})
    data["local_twist"] = (dims, twist_map.astype(np.float32),
                           {"units": "deg", "description": "2 arcsin(curl D / 4): local twist of top vs bottom, CCW"})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(theta_deg=tw["theta_deg"], theta_uncertainty_deg=tw["theta_uncertainty_deg"],
                    theta_source=tw["source"], theta_failure=tw.get("failure", ""),
                    lattice_angles_deg=tw["lattice_angles_deg"], layer_frame_angles_deg=[ab, at],
                    lattice_parameters=tw["lattice_parameters"],
                    mean_angle_deg=mean_angle, twist=json.dumps(tw), sampling=float(sampling), a=a,
                    gpa_mean_g_vectors=mean.attrs["g_vectors"], gpa_mean_sigma=mean.attrs["sigma"],
                    gpa_layer_sigma=float(layer_sigma), regressor_metrics=json.dumps(metrics),
                    regressor_validation_mean_A=metrics["validation"]["mean_A"],
                    scan_step_A=float("nan") if scan_step is None else float(scan_step),
                    alias_free_scan_step_A=float(alias_free_scan_step(a, cfg["twist"]["g_max"])),
                    convention="image[y, x], y = row × sampling (Å); rotations CCW positive in (x, y)")
    return ds, net, meta


def _periodic_sample(field: np.ndarray, L: float, yc: np.ndarray, xc: np.ndarray) -> np.ndarray:
    """Values of a field gridded on one periodic supercell [0, L)² at points (yc, xc) (Å)."""
    from scipy.ndimage import map_coordinates

    n = field.shape[0]
    yy, xx = np.meshgrid(np.mod(yc, L) / L * n, np.mod(xc, L) / L * n, indexing="ij")
    return map_coordinates(field, [yy, xx], order=1, mode="grid-wrap")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def compare_with_truth(ds: xr.Dataset, strain: xr.Dataset, theta_true: float) -> dict:
    """Image-derived vs atomistic fields on the map grid: local twist and GPA strain vs the interface.

    The atomistic local twist is θ + ω_top − ω_bottom of the two interface planes (strain.zarr
    `rotation`, rad, CCW); the true interfacial strain is eps_xy of each interface plane in its own
    layer's crystal frame. Both GPA variants are compared: per layer and the mean-lattice "HAADF strain"
    (rotated into each layer's frame). Returns the numbers that go into attrs.
    """
    L = float(strain.attrs["supercell_length"])
    yc, xc = ds["y"].values, ds["x"].values
    planes = strain["plane"].values
    layer_of = dict(zip(planes, strain["plane_layer"].values))
    inter = [int(p) for p in strain.attrs.get("interface_planes", planes)]
    by_layer = {int(layer_of[p]): p for p in inter if p in layer_of}
    out: dict = {"theta_true_deg": float(theta_true), "theta_error_deg": float(ds.attrs["theta_deg"] - theta_true)}
    if "interlayer_twist" in strain or (0 in by_layer and 1 in by_layer):
        if "interlayer_twist" in strain:
            true_twist = _periodic_sample(strain["interlayer_twist"].values, L, yc, xc)
        else:
            wb = _periodic_sample(strain["rotation"].sel(plane=by_layer[0]).values, L, yc, xc)
            wt = _periodic_sample(strain["rotation"].sel(plane=by_layer[1]).values, L, yc, xc)
            true_twist = theta_true + np.degrees(wt - wb)
        lt = ds["local_twist"].values
        out.update(local_twist_correlation=_corr(lt, true_twist), local_twist_mean_deg=float(np.nanmean(lt)),
                   local_twist_median_deg=float(np.nanmedian(lt)),
                   local_twist_true_mean_deg=float(np.nanmean(true_twist)),
                   local_twist_true_rms_deviation_deg=float(np.nanstd(true_twist)),
                   local_twist_rms_deviation_deg=float(np.nanstd(lt)))
    al = ds.attrs.get("layer_frame_angles_deg", ds.attrs["lattice_angles_deg"])
    mean_angle = float(ds.attrs["mean_angle_deg"])
    for li, p in by_layer.items():
        true = _periodic_sample(strain["eps_xy"].sel(plane=p).values, L, yc, xc)
        lay = ds["layer_exy"].sel(layer=li).values
        _, _, mean_xy = rotate_strain(ds["exx"].values, ds["eyy"].values, ds["exy"].values, np.radians(al[li] - 0.0))
        out[f"gpa_layer{li}_exy_correlation"] = _corr(lay, true)
        out[f"gpa_mean_lattice_exy_correlation_layer{li}"] = _corr(mean_xy, true)
        out[f"interface_exy_rms_layer{li}"] = float(np.nanstd(true))
        out[f"gpa_layer{li}_exy_rms"] = float(np.nanstd(lay))
    out["gpa_mean_lattice_exy_rms"] = float(np.nanstd(ds["exy"].values))
    out["gpa_mean_lattice_valid_fraction"] = float(np.isfinite(ds["exy"].values).mean())
    out["gpa_mean_lattice_rotation_rms_deg"] = float(np.degrees(np.nanstd(ds["rotation"].values)))
    out["mean_lattice_angle_deg"] = mean_angle
    return out


def _z_numbers(system: dict) -> tuple[int, int, int]:
    from ase.data import atomic_numbers

    return tuple(atomic_numbers[system[k]] for k in ("A", "B", "X"))


def simulated_input(stem: xr.Dataset, cfg: dict, stem_cfg: dict, system: dict):
    """(image [y, x], sampling Å, ImagingModel, layer angles hint, focus label) from a stem.zarr."""
    name = cfg["image"]
    if name not in stem:
        raise ValueError(f"config key 'image_inference.image': stem.zarr has no {name!r} (plan view disabled?); "
                         f"available: {', '.join(v for v in ('haadf', 'laadf') if v in stem) or 'none'}")
    da = stem[name]
    foc = cfg["focus"]
    labels = [str(v) for v in da["focus_label"].values] if "focus_label" in da.coords else []
    if isinstance(foc, str):
        i = labels.index(foc) if foc in labels else 0
    else:
        if foc >= da.sizes["defocus"]:
            raise ValueError(f"config key 'image_inference.focus': index {foc} but the focal series has "
                             f"{da.sizes['defocus']} images; allowed: 0 to {da.sizes['defocus'] - 1}")
        i = int(foc)
    img = da.isel(defocus=i)
    ydim, xdim = img.dims[-2:]
    y = img[ydim].values
    sampling = float(y[1] - y[0])
    spec = json.loads(stem.attrs["planview_sample"])
    settings = json.loads(stem.attrs["planview_settings"])
    focus_depth = float(img["focus_depth"].values) if "focus_depth" in img.coords else float(spec["interface_depth"])
    model = imaging_model_for(float(system["a"]), _z_numbers(system), float(spec["sample_thickness"]),
                              float(spec["interface_depth"]), focus_depth, float(settings["energy"]),
                              float(settings["semiangle"]), float(settings["cs"]))
    hint = stem.attrs.get("layer_angles_deg")
    label = labels[i] if labels else str(i)
    return np.asarray(img.values, float), sampling, model, hint, label


def planview_scan_step(stem: xr.Dataset) -> float:
    """Probe step (Å) of the plan-view scan behind a stem.zarr's images (they are interpolated afterwards)."""
    return float(json.loads(stem.attrs["planview_settings"])["scan_sampling"])


def experiment_inference(entry: dict, cfg: dict, system: dict, seed: int = 0, log=None, threads: int = 1,
                         key: str = "analysis.experiment") -> xr.Dataset:
    """The same analysis on a measured HAADF image (an analysis.experiment entry with kind haadf).

    Pixel size: the file's calibration, else the entry's pixel_size; neither (or both, different) is an error.
    The incoherent model uses image_inference.specimen (thickness, focus, probe)."""
    from twistox.imaging.io import read_haadf

    img, ps = read_haadf(entry["path"], entry.get("pixel_size"), key=entry.get("key"), config_key=key)
    sp = cfg["specimen"]
    t = 10.0 * sp["thickness_nm"]
    zi = 10.0 * sp["interface_depth_nm"] if sp["interface_depth_nm"] else t / 2
    zf = 10.0 * sp["focus_depth_nm"] if sp["focus_depth_nm"] is not None else zi
    model = imaging_model_for(float(system["a"]), _z_numbers(system), t, zi, zf, 1e3 * sp["energy_kV"],
                              sp["semiangle_mrad"], 1e4 * sp["cs_um"])
    ds, _, _ = infer(img, ps, cfg, model, seed=seed, log=log, threads=threads)
    ds.attrs["source"] = str(entry["path"])
    return ds
