"""4D-STEM: diffraction patterns over one supercell and their centre of mass (COM).

The cell is tiled n×n so the bright-field (BF) disc spans >= ``min_disc_radius_px`` detector
pixels (pixel = λ/(nL)); the scan covers one supercell. Patterns (y, x, ky, kx) are fractions of
the beam, k in mrad from the optical axis; COM maps (xy, y, x) in mrad, xy = ['x', 'y'], in the
sample frame. The COM mode (BF disc or whole pattern) is set by ``stem.fourd.com_*``; the other
mode is stored too, so the two can be compared on the same sample.
"""

from __future__ import annotations

import json
import time

import numpy as np
import xarray as xr

from twistox.core.hashing import settings_hash
from twistox.stem import phonons
from twistox.stem.com import MODES, centre_of_mass
from twistox.stem.multislice import (ProbeSettings, batch_size, build_potential, grid_scan, make_probe,
                                     probe_settings, scan_coords, to_numpy)
from twistox.stem.optics import disc_radius_px, fourd_tiling, probe_cutoff_period
from twistox.stem.planview import part_rng, phonon_seed, suffix
from twistox.stem.postprocess import check_finite, poisson_noise, smooth_com


def simulate_patterns(sample, s: ProbeSettings, scan_extent: tuple[float, float], max_angle: float | None,
                      pot=None) -> xr.DataArray:
    """Diffraction patterns (y, x, ky, kx) over ``scan_extent`` [Å, from the origin]; fractions of the
    beam, k in mrad (abTEM's angular coordinates, fftshifted). ``max_angle`` None = all the grid resolves."""
    import abtem

    pot = pot if pot is not None else build_potential(sample, s)
    probe = make_probe(pot, s, 0.0)
    scan = grid_scan((0.0, 0.0), scan_extent, s.scan_sampling)
    det = abtem.PixelatedDetector(max_angle=max_angle if max_angle is not None else "valid")
    dp = probe.scan(pot, scan=scan, detectors=det, max_batch=batch_size(s, pot), lazy=True).compute()
    arr = to_numpy(dp.array)  # (nx, ny, kx, ky)
    kx, ky = (np.asarray(c, float) for c in dp.angular_coordinates)
    x, y = scan_coords(scan)
    return xr.DataArray(arr.transpose(1, 0, 3, 2), dims=("y", "x", "ky", "kx"),
                        coords={"y": y, "x": x, "ky": ky, "kx": kx},
                        attrs={"units": "1", "k_units": "mrad"})


def com_map(patterns: xr.DataArray, mode: str, fd: dict, semiangle: float) -> xr.DataArray:
    """COM [mrad] of every pattern (y, x, ky, kx) -> (xy, y, x) with the ``stem.fourd`` COM settings."""
    radius = semiangle if fd["com_radius"] == "semiangle" else None
    cx, cy, disc = centre_of_mass(patterns.values, patterns["ky"].values, patterns["kx"].values, mode=mode,
                                  mask_factor=float(fd["com_mask_factor"]), disc=fd["com_disc"], radius=radius)
    attrs = {"units": "mrad", "com_mode": mode,
             "description": f"centre of mass of the diffraction pattern ({mode.replace('_', '-')})"}
    if disc is not None:
        attrs.update(com_disc=fd["com_disc"], com_mask_factor=float(fd["com_mask_factor"]),
                     disc_radius_measured_mrad=disc.radius, disc_centre_mrad=[disc.cx, disc.cy],
                     mask_radius_mrad=float(fd["com_mask_factor"]) * (disc.radius if radius is None else radius))
    return xr.DataArray(np.stack([cx, cy]).astype(np.float64), dims=("xy", "y", "x"),
                        coords={"xy": ["x", "y"], "y": patterns["y"].values, "x": patterns["x"].values}, attrs=attrs)


def _ensemble_patterns(tiled_confs, s, scan_extent, fd, seed, entrance) -> xr.DataArray:
    """Patterns averaged over the (frozen-phonon) configurations, shot noise, mapped to the sample frame."""
    from twistox.stem.sample import to_sample_frame

    total = None
    for conf in tiled_confs:
        p = simulate_patterns(conf, s, scan_extent, fd["max_angle_mrad"])
        total = p if total is None else total + p
    pat = (total / len(tiled_confs)).assign_attrs(total.attrs if len(tiled_confs) == 1 else {"units": "1", "k_units": "mrad"})
    if fd["dose"]:
        # shot noise on each pattern: dose x scan pixel area electrons per probe position
        dx = float(pat["x"][1] - pat["x"][0]) if pat.sizes["x"] > 1 else scan_extent[0]
        dy = float(pat["y"][1] - pat["y"][0]) if pat.sizes["y"] > 1 else scan_extent[1]
        pat = pat.copy(data=poisson_noise(pat.values, fd["dose"], dx * dy, np.random.default_rng(seed)))
    return check_finite(to_sample_frame(pat, entrance, ky_dim="ky"), "4D-STEM patterns")


def run_fourd(structures: dict, cfg: dict, device: str, seed: int, ckpt, log) -> tuple[xr.Dataset, xr.Dataset | None]:
    """4D-STEM COM maps over one supercell for each structure (and the full patterns when asked)."""
    from twistox.stem.sample import planview_sample

    s = probe_settings(cfg, "fourd", device)
    fd, smp = cfg["fourd"], cfg["sample"]
    mode = fd["com_mode"]
    other = [m for m in MODES if m != mode][0]
    names = list(structures)
    out, full = xr.Dataset(), xr.Dataset()
    for si, (name, atoms) in enumerate(structures.items()):
        sample = planview_sample(atoms, 10.0 * smp["thickness_nm"], smp["vacuum"], smp["beam_entrance"])
        L, Ly = float(sample.cell[0, 0]), float(sample.cell[1, 1])
        n = fourd_tiling(L, s.semiangle, s.energy, fd["min_disc_radius_px"])
        tiled = sample.repeat((n, n, 1))
        confs = phonons.configurations(tiled, cfg, "fourd", phonon_seed(cfg, seed, 3, si))
        key = settings_hash(s.key(), fd, smp, cfg["frozen_phonons"] if phonons.enabled_for(cfg, "fourd") else None,
                            sample.positions, sample.numbers.astype(float), n, decimals=6)
        t = time.time()

        def compute():
            pat = _ensemble_patterns(confs, s, (L, Ly), fd, int(part_rng(seed, 3, si).integers(2**31)),
                                     smp["beam_entrance"])
            ds = xr.Dataset({"com": com_map(pat, mode, fd, s.semiangle), f"com_{other}": com_map(pat, other, fd, s.semiangle)})
            if fd["store_patterns"]:
                ds["patterns"] = pat
            return ds

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
        if "patterns" in ds:
            full[f"patterns{sfx}"] = ds["patterns"].chunk({"y": 8, "x": 8})
    out["x"].attrs["units"] = "Å"
    out["y"].attrs["units"] = "Å"
    out.attrs["fourd_settings"] = json.dumps(s.key() | fd)
    out.attrs["fourd_frozen_phonons"] = phonons.describe(cfg, "fourd")
    return out, (full if len(full) else None)
