"""Registry regressor on HELD-OUT abTEM patches (issue 16, item 3): the measurement behind
docs/stages/image_inference.md, reproducible from a toy run's stem.zarr + supercell.zarr of a rigid sample.

Protocol (nothing of the held-out image is used for calibration or training):
1. calibration: abTEM image of a rigid CSL bilayer at ANOTHER twist (default Σ5, 36.87°), same specimen
   and stem settings, Poisson noise at the dose; the incoherent model's contrast is fitted to it
   (twistox.imaging.calibration) and the augmentation ranges are centred on the fit (± --spread);
2. optional fine-tuning source: abTEM images of the sample's CSL with the top layer at OTHER translations
   (--translations); --fraction of each epoch's patches are cut from them (fresh noise every epoch);
3. the stage's own inference (twist, regressor, registry map) on the held-out plan view, compared with
   the analytic registry of its rigid structure.

    OMP_NUM_THREADS=1 python benchmarks/imaging_heldout.py results/STO/theta22.62_m5n1 \
        --regressor '{"patch_size": 33, "patch_sampling": 0.4, "n_train": 4000, "epochs": 8, "width": 16}'
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from twistox.core.config import _check, _schema
from twistox.core.io import read_dataset
from twistox.imaging import regressor as reg
from twistox.imaging.inference import stage
from twistox.imaging.patches import registry, rot


def main():
    p = argparse.ArgumentParser()
    p.add_argument("sample_dir", help="a sample directory with stem.zarr (rigid structure) and supercell.zarr")
    p.add_argument("--regressor", default="{}", help="image_inference.regressor overrides (JSON)")
    p.add_argument("--calibration-theta", type=float, default=36.87)
    p.add_argument("--no-calibration", action="store_true")
    p.add_argument("--spread", type=float, default=0.15, help="relative half-width of the calibrated ranges")
    p.add_argument("--translations", default="0.37,0.61;0.81,0.13;0.55,0.25", help="'' = no fine-tuning images")
    p.add_argument("--fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    d = Path(args.sample_dir)
    stem_ds = read_dataset(d / "stem.zarr")
    sc = read_dataset(d / "supercell.zarr")
    stem_cfg = json.loads(stem_ds.attrs["config"])["stem"]
    a = float(sc.attrs.get("a", 3.905))
    system = {"A": "Sr", "B": "Ti", "X": "O", "a": a}
    cfg = {"regressor": json.loads(args.regressor)}
    t0 = time.time()
    _check(cfg, _schema("image_inference"), ("image_inference",))
    img, s, model, hint, _ = stage.simulated_input(stem_ds, cfg, stem_cfg, system)
    ms = cfg["regressor"]["multislice"]
    ms.update(calibrate=not args.no_calibration, calibration_theta_deg=args.calibration_theta, spread=args.spread,
              fraction=args.fraction,
              translations=[list(map(float, t.split(","))) for t in args.translations.split(";") if t.strip()])
    contrast, known, fit = stage.multislice_training(cfg, stem_cfg, float(stem_ds.attrs["theta_deg"]), model,
                                                     max_sigma=int(stem_ds.attrs.get("sigma", 30)), seed=args.seed)
    print("calibration:", json.dumps(fit), "| fine-tuning images:", len(known), "| %.0f s" % (time.time() - t0), flush=True)
    ds, _, meta = stage.infer(img, s, cfg, model, layer_angles_deg=hint, seed=args.seed, known_images=known,
                              known_fraction=args.fraction, contrast=contrast)
    pos, lay, num = sc["positions"].values, sc["layer"].values, sc["numbers"].values
    a_num = atomic_numbers[system["A"]]
    tb, tt = (pos[(lay == li) & (num == a_num)][0, :2] for li in (0, 1))
    ab_true = float(sc.attrs["layer_angles_deg"][0])
    ab_est = float(ds.attrs["lattice_angles_deg"][0])
    ab = ab_est + ((ab_true - ab_est + 45) % 90 - 45)  # the estimate's branch (mod 90°)
    Bb, Bt = rot(np.radians(ab)) * a, rot(np.radians(ab + float(sc.attrs["theta_deg"]))) * a
    Y, X = np.meshgrid(ds["y"].values, ds["x"].values, indexing="ij")
    r = np.stack([X.ravel(), Y.ravel()])
    true = registry(np.linalg.solve(Bb, r - tb[:, None]).T, np.linalg.solve(Bt, r - tt[:, None]).T)
    pred = (ds["slip_ab"].values / a).reshape(2, -1).T
    err = reg.registry_error(pred, true, a)
    dd = pred - true
    dd -= np.floor(dd + 0.5)
    print(json.dumps({"held_out_abtem": reg.error_stats(err), "signed_mean_A": (a * dd.mean(0)).tolist(),
                      "generator_validation": meta["metrics"]["validation"], "regressor": cfg["regressor"],
                      "contrast": contrast, "seconds": time.time() - t0}))


if __name__ == "__main__":
    main()
