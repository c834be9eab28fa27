"""Rule image_inference: twist, GPA and the learned registry map of the simulated plan-view HAADF
(and of the measured HAADF images of analysis.experiment with kind haadf) -> image_inference.zarr."""

import json

from twistox.core.device import torch_device
from twistox.core.io import read_dataset
from twistox.core.plots import save
from twistox.core.runner import stage_script
from twistox.imaging import figures, regressor
from twistox.imaging.inference import stage

sm = snakemake  # noqa: F821
with stage_script(sm, "image_inference", seed_wildcard="sample") as run:
    cfg = sm.config["image_inference"]
    stage.check_config(cfg)
    system = sm.config["systems"][sm.wildcards.system]
    stem = read_dataset(sm.input.stem)
    image, sampling, model, hint, label = stage.simulated_input(stem, cfg, sm.config["stem"], system)
    run.log.info("image %s (%s): %d x %d px at %.3f Å", cfg["image"], label, *image.shape, sampling)
    device = torch_device(sm.config["device"])
    ms = cfg["regressor"]["multislice"]
    contrast, known, calib = None, [], None
    if ms["calibrate"] or ms["translations"]:  # abTEM images of known bilayers with this sample's stem settings
        from twistox.supercell.builder import Perovskite

        material = Perovskite(system["A"], system["B"], system["X"], float(system["a"]))
        contrast, known, calib = stage.multislice_training(cfg, sm.config["stem"], float(stem.attrs["theta_deg"]), model,
                                                           material, system.get("interface"), int(stem.attrs.get("sigma", 30)),
                                                           run.seed, run.log, image=cfg["image"],
                                                           focus=label if label in ("interface", "surface")
                                                           else float(str(label).removesuffix(" nm")))
    ds, net, meta = stage.infer(image, sampling, cfg, model, layer_angles_deg=hint, seed=run.seed, log=run.log,
                                threads=sm.threads, device=device, known_images=known,
                                known_fraction=ms["fraction"], contrast=contrast,
                                scan_step=stage.planview_scan_step(stem))
    if calib is not None:
        ds.attrs["contrast_calibration"] = json.dumps(calib)
        meta["metrics"]["contrast_calibration"] = calib
    if "strain" in sm.input.keys():
        truth = stage.compare_with_truth(ds, read_dataset(sm.input.strain), float(stem.attrs["theta_deg"]))
        ds.attrs["comparison"] = json.dumps(truth)
        ds.attrs.update({k: v for k, v in truth.items() if isinstance(v, float)})
        run.log.info("vs atomistic truth: %s", truth)
    ds.attrs.update(image=cfg["image"], focus=label, theta_true_deg=float(stem.attrs.get("theta_deg", float("nan"))))
    for name, entry in sm.params.experiment:
        e_ds = stage.experiment_inference(entry, cfg, system, seed=run.seed, log=run.log, threads=sm.threads)
        for v in e_ds.data_vars:
            ds[f"{name}_{v}"] = e_ds[v].rename({d: f"{name}_{d}" for d in e_ds[v].dims if d in ("y", "x")})
        ds.attrs[f"{name}_theta_deg"] = e_ds.attrs["theta_deg"]
        ds.attrs[f"{name}_theta_uncertainty_deg"] = e_ds.attrs["theta_uncertainty_deg"]
    regressor.save(sm.output.model, net, meta)
    with open(sm.output.metrics, "w") as fh:
        json.dump(meta["metrics"] | {"twist": meta["twist"]}, fh, indent=1)
    save(figures.overview(ds, image, sampling, title=f"{sm.wildcards.system} {sm.wildcards.sample}"), sm.output.fig)
    run.write_dataset(ds, sm.output.zarr, sections=("seed", "image_inference"))
    run.log.info("wrote %s, %s", sm.output.zarr, sm.output.model)
