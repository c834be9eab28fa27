"""4D-STEM: diffraction patterns over one supercell and their centre of mass (COM).

The cell is tiled n×n so the bright-field (BF) disc spans >= ``min_disc_radius_px`` detector
pixels (pixel = λ/(nL)); the scan covers one supercell. Patterns (y, x, ky, kx) are fractions of
the beam, k in mrad from the optical axis; COM maps (xy, y, x) in mrad, xy = ['x', 'y'], in the
sample frame. The COM mode (BF disc or whole pattern) is set by ``stem.fourd.com_*``; the other
mode is stored too, so the two can be compared on the same sample.

Memory: the full 4D array (paper, Σ265: 128² probes × ~850² pixels ≈ 48 GB) is never held.
:func:`fourd_maps` streams over scan tiles sized by :mod:`twistox.stem.tiling` for the memory budget
(abTEM ``GridScan`` per tile, ``lazy=True`` + ``compute()``): per tile it adds the frozen-phonon
configurations, applies the shot noise, takes the whole-pattern COM and keeps only a small crop of
each pattern around the BF disc plus a running sum for the mean pattern; the BF COM needs the disc
of the mean pattern over the whole scan, so it is taken from the crops once all tiles are done.
Optional full patterns go tile by tile into a Zarr store on disk.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import xarray as xr

from twistox.core.config import ConfigError
from twistox.core.hashing import settings_hash
from twistox.stem import phonons
from twistox.stem.com import MODES, Disc, centre_of_mass, check_mask, find_disc, masked_com, whole_com
from twistox.stem.multislice import (ProbeSettings, batch_size, build_potential, grid_scan, make_probe,
                                     probe_settings, scan_coords, to_numpy)
from twistox.stem.optics import disc_radius_px, fourd_tiling, probe_cutoff_period, wavelength
from twistox.stem.planview import budget_key, memory_budget, part_rng, phonon_seed, suffix
from twistox.stem.postprocess import check_finite, smooth_com
from twistox.stem.tiling import (MB, OUTPUT_COPIES, ScanTiling, iter_tiles, potential_shape, scan_tiles_for_budget,
                                 tile_scan)

CROP_SCALE = 1.25  # BF crop half-width / (mask factor × semi-angle): room for a measured radius and a shifted disc
CROP_MARGIN_PX = 3  # + detector pixels
COM_ITERATIONS = 3  # per-pattern re-centring steps (com.centre_of_mass default)


def simulate_patterns(sample, s: ProbeSettings, scan_extent: tuple[float, float], max_angle: float | None,
                      pot=None, tile: tuple[slice, slice] | None = None) -> xr.DataArray:
    """Diffraction patterns (y, x, ky, kx) over ``scan_extent`` [Å, from the origin]; fractions of the
    beam, k in mrad (abTEM's angular coordinates, fftshifted). ``max_angle`` None = all the grid resolves.
    ``tile`` (y rows, x columns): only that part of the scan (same probe positions as in the full scan)."""
    import abtem

    pot = pot if pot is not None else build_potential(sample, s)
    probe = make_probe(pot, s, 0.0)
    scan = grid_scan((0.0, 0.0), scan_extent, s.scan_sampling)
    if tile is not None:
        scan = tile_scan(scan, *tile)
    det = abtem.PixelatedDetector(max_angle=max_angle if max_angle is not None else "valid")
    dp = probe.scan(pot, scan=scan, detectors=det, max_batch=batch_size(s, pot), lazy=True).compute()
    arr = to_numpy(dp.array)  # (nx, ny, kx, ky)
    kx, ky = (np.asarray(c, float) for c in dp.angular_coordinates)
    x, y = scan_coords(scan)
    return xr.DataArray(arr.transpose(1, 0, 3, 2), dims=("y", "x", "ky", "kx"),
                        coords={"y": y, "x": x, "ky": ky, "kx": kx},
                        attrs={"units": "1", "k_units": "mrad"})


def _com_da(cx, cy, disc: Disc | None, mode: str, fd: dict, radius: float | None, y, x) -> xr.DataArray:
    """COM maps (xy, y, x) [mrad] with the attrs that record the COM settings and the disc used."""
    attrs = {"units": "mrad", "com_mode": mode,
             "description": f"centre of mass of the diffraction pattern ({mode.replace('_', '-')})"}
    if disc is not None:
        attrs.update(com_disc=fd["com_disc"], com_mask_factor=float(fd["com_mask_factor"]),
                     disc_radius_measured_mrad=disc.radius, disc_centre_mrad=[disc.cx, disc.cy],
                     mask_radius_mrad=float(fd["com_mask_factor"]) * (disc.radius if radius is None else radius))
    return xr.DataArray(np.stack([np.asarray(cx), np.asarray(cy)]).astype(np.float64), dims=("xy", "y", "x"),
                        coords={"xy": ["x", "y"], "y": np.asarray(y), "x": np.asarray(x)}, attrs=attrs)


def com_map(patterns: xr.DataArray, mode: str, fd: dict, semiangle: float) -> xr.DataArray:
    """COM [mrad] of every pattern (y, x, ky, kx) -> (xy, y, x) with the ``stem.fourd`` COM settings
    (all patterns in memory; :func:`fourd_maps` streams)."""
    radius = semiangle if fd["com_radius"] == "semiangle" else None
    cx, cy, disc = centre_of_mass(patterns.values, patterns["ky"].values, patterns["kx"].values, mode=mode,
                                  mask_factor=float(fd["com_mask_factor"]), disc=fd["com_disc"], radius=radius)
    return _com_da(cx, cy, disc, mode, fd, radius, patterns["y"].values, patterns["x"].values)


def _window(k: np.ndarray, half: float) -> slice:
    """Contiguous index range of an ascending axis ``k`` with |k| <= ``half``."""
    idx = np.nonzero(np.abs(k) <= half)[0]
    return slice(int(idx[0]), int(idx[-1]) + 1)


def _bf_com_from_crops(crops: np.ndarray, kyc: np.ndarray, kxc: np.ndarray, mean_crop: np.ndarray, fd: dict,
                       radius: float | None, ky_full: np.ndarray, kx_full: np.ndarray):
    """BF COM (cx, cy, disc) from the crops (y, x, ky', kx') around the disc; the same pixels and
    arithmetic as :func:`com.centre_of_mass` on the full patterns as long as every mask lies inside
    the crop (checked: a mask reaching past it would silently lose pixels)."""
    mf, how = float(fd["com_mask_factor"]), fd["com_disc"]
    d = find_disc(mean_crop, kyc, kxc)
    R = mf * (d.radius if radius is None else float(radius))
    check_mask(d, R, ky_full, kx_full)  # the user-facing check, on the whole detector

    def inside(cy, cx):
        tol = 1e-9 * max(1.0, R)
        ok = (np.min(cy) - R >= kyc[0] - tol and np.max(cy) + R <= kyc[-1] + tol
              and np.min(cx) - R >= kxc[0] - tol and np.max(cx) + R <= kxc[-1] + tol)
        if not ok:
            raise RuntimeError(f"4D-STEM bright-field COM: the mask (radius {R:.3g} mrad) moved past the stored crop "
                               f"({kyc[0]:.3g}..{kyc[-1]:.3g} mrad); raise fourd.CROP_SCALE")

    if how == "mean":
        inside(d.cy, d.cx)
        cx, cy = masked_com(crops, kyc, kxc, d.cy, d.cx, R)
    else:
        lead = crops.shape[:-2]
        cx, cy = np.full(lead, d.cx, dtype=crops.dtype), np.full(lead, d.cy, dtype=crops.dtype)
        for _ in range(COM_ITERATIONS):
            inside(cy, cx)
            cx, cy = masked_com(crops, kyc, kxc, cy, cx, R)
    return cx, cy, d


def _estimate_det_pixels(extent_x: float, extent_y: float, grid: tuple[int, int], energy: float,
                         max_angle: float | None) -> int:
    """Pixels of the pixelated detector before simulating: ``valid`` = inside abTEM's 2/3 antialias
    cutoff; + 2 pixels per side of margin."""
    lam = wavelength(energy)
    n = []
    for extent, g in zip((extent_x, extent_y), grid):
        dk = 1e3 * lam / extent  # [mrad]
        valid = 2 * math.ceil(g / 3) + 1
        n.append(min(g, valid if max_angle is None else min(valid, 2 * math.ceil(max_angle / dk) + 1)) + 2)
    return n[0] * n[1]


def _new_pattern_store(path: Path, shape: tuple[int, ...], coords: dict, key: str) -> Path:
    """Empty Zarr store (y, x, ky, kx) float32, 8×8-probe chunks, at a temporary sibling of ``path``."""
    import dask.array as da

    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    arr = da.zeros(shape, chunks=(8, 8) + tuple(shape[2:]), dtype=np.float32)
    ds = xr.Dataset({"patterns": (("y", "x", "ky", "kx"), arr, {"units": "1", "k_units": "mrad"})}, coords=coords,
                    attrs={"checkpoint_key": key})
    with warnings.catch_warnings():  # zarr 3: consolidated metadata is not in the v3 spec (as core.io.write_dataset)
        warnings.simplefilter("ignore", UserWarning)
        ds.to_zarr(tmp, mode="w", compute=False, consolidated=True)  # metadata + the (NumPy) coordinates; no chunk yet
    return tmp


def pattern_store_ok(path: Path | None, key: str) -> bool:
    """A complete pattern store written for ``key``?"""
    if path is None or not Path(path).exists():
        return False
    try:
        return xr.open_zarr(path).attrs.get("checkpoint_key") == key
    except Exception:  # noqa: BLE001
        return False


def fourd_plan(confs: list, s: ProbeSettings, scan_extent: tuple[float, float], fd: dict, budget_mb: float | None,
               key: str = "resources.stem_4d.mem_mb", real_bytes: int = 4) -> tuple[ScanTiling, bool, float]:
    """Scan tiling of :func:`fourd_maps` under ``budget_mb`` [MB], whether every configuration's potential
    is kept across tiles, and the BF crop half-width [mrad]. Decided before any simulation."""
    scan = grid_scan((0.0, 0.0), scan_extent, s.scan_sampling)
    nx, ny = (int(g) for g in scan.gpts)
    grid, n_slices = potential_shape(confs[0], s)
    det = _estimate_det_pixels(float(confs[0].cell[0, 0]), float(confs[0].cell[1, 1]), grid, s.energy, fd["max_angle_mrad"])
    dk = 1e3 * wavelength(s.energy) / float(confs[0].cell[0, 0])
    half = CROP_SCALE * float(fd["com_mask_factor"]) * s.semiangle + CROP_MARGIN_PX * dk
    crop_px = (2 * math.ceil(half / dk) + 1) ** 2
    extra = (ny * nx * crop_px * real_bytes + det * 8 + 8 * ny * nx * 8) / MB  # crops + mean-pattern sum + COM maps
    copies = OUTPUT_COPIES + (1 if len(confs) > 1 else 0) + 0.5  # abTEM result ×2, configuration sum, checks/COM rows
    batch = batch_size(s, SimpleNamespace(gpts=grid))
    batch = batch if isinstance(batch, int) else 1  # GPU 'auto': the batch lives on the device
    kw = dict(scan=(ny, nx), grid=grid, n_slices=n_slices, det_pixels=det, budget_mb=budget_mb, batch=batch,
              supersampling=s.supersampling, real_bytes=real_bytes, key=key, copies=copies, extra_mb=extra)
    plan = scan_tiles_for_budget(**kw)
    if plan.n_tiles > 1 and len(confs) > 1:  # keep every configuration's potential if whole-row tiles still fit
        try:
            cached = scan_tiles_for_budget(**kw, potentials=len(confs))
        except ConfigError:  # they do not all fit: rebuilt per tile
            return plan, False, half
        if cached.tile[1] == nx:
            return cached, True, half
    return plan, False, half


def fourd_maps(confs: list, s: ProbeSettings, scan_extent: tuple[float, float], fd: dict, seed: int, entrance: str,
               budget_mb: float | None = None, key: str = "resources.stem_4d.mem_mb", log=None,
               pattern_store: Path | None = None, store_key: str = "", real_bytes: int = 4) -> xr.Dataset:
    """COM maps ``com_<mode>`` for both modes (xy, y, x) [mrad, sample frame] of the patterns averaged
    over the (frozen-phonon) configurations ``confs``, with shot noise (``fd['dose']``), streamed over
    scan tiles that keep the predicted peak under ``budget_mb`` [MB] (None = one tile; ConfigError
    naming ``key`` when not even one probe fits; ``real_bytes`` 4 / 8 for stem.precision float32 / float64).
    ``pattern_store``: also write the patterns there
    (Zarr, (y, x, ky, kx), sample frame), completed atomically with attr ``checkpoint_key`` = ``store_key``.

    Shot noise uses one random stream per probe position (``seed``, row, column), so it does not depend on
    the tiling."""
    t0 = time.time()
    scan = grid_scan((0.0, 0.0), scan_extent, s.scan_sampling)
    nx, ny = (int(g) for g in scan.gpts)
    plan, cache_pots, half = fourd_plan(confs, s, scan_extent, fd, budget_mb, key, real_bytes)
    if log is not None:
        log.info("4D-STEM memory: %s; %d configuration(s), potentials %s", plan.describe(), len(confs),
                 "kept" if cache_pots or plan.n_tiles == 1 or len(confs) == 1 else "rebuilt per tile")
    pots: dict[int, object] = {}
    y_all, x_all = scan_coords(scan)[1], scan_coords(scan)[0]
    if entrance not in ("top", "bottom"):
        raise ValueError(f"stem.sample.beam_entrance: {entrance!r} is not allowed; allowed: top, bottom")
    top = entrance == "top"
    com_w = np.zeros((2, ny, nx))
    crops = mean_sum = None
    kys = kxs = cy_sl = cx_sl = None
    tmp_store = None
    n = None if not fd["dose"] else float(fd["dose"]) * (scan_extent[0] / nx) * (scan_extent[1] / ny)
    try:
        for ys, xs in iter_tiles(plan):
            acc = None
            for ci, conf in enumerate(confs):
                pot = pots.get(ci)
                if pot is None:
                    pot = build_potential(conf, s)
                    if len(confs) == 1 or cache_pots:  # budgeted: one potential, or all when cache_pots
                        pots[ci] = pot
                p = simulate_patterns(conf, s, scan_extent, fd["max_angle_mrad"], pot=pot, tile=(ys, xs))
                if acc is None:
                    acc, ky, kx = p.values, p["ky"].values, p["kx"].values
                else:
                    acc += p.values  # same float32 sums, in the same order, as the one-piece ensemble
                del p
            if len(confs) > 1:
                acc /= len(confs)
            rows = np.arange(ys.start, ys.stop)
            if n is not None:  # shot noise, one stream per probe position: independent of the tiling
                for i, iy in enumerate(rows):
                    for j, ix in enumerate(range(xs.start, xs.stop)):
                        rng = np.random.default_rng([int(seed), int(iy), int(ix)])
                        acc[i, j] = rng.poisson(np.clip(acc[i, j], 0, None) * n) / n
            bad = acc.size - np.count_nonzero(np.isfinite(acc))
            if bad:
                raise FloatingPointError(f"STEM 4D-STEM patterns: {bad} non-finite values (NaN/inf) in the simulated "
                                         "data; check the input structure and the sampling settings")
            # sample frame (sample.to_sample_frame): rows y -> -y mod ny, k_y -> -k_y; views, no copies
            view = acc[:, :, ::-1, :] if top else acc
            rows_s = (-rows) % ny if top else rows
            if kys is None:
                kys, kxs = (-ky[::-1] if top else ky), kx
                cy_sl, cx_sl = _window(kys, half), _window(kxs, half)
                crops = np.empty((ny, nx, cy_sl.stop - cy_sl.start, cx_sl.stop - cx_sl.start), dtype=acc.dtype)
                mean_sum = np.zeros(acc.shape[-2:])
                if pattern_store is not None:
                    tmp_store = _new_pattern_store(Path(pattern_store), (ny, nx) + acc.shape[-2:],
                                                   {"y": y_all, "x": x_all, "ky": kys, "kx": kxs}, store_key)
                    import zarr

                    zpat = zarr.open_group(str(tmp_store), mode="r+")["patterns"]
            mean_sum += view.sum(axis=(0, 1), dtype=np.float64)
            for i, r in enumerate(rows_s):
                crops[r, xs] = view[i][:, cy_sl, cx_sl]
                com_w[0, r, xs], com_w[1, r, xs] = whole_com(view[i], kys, kxs)
                if tmp_store is not None:
                    zpat[int(r), xs] = view[i]
            del acc, view
        radius = s.semiangle if fd["com_radius"] == "semiangle" else None
        mean = (mean_sum / (ny * nx))[cy_sl, cx_sl]
        bx, by, disc = _bf_com_from_crops(crops, kys[cy_sl], kxs[cx_sl], mean, fd, radius, kys, kxs)
        if tmp_store is not None:  # complete: move into place (a killed run leaves only the temporary)
            if Path(pattern_store).exists():
                shutil.rmtree(pattern_store)
            os.replace(tmp_store, pattern_store)
            tmp_store = None
    finally:
        if tmp_store is not None:
            shutil.rmtree(tmp_store, ignore_errors=True)
    out = xr.Dataset({"com_bright_field": _com_da(bx, by, disc, "bright_field", fd, radius, y_all, x_all),
                      "com_whole": _com_da(com_w[0], com_w[1], None, "whole", fd, radius, y_all, x_all)})
    if log is not None:
        log.info("4D-STEM streamed %d tile(s) in %.1f s", plan.n_tiles, time.time() - t0)
    return out


def _scratch_dir() -> Path:
    """Process-wide temporary directory (removed at exit) for pattern stores without a checkpoint dir."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = Path(tempfile.mkdtemp(prefix="twistox-fourd-"))
        atexit.register(shutil.rmtree, _SCRATCH, True)
    return _SCRATCH


_SCRATCH: Path | None = None


def run_fourd(structures: dict, cfg: dict, device: str, seed: int, ckpt, log,
              mem_budget_mb: float | None = None) -> tuple[xr.Dataset, xr.Dataset | None]:
    """4D-STEM COM maps over one supercell for each structure (and the full patterns when asked),
    streamed over scan tiles under the memory budget (``stem.mem_budget_mb``, else ``mem_budget_mb``,
    the job's mem_mb; None = one tile)."""
    from twistox.stem.sample import planview_sample

    s = probe_settings(cfg, "fourd", device)
    fd, smp = cfg["fourd"], cfg["sample"]
    mode = fd["com_mode"]
    other = [m for m in MODES if m != mode][0]
    names = list(structures)
    budget, bkey = memory_budget(cfg, mem_budget_mb), budget_key(cfg, "stem_4d")
    out, full = xr.Dataset(), xr.Dataset()
    for si, (name, atoms) in enumerate(structures.items()):
        sample = planview_sample(atoms, 10.0 * smp["thickness_nm"], smp["vacuum"], smp["beam_entrance"])
        L, Ly = float(sample.cell[0, 0]), float(sample.cell[1, 1])
        n = fourd_tiling(L, s.semiangle, s.energy, fd["min_disc_radius_px"])
        tiled = sample.repeat((n, n, 1))
        confs = phonons.configurations(tiled, cfg, "fourd", phonon_seed(cfg, seed, 3, si))
        key = settings_hash(s.key(), fd, smp, cfg["frozen_phonons"] if phonons.enabled_for(cfg, "fourd") else None,
                            sample.positions, sample.numbers.astype(float), n,
                            *(["noise per probe"] if fd["dose"] else []), decimals=6)  # pre-tiling noise drew otherwise
        store = None
        if fd["store_patterns"]:
            store = (ckpt.dir if ckpt.dir is not None else _scratch_dir()) / f"fourd-{name}-patterns.zarr"
            if ckpt.dir is not None and not pattern_store_ok(store, key):  # COM without its patterns: redo both
                shutil.rmtree(ckpt.dir / f"fourd-{name}.zarr", ignore_errors=True)
        t = time.time()

        def compute():
            maps = fourd_maps(confs, s, (L, Ly), fd, int(part_rng(seed, 3, si).integers(2**31)), smp["beam_entrance"],
                              budget_mb=budget, key=bkey, log=log, pattern_store=store, store_key=key,
                              real_bytes=8 if cfg["precision"] == "float64" else 4)
            return xr.Dataset({"com": maps[f"com_{mode}"], f"com_{other}": maps[f"com_{other}"]})

        ds = ckpt.dataset(f"fourd-{name}", compute, key=key)
        sfx = suffix(names, name)
        disc_px = disc_radius_px(n * L, s.semiangle, s.energy)
        log.info("4D-STEM %s: cell tiled %dx%d (%.1f Å, BF disc radius %.1f px), %d x %d probes, %d configuration(s), "
                 "COM %s, in %.1f s", name, n, n, n * L, disc_px, ds.sizes["x"], ds.sizes["y"], len(confs), mode,
                 time.time() - t)
        common = {"tiling": n, "disc_radius_px": disc_px, "probe_cutoff_period": probe_cutoff_period(s.semiangle, s.energy),
                  "smoothing_sigma": fd["smoothing_sigma"]}
        com = check_finite(ds["com"], f"4D-STEM COM {name}")
        smooth = smooth_com(com, fd["smoothing_sigma"])
        smooth.attrs = {**com.attrs, **common,
                        "description": f"COM of the diffraction patterns (mrad, {mode.replace('_', '-')}), Gaussian-smoothed"}
        out[f"com{sfx}"] = smooth
        out[f"com_raw{sfx}"] = com.assign_attrs(units="mrad", description=f"COM before smoothing ({mode})")
        alt = smooth_com(ds[f"com_{other}"], fd["smoothing_sigma"])
        alt.attrs = {**ds[f"com_{other}"].attrs, **common,
                     "description": f"COM of the diffraction patterns (mrad, {other.replace('_', '-')}), Gaussian-smoothed; "
                                    "for comparison with com"}
        out[f"com_{other}{sfx}"] = alt
        if store is not None:  # lazily from disk: written to fourd.zarr chunk by chunk
            full[f"patterns{sfx}"] = xr.open_zarr(store)["patterns"]
    out["x"].attrs["units"] = "Å"
    out["y"].attrs["units"] = "Å"
    out.attrs["fourd_settings"] = json.dumps(s.key() | fd)
    out.attrs["fourd_frozen_phonons"] = phonons.describe(cfg, "fourd")
    return out, (full if len(full) else None)
