"""Learned local-registry (slip) regressor: a small CNN on ~1–2 nm HAADF patches (seed 003's idea).

Input: a normalised patch (size × size, odd, at ``sampling`` Å); output: (cos, sin) of 2π δ_a and
2π δ_b, the registry at the patch centre (twistox.imaging.patches): periodic labels regressed on
the circle, so δ = 0.49 and −0.49 are neighbours. The network keeps positions (no global pooling):
the label belongs to the centre pixel, not to the patch as a whole.
The model file (.pt) is a plain dict {"state_dict", "meta"} saved with torch.save and read with
``torch.load(weights_only=True)``; meta holds the patch spec, the imaging model and the metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import numpy as np

from twistox.imaging.patches import ImagingModel, PatchSpec, generate_patches, normalise, registry


def build_net(size: int, width: int = 16, hidden: int = 128):
    """Conv(5)–pool ×3 → flatten → MLP → 4 outputs (cos, sin of 2πδ_a, 2πδ_b)."""
    import torch.nn as nn

    n = size
    layers, c_in = [], 1
    for c_out, k in ((width, 5), (2 * width, 3), (4 * width, 3)):
        layers += [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        c_in, n = c_out, n // 2
    layers += [nn.Flatten(), nn.Linear(c_in * n * n, hidden), nn.ReLU(), nn.Linear(hidden, 4)]
    return nn.Sequential(*layers)


def decode(out) -> np.ndarray:
    """Network outputs (n, 4) → δ (n, 2) in [−½, ½)."""
    o = np.asarray(out, float).reshape(-1, 2, 2)
    d = np.arctan2(o[..., 1], o[..., 0]) / (2 * np.pi)
    return d - np.floor(d + 0.5)


def encode(delta: np.ndarray) -> np.ndarray:
    ph = 2 * np.pi * np.asarray(delta, float)
    return np.stack([np.cos(ph), np.sin(ph)], axis=-1).reshape(len(ph), 4).astype(np.float32)


def registry_error(pred: np.ndarray, true: np.ndarray, a: float) -> np.ndarray:
    """Euclidean registry error ΔD (Å) per patch with the periodic wrap (seed 003's ΔD)."""
    d = np.asarray(pred) - np.asarray(true)
    d = d - np.floor(d + 0.5)
    return a * np.sqrt((d**2).sum(axis=-1))


def error_stats(err: np.ndarray) -> dict:
    return {"mean_A": float(np.mean(err)), "median_A": float(np.median(err)), "p90_A": float(np.percentile(err, 90)),
            "p95_A": float(np.percentile(err, 95)), "max_A": float(np.max(err)), "n": int(len(err))}


def train(model: ImagingModel, spec: PatchSpec, *, n_train: int, n_val: int, epochs: int, batch: int = 64,
          lr: float = 2e-3, width: int = 16, seed: int = 0, log=None, threads: int = 1,
          chunk: int = 2000, device: str = "cpu", extra=None, extra_fraction: float = 0.0) -> tuple[object, dict]:
    """Train the regressor on freshly generated patches (new patches every epoch = no overfitting).

    extra: optional ``f(n, rng) -> (patches, δ)`` of further labelled patches (e.g. :func:`image_patches`
    of multislice images of known structures); each epoch ``extra_fraction`` of the n_train patches come
    from it, the rest from the incoherent generator. Validation stays on the generator.
    Returns (net, metrics); metrics hold the validation error distribution (Å) and the timings.
    """
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, int(threads)))
    rng = np.random.default_rng(seed)
    t0 = time.time()
    Xv, yv = generate_patches(model, spec, n_val, np.random.default_rng([seed, 99]))
    net = build_net(spec.size, width).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * int(np.ceil(n_train / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    history = []
    t_gen = 0.0
    for ep in range(epochs):
        net.train()
        tg = time.time()
        n_extra = int(round(extra_fraction * n_train)) if extra is not None else 0
        parts = [generate_patches(model, spec, min(chunk, n_train - n_extra - i), rng)
                 for i in range(0, n_train - n_extra, chunk)]
        if n_extra:
            parts.append(extra(n_extra, rng))
        X = torch.from_numpy(np.concatenate([p[0] for p in parts]))[:, None]
        Y = torch.from_numpy(encode(np.concatenate([p[1] for p in parts])))
        t_gen += time.time() - tg
        perm = torch.randperm(len(X))
        tot = 0.0
        for i in range(0, len(X), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = torch.mean((net(X[idx].to(device)) - Y[idx].to(device)) ** 2)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
        err = registry_error(predict(net, Xv, device=device), yv, model.a)
        history.append({"epoch": ep + 1, "loss": tot / len(X), "val_mean_A": float(err.mean())})
        if log:
            log.info("regressor epoch %d/%d: loss %.4f, validation mean ΔD %.3f Å", ep + 1, epochs, tot / len(X), err.mean())
    net = net.to("cpu")
    err = registry_error(predict(net, Xv), yv, model.a)
    metrics = {"device": str(device), "validation": error_stats(err), "history": history, "n_train_per_epoch": n_train, "n_val": n_val,
               "epochs": epochs, "train_seconds": time.time() - t0, "generate_seconds": t_gen,
               "n_parameters": int(sum(p.numel() for p in net.parameters()))}
    return net, metrics


def predict(net, patches, batch: int = 512, device: str = "cpu") -> np.ndarray:
    """δ (n, 2) for normalised patches (n, size, size); the net must be on ``device``."""
    import torch

    net.eval()
    X = torch.as_tensor(np.asarray(patches, np.float32))
    if X.ndim == 3:
        X = X[:, None]
    outs = []
    with torch.no_grad():
        for i in range(0, len(X), batch):
            outs.append(net(X[i:i + batch].to(device)).cpu().numpy())
    return decode(np.concatenate(outs)) if outs else np.zeros((0, 2))


def model_meta(model: ImagingModel, spec: PatchSpec, width: int, metrics: dict, extra: dict | None = None) -> dict:
    """JSON-safe metadata stored with the weights (torch weights_only loading accepts plain types)."""
    imaging = {k: getattr(model, k) for k in ("a", "Z", "planes", "focus_depth", "energy", "semiangle", "cs", "hk_max")}
    meta = {"patch_spec": asdict(spec), "imaging_model": imaging, "width": width, "metrics": metrics,
            "label": "registry δ = f_bottom − f_top at the patch centre, outputs (cos, sin)(2πδ_a), (cos, sin)(2πδ_b)"}
    meta.update(extra or {})
    return json.loads(json.dumps(meta, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def save(path, net, meta: dict) -> None:
    import torch

    torch.save({"state_dict": net.state_dict(), "meta_json": json.dumps(meta)}, str(path))


def load(path) -> tuple[object, dict]:
    """(net, meta) from a .pt written by :func:`save` (weights_only=True: no pickled code is run)."""
    import torch

    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    meta = json.loads(obj["meta_json"])
    spec = meta["patch_spec"]
    net = build_net(int(spec["size"]), int(meta["width"]))
    net.load_state_dict(obj["state_dict"])
    net.eval()
    return net, meta


def spec_from_meta(meta: dict) -> PatchSpec:
    d = dict(meta["patch_spec"])
    for k, v in d.items():
        if isinstance(v, list):
            d[k] = tuple(v)
    return PatchSpec(**d)


def extract_patches(image: np.ndarray, sampling, spec: PatchSpec, stride: float, margin: float = 0.0):
    """Patches (n, size, size) at spec.sampling on a regular grid of centres (stride Å) inside the image.

    The image is resampled by cubic-spline interpolation at the patch pixels. Returns patches and the
    centre coordinates (yc, xc) in Å (image frame, y = row × sampling).
    """
    from scipy.ndimage import map_coordinates, spline_filter

    sy, sx = (float(sampling), float(sampling)) if np.isscalar(sampling) else map(float, sampling)
    img = np.asarray(image, float)
    half = (spec.size - 1) / 2 * spec.sampling + margin
    ny, nx = img.shape
    yc = np.arange(half, (ny - 1) * sy - half + 1e-9, stride)
    xc = np.arange(half, (nx - 1) * sx - half + 1e-9, stride)
    if len(yc) == 0 or len(xc) == 0:
        raise ValueError(f"image {ny * sy:.1f} x {nx * sx:.1f} Å is smaller than one patch "
                         f"({2 * half:.1f} Å); use a smaller image_inference.regressor.patch_size")
    coef = spline_filter(img, order=3)
    off = (np.arange(spec.size) - (spec.size - 1) / 2) * spec.sampling
    out = np.empty((len(yc) * len(xc), spec.size, spec.size), np.float32)
    i = 0
    for y0 in yc:
        rows = (y0 + off)[:, None] / sy
        for x0 in xc:
            cols = (x0 + off)[None, :] / sx
            out[i] = map_coordinates(coef, [np.broadcast_to(rows, (spec.size, spec.size)),
                                            np.broadcast_to(cols, (spec.size, spec.size))], order=3, prefilter=False)
            i += 1
    return normalise(out), yc, xc


def image_patches(image: np.ndarray, sampling: float, bases: np.ndarray, shifts: np.ndarray, spec: PatchSpec,
                  n: int, rng: np.random.Generator, dose: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """n labelled patches cut at random centres from an image of a KNOWN bilayer (e.g. an abTEM simulation).

    image: clean intensities [y, x] (fraction of the beam), y = row × sampling (Å); bases (2, 2, 2): each
    layer's a-vectors as columns (Å), layer 0 bottom; shifts (2, 2): an A column of each layer (Å). With
    ``dose`` (e/Å²) a fresh Poisson realisation is drawn per call, so repeated epochs do not see the same
    noise. Labels: registry δ at each patch centre (as generate_patches). Returns (patches, δ) float32.
    """
    img = np.asarray(image, float)
    if dose:
        lam = np.clip(img, 0, None) * dose * sampling**2
        img = rng.poisson(lam) / (dose * sampling**2)
    half = (spec.size - 1) / 2 * spec.sampling
    ny, nx = img.shape
    yc = rng.uniform(half, (ny - 1) * sampling - half, n)
    xc = rng.uniform(half, (nx - 1) * sampling - half, n)
    from scipy.ndimage import map_coordinates, spline_filter

    coef = spline_filter(img, order=3)
    g = spec.grid()  # (npix, 2) x, y offsets (Å)
    rows = (yc[:, None] + g[None, :, 1]) / sampling
    cols = (xc[:, None] + g[None, :, 0]) / sampling
    out = map_coordinates(coef, [rows.ravel(), cols.ravel()], order=3, prefilter=False).reshape(n, spec.size, spec.size)
    c = np.column_stack([xc, yc])
    fb = np.linalg.solve(bases[0], (c - shifts[0]).T).T
    ft = np.linalg.solve(bases[1], (c - shifts[1]).T).T
    return normalise(out), registry(fb, ft).astype(np.float32)


def registry_map(net, image: np.ndarray, sampling, spec: PatchSpec, stride: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """δ map (2, ny, nx) (fractional, [−½, ½)) on the patch-centre grid, with its coordinates yc, xc (Å)."""
    patches, yc, xc = extract_patches(image, sampling, spec, stride)
    d = predict(net, patches)
    return d.reshape(len(yc), len(xc), 2).transpose(2, 0, 1), yc, xc


def slip_vectors(delta: np.ndarray, a: float, mean_angle_deg: float) -> np.ndarray:
    """Cartesian slip D (2 = x, y; Å) from δ (2, …) along the mean-lattice base vectors at ᾱ (CCW from x)."""
    al = np.radians(mean_angle_deg)
    ea = np.array([np.cos(al), np.sin(al)])
    eb = np.array([-np.sin(al), np.cos(al)])
    return a * (delta[0][None] * ea.reshape(2, *([1] * (delta.ndim - 1))) + delta[1][None] * eb.reshape(2, *([1] * (delta.ndim - 1))))


def local_twist(delta: np.ndarray, a: float, mean_angle_deg: float, spacing: float, smooth: float = 0.0) -> np.ndarray:
    """Local twist (deg) = 2 arcsin(curl D / 4) from a registry map δ (2, ny, nx) on a grid of ``spacing`` Å.

    D is only known modulo the lattice, so its gradient is taken from the wrapped phase differences of
    exp(2πiδ) (valid while D changes by < a/2 between grid points). For a rigid twist θ,
    D = 2 sin(θ/2) J r and curl D = 4 sin(θ/2) (CCW positive, y = row direction of the map).
    smooth: Gaussian σ (Å) applied to exp(2πiδ) first.
    """
    from scipy.ndimage import gaussian_filter

    z = np.exp(2j * np.pi * np.asarray(delta, float))
    if smooth > 0:
        s = smooth / spacing
        z = np.stack([gaussian_filter(c.real, s, mode="nearest") + 1j * gaussian_filter(c.imag, s, mode="nearest") for c in z])
    from twistox.imaging.gpa import phase_gradient

    grads = []
    for c in z:
        # wrapped central differences: no global phase unwrapping, so one bad patch stays local
        gx, gy = phase_gradient(c / np.maximum(np.abs(c), 1e-12), spacing)
        grads.append((gx * a / (2 * np.pi), gy * a / (2 * np.pi)))
    (dax, day), (dbx, dby) = grads
    al = np.radians(mean_angle_deg)
    ea = (np.cos(al), np.sin(al))
    eb = (-np.sin(al), np.cos(al))
    dDy_dx = dax * ea[1] + dbx * eb[1]
    dDx_dy = day * ea[0] + dby * eb[0]
    curl = dDy_dx - dDx_dy
    return np.degrees(2 * np.arcsin(np.clip(curl / 4.0, -1, 1)))
