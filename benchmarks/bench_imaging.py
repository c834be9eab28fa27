"""Speed of the image-inference stage (issue 16) on 2 CPU cores: the registry regressor in patches per
second (patch generation for training, training steps, inference) and GPA / twist in seconds per megapixel.

    OMP_NUM_THREADS=2 python benchmarks/bench_imaging.py                # toy + paper patch sizes
    OMP_NUM_THREADS=2 python benchmarks/bench_imaging.py --threads 1 --image 1024
"""

import argparse
import time

import numpy as np

from twistox.imaging import gpa, twist_angle
from twistox.imaging import regressor as reg
from twistox.imaging.patches import ImagingModel, PatchSpec, generate_patches, planes_for_sample, render, rot

A = 3.905


def best(f, repeat=3):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return min(t)


def bilayer(model, n, s=0.1, theta=22.62):
    c = np.arange(n) * s
    yy, xx = np.meshgrid(c, c, indexing="ij")
    th = np.radians(theta)
    bases = np.stack([rot(-th / 2) * A, rot(th / 2) * A])[None]
    return render(model, np.column_stack([xx.ravel(), yy.ravel()])[None], bases, np.zeros((1, 2, 2))).reshape(n, n)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--image", type=int, nargs="+", default=[512, 1024], help="image sizes (pixels per side)")
    p.add_argument("--skip-regressor", action="store_true")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    model = ImagingModel(planes=planes_for_sample(A, 200.0, 100.0), focus_depth=100.0)
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}")
    for size, samp, width in () if args.skip_regressor else ((25, 0.4, 8), (65, 0.3, 16)):
        spec = PatchSpec(size=size, sampling=samp, theta_deg=5.0)
        n = 512
        tg = best(lambda: generate_patches(model, spec, n, rng), 1)
        X, y = generate_patches(model, spec, n, rng)
        net = reg.build_net(size, width)
        ti = best(lambda: reg.predict(net, X), 2)
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        Xt, Yt = torch.from_numpy(X[:, None]), torch.from_numpy(reg.encode(y))

        def train_epoch():
            net.train()
            for i in range(0, n, 64):
                opt.zero_grad()
                loss = torch.mean((net(Xt[i:i + 64]) - Yt[i:i + 64]) ** 2)
                loss.backward()
                opt.step()

        tt = best(train_epoch, 1)
        print(f"patch {size}x{size} at {samp} Å, width {width}: generate {n / tg:8.0f} patches/s, "
              f"train {n / tt:7.0f} patches/s, infer {n / ti:8.0f} patches/s")
    from twistox.imaging.calibration import fit_contrast

    img = bilayer(model, 256)
    th = np.radians(22.62)
    tc = best(lambda: fit_contrast(img, 0.1, model, np.stack([rot(-th / 2) * A, rot(th / 2) * A]), np.zeros((2, 2))), 1)
    print(f"fit_contrast (20000 pixels of a 256x256 image): {tc:6.1f} s", flush=True)
    for n in args.image:
        img = bilayer(model, n)
        mp = n * n / 1e6
        tg = best(lambda: gpa(img, 0.1, g_vectors=[[1 / A, 0], [0, 1 / A]]))
        print(f"image {n}x{n}: GPA {tg / mp:6.2f} s/MP", flush=True)
        tw = best(lambda: twist_angle(img, 0.1, a=A), 1)
        print(f"image {n}x{n}: twist_angle {tw / mp:6.2f} s/MP", flush=True)


if __name__ == "__main__":
    main()
