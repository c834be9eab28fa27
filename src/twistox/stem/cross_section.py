"""Cross-section STEM: beam along the mean crystal [100] / [110] in the interface plane.

Image dims (z_<view>, s_<view>): z the stacking height in the structure frame [Å], s the lateral
position across the beam [Å]; values are fractions of the incident beam (post-processed).
"""

from __future__ import annotations

import json
import time

import xarray as xr

from twistox.core.hashing import settings_hash
from twistox.stem import phonons
from twistox.stem.multislice import (ProbeSettings, batch_size, build_potential, grid_scan, make_probe,
                                     probe_settings, scan_coords, to_numpy)
from twistox.stem.planview import part_rng, phonon_seed, suffix
from twistox.stem.postprocess import check_finite, postprocess_config


def cross_section_image(sample, s: ProbeSettings, inner: float, outer: float) -> xr.DataArray:
    """Annular dark-field image over the whole re-cut cell: dims (y, x) = (stacking, lateral)."""
    import abtem

    pot = build_potential(sample, s)
    probe = make_probe(pot, s, 0.0)
    scan = grid_scan((0.0, 0.0), (float(sample.cell[0, 0]), float(sample.cell[1, 1])), s.scan_sampling)
    det = abtem.AnnularDetector(inner=inner, outer=outer)
    meas = probe.scan(pot, scan=scan, detectors=det, max_batch=batch_size(s, pot), lazy=True).compute()
    arr = to_numpy(meas.array)
    x, y = scan_coords(scan)
    return xr.DataArray(arr.T, dims=("y", "x"), coords={"y": y, "x": x},
                        attrs={"units": "1", "inner_mrad": inner, "outer_mrad": outer})


def run_cross_sections(structures: dict, cfg: dict, device: str, seed: int, ckpt, log) -> xr.Dataset:
    """[100] / [110] cross sections of the bilayer for each structure: dims (z_{view}, s_{view})."""
    from twistox.stem.sample import cross_section_sample

    s = probe_settings(cfg, "cross_section", device)
    cs = cfg["cross_section"]
    lo, hi = cs["detector_mrad"]
    names = list(structures)
    out = xr.Dataset()
    for si, (name, atoms) in enumerate(structures.items()):
        for vi, view in enumerate(cs["views"]):
            sample, geo = cross_section_sample(atoms, view, 10.0 * cs["thickness_nm"], cs["vacuum"])
            confs = phonons.configurations(sample, cfg, "cross_section", phonon_seed(cfg, seed, 2, si, vi))
            t = time.time()
            imgs = []
            for ci, conf in enumerate(confs):
                key = settings_hash(s.key(), [lo, hi], conf.positions, conf.numbers.astype(float), decimals=6)
                imgs.append(ckpt.dataset(f"cross-{name}-{view}-c{ci}", key=key,
                                         compute=lambda conf=conf: cross_section_image(conf, s, lo, hi).to_dataset(name="image"))["image"])
            img = check_finite(sum(imgs[1:], imgs[0]) / len(imgs), f"cross section {name} [{view}]")
            img.attrs.update(imgs[0].attrs)
            log.info("cross section %s [%s]: %d atoms, %d repeats (%.1f Å) along the beam, %d x %d probes, "
                     "%d configuration(s) in %.1f s", name, view, len(sample), sample.info["repeats_along_beam"],
                     sample.info["beam_thickness"], img.sizes["x"], img.sizes["y"], len(confs), time.time() - t)
            post = postprocess_config(cfg, img, (1, cs["tiles"]), part_rng(seed, 2, si, vi))
            post = post.assign_coords(y=post["y"] + sample.info["z_offset"]).rename(y=f"z_{view}", x=f"s_{view}")
            post[f"z_{view}"].attrs.update(units="Å", description="height along the stacking axis (structure frame)")
            post[f"s_{view}"].attrs.update(units="Å", description="lateral position across the beam")
            post.attrs.update(units="1", inner_mrad=lo, outer_mrad=hi, beam_angle_deg=geo.beam_angle_deg,
                              lateral_period=geo.lateral_period, beam_thickness=sample.info["beam_thickness"],
                              description=f"ADF cross section, beam along mean [{view}] (post-processed)")
            out[f"cross_section_{view}{suffix(names, name)}"] = post
    out.attrs["cross_section_settings"] = json.dumps(s.key() | {k: cs[k] for k in cs} | {"postprocess": cfg["postprocess"]})
    out.attrs["cross_section_frozen_phonons"] = phonons.describe(cfg, "cross_section")
    return out
