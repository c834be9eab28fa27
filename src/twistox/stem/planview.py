"""Plan-view STEM: flexible annular detector over one supercell, focal series, ADF ranges.

Focus: the config uses the microscopist's defocus (negative = focused below the entrance
surface); abTEM's ``defocus`` has the opposite sign (positive = focused that far below the
potential's entrance plane), verified numerically. Images: xarray (..., y, x) in the sample frame
(see :func:`twistox.stem.sample.to_sample_frame`), fractions of the incident beam.
"""

from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import numpy as np
import xarray as xr

from twistox.core.hashing import settings_hash
from twistox.stem import phonons
from twistox.stem.multislice import (ProbeSettings, batch_size, build_potential, grid_scan, make_probe,
                                     probe_settings, scan_coords, to_numpy)
from twistox.stem.postprocess import check_finite, postprocess_config
from twistox.stem.tiling import OUTPUT_COPIES, ScanTiling, iter_tiles, potential_shape, scan_tiles_for_budget, tile_scan


def planview_plan(atoms, s: ProbeSettings, outer: float, step: float, budget_mb: float | None,
                  key: str = "resources.stem_haadf.mem_mb", pot=None, extra_mb: float = 0.0,
                  real_bytes: int = 4) -> ScanTiling:
    """Scan tiling of :func:`planview_radial` under ``budget_mb`` [MB] (None = one tile), decided before
    the potential is built (ConfigError naming ``key`` when not even one probe position fits)."""
    scan = grid_scan((0.0, 0.0), (float(atoms.cell[0, 0]), float(atoms.cell[1, 1])), s.scan_sampling)
    grid, n_slices = (tuple(pot.gpts), len(pot)) if pot is not None else potential_shape(atoms, s)
    batch = batch_size(s, SimpleNamespace(gpts=grid))
    return scan_tiles_for_budget((int(scan.gpts[1]), int(scan.gpts[0])), grid, n_slices, int(math.ceil(outer / step)) + 1,
                                 budget_mb, batch=batch if isinstance(batch, int) else 1, supersampling=s.supersampling,
                                 real_bytes=real_bytes, key=key, extra_mb=extra_mb)


def planview_radial(atoms, s: ProbeSettings, defocus_abtem: float, outer: float, step: float,
                    pot=None, budget_mb: float | None = None, key: str = "resources.stem_haadf.mem_mb",
                    log=None, real_bytes: int = 4) -> xr.DataArray:
    """Flexible annular detector signal over one supercell: dims (y, x, angle); fraction of the beam.

    ``angle`` holds the inner edge of each ``step``-mrad bin, from 0 to ``outer``. Coordinates are
    those of the simulated specimen (abTEM's frame). The scan runs tile by tile (abTEM ``GridScan``
    per tile) so the predicted peak stays under ``budget_mb`` [MB] (None = one tile; ``real_bytes`` 8
    for stem.precision float64).
    """
    import abtem

    plan = planview_plan(atoms, s, outer, step, budget_mb, key, pot=pot, real_bytes=real_bytes)
    pot = pot if pot is not None else build_potential(atoms, s)
    probe = make_probe(pot, s, defocus_abtem)
    scan = grid_scan((0.0, 0.0), (float(atoms.cell[0, 0]), float(atoms.cell[1, 1])), s.scan_sampling)
    det = abtem.FlexibleAnnularDetector(step_size=step, inner=0.0, outer=outer)
    if log is not None and plan.n_tiles > 1:
        log.info("  plan-view memory: %s", plan.describe())
    out = None
    for ys, xs in iter_tiles(plan):
        part = tile_scan(scan, ys, xs) if plan.n_tiles > 1 else scan
        meas = probe.scan(pot, scan=part, detectors=det, max_batch=batch_size(s, pot), lazy=True).compute()
        arr = to_numpy(meas.array)[..., 0]  # (nx, ny, n_radial), single azimuthal bin
        if out is None:
            out = np.empty((plan.scan[0], plan.scan[1], arr.shape[-1]), dtype=arr.dtype)
        out[ys, xs] = arr.transpose(1, 0, 2)
    x, y = scan_coords(scan)
    angles = np.arange(out.shape[-1]) * step
    return xr.DataArray(out, dims=("y", "x", "angle"),
                        coords={"y": y, "x": x, "angle": angles},
                        attrs={"units": "1", "description": "flexible annular detector, fraction of the incident beam per bin",
                               "angle_units": "mrad", "angle_step_mrad": step})


def integrate_range(radial: xr.DataArray, inner: float, outer: float) -> xr.DataArray:
    """Annular signal between ``inner`` and ``outer`` [mrad] from flexible-detector bins."""
    step = float(radial.attrs.get("angle_step_mrad", 1.0))
    a = radial["angle"].values
    sel = (a >= inner - 1e-9) & (a + step <= outer + 1e-9)
    if not sel.any():
        raise ValueError(f"no detector bins between {inner} and {outer} mrad")
    out = radial.isel(angle=np.nonzero(sel)[0]).sum("angle")
    out.attrs = {"units": "1", "inner_mrad": inner, "outer_mrad": outer}
    return out


def resolve_focus(entries: list, interface_depth: float) -> list[tuple[str, float]]:
    """Focus entries -> [(label, depth below the entrance surface in Å)].

    Numbers are microscope defoci in nm (negative = focused below the entrance surface)."""
    out = []
    for e in entries:
        if e == "surface":
            out.append(("surface", 0.0))
        elif e == "interface":
            out.append(("interface", float(interface_depth)))
        else:
            out.append((f"{float(e):g} nm", -10.0 * float(e)))
    return out


def suffix(names: list[str], name: str) -> str:
    """Variable-name suffix of a structure: '' for the first (primary) one, '_rigid' / '_relaxed' else."""
    return "" if name == names[0] else f"_{name}"


def part_rng(seed: int, *keys: int) -> np.random.Generator:
    """Independent, reproducible stream per (part, structure, focus, ...)."""
    return np.random.default_rng([int(seed), *map(int, keys)])


def radial_focal_series(sample, s: ProbeSettings, cfg: dict, foci: list[tuple[str, float]], name: str,
                        seed: int, ckpt, log, budget_mb: float | None = None,
                        key: str = "resources.stem_haadf.mem_mb") -> list[xr.DataArray]:
    """Flexible-detector data (y, x, angle) per focus in the sample frame, averaged over the
    frozen-phonon configurations (one static configuration when they are off).

    One checkpoint per (focus, configuration); the potential of a configuration is built once and
    reused for all its foci."""
    from twistox.stem.sample import to_sample_frame

    pv, smp = cfg["planview"], cfg["sample"]
    confs = phonons.configurations(sample, cfg, "planview", seed)
    sums: list[xr.DataArray | None] = [None] * len(foci)
    attrs: dict = {}
    for ci, conf in enumerate(confs):
        pot = None
        for fi, (label, depth) in enumerate(foci):
            key = settings_hash(s.key(), pv["detector"], depth, smp, conf.positions, conf.numbers.astype(float),
                                decimals=6)

            def compute(depth=depth, conf=conf):
                nonlocal pot
                pot = pot if pot is not None else build_potential(conf, s)  # once per configuration
                r = planview_radial(conf, s, smp["vacuum"] + depth, pv["detector"]["outer_mrad"],
                                    pv["detector"]["step_mrad"], pot=pot, budget_mb=budget_mb, key=key, log=log,
                                    real_bytes=8 if cfg["precision"] == "float64" else 4)
                return to_sample_frame(r, smp["beam_entrance"]).to_dataset(name="adf_radial")

            t = time.time()
            r = check_finite(ckpt.dataset(f"planview-{name}-{fi}-c{ci}", compute, key=key)["adf_radial"],
                             f"plan view {name} focus {label}")
            log.info("  focus %d/%d (%s, %.1f Å below surface), configuration %d/%d: %d x %d probes in %.1f s",
                     fi + 1, len(foci), label, depth, ci + 1, len(confs), r.sizes["x"], r.sizes["y"], time.time() - t)
            attrs = dict(r.attrs)
            sums[fi] = r if sums[fi] is None else sums[fi] + r
    return [(r / len(confs)).assign_attrs(attrs) for r in sums]


def run_planview(structures: dict, cfg: dict, device: str, seed: int, ckpt, log,
                 mem_budget_mb: float | None = None) -> xr.Dataset:
    """Plan-view focal series for each structure: flexible-detector data and post-processed ADF images."""
    from twistox.imaging.twist import alias_free_scan_step
    from twistox.stem.sample import planview_sample

    s = probe_settings(cfg, "planview", device)
    pv, smp = cfg["planview"], cfg["sample"]
    names = list(structures)
    out = xr.Dataset()
    for si, (name, atoms) in enumerate(structures.items()):
        sample = planview_sample(atoms, 10.0 * smp["thickness_nm"], smp["vacuum"], smp["beam_entrance"])
        foci = resolve_focus(pv["focus"], sample.info["interface_depth"])
        log.info("plan view %s: %d atoms, %.1f Å thick (interface %.1f Å deep), %d foci, beam enters %s", name,
                 len(sample), sample.info["sample_thickness"], sample.info["interface_depth"], len(foci),
                 smp["beam_entrance"])
        s_max = alias_free_scan_step(float(atoms.info["a"])) if "a" in atoms.info else np.inf
        if pv["scan_sampling"] > s_max:
            log.warning("plan view %s: scan step %g Å > %.2f Å: the {220} reflections alias onto the {100} ring "
                        "(image twist and GPA of these images are not meaningful; twistox.imaging.twist."
                        "alias_free_scan_step)", name, pv["scan_sampling"], s_max)
        # memory plan before any work (ConfigError naming the budget key when one probe cannot fit); the
        # focal series keeps ~2 radial arrays per focus (sums and the one just read) besides the scan tile
        budget, bkey = memory_budget(cfg, mem_budget_mb), budget_key(cfg, "stem_haadf")
        plan = planview_plan(sample, s, pv["detector"]["outer_mrad"], pv["detector"]["step_mrad"], budget, bkey)
        held = 2 * len(foci) * plan.scan[0] * plan.scan[1] * plan.per_probe_mb / OUTPUT_COPIES
        plan = planview_plan(sample, s, pv["detector"]["outer_mrad"], pv["detector"]["step_mrad"], budget, bkey,
                             extra_mb=held, real_bytes=8 if cfg["precision"] == "float64" else 4)
        log.info("plan view %s memory: %s", name, plan.describe())
        radial = radial_focal_series(sample, s, cfg, foci, name, phonon_seed(cfg, seed, 1, si), ckpt, log,
                                     budget_mb=None if budget is None else budget - held, key=bkey)
        sfx = suffix(names, name)
        rad = xr.concat(radial, dim="defocus").rename(y="y_scan", x="x_scan")
        depth = np.array([d for _, d in foci])
        coords = {"defocus": ("defocus", -depth, {"units": "Å", "description": "microscope sign: negative = below the entrance surface"}),
                  "focus_depth": ("defocus", depth, {"units": "Å", "description": "focal plane depth below the entrance surface"}),
                  "focus_label": ("defocus", [lab for lab, _ in foci])}
        rad = rad.assign_coords(coords)
        rad.attrs.update(units="1", description="flexible annular detector: fraction of the beam per angle bin")
        out[f"adf_radial{sfx}"] = rad
        for ri, (rname, (lo, hi)) in enumerate(pv["ranges"].items()):
            var = rname if rname in ("haadf", "laadf") else f"adf_{rname}"
            imgs = [postprocess_config(cfg, integrate_range(radial[fi], lo, hi), pv["tiles"], part_rng(seed, 1, si, fi, ri))
                    for fi in range(len(foci))]
            da = xr.concat(imgs, dim="defocus").rename(y="y_image", x="x_image").assign_coords(coords)
            da.attrs.update(units="1", inner_mrad=lo, outer_mrad=hi,
                            description=f"{rname} {lo:g}-{hi:g} mrad, fraction of the beam (post-processed)")
            out[f"{var}{sfx}"] = da
        out.attrs[f"planview_sample{sfx}"] = json.dumps({k: sample.info[k] for k in (
            "sample_thickness", "interface_depth", "vacuum", "planes_added_below", "planes_added_above", "beam_entrance")}
            | {"n_atoms": len(sample)})
    for c in ("y_image", "x_image", "y_scan", "x_scan"):
        out[c].attrs["units"] = "Å"
    out["angle"].attrs["units"] = "mrad"
    out.attrs["planview_settings"] = json.dumps(s.key() | {"detector": pv["detector"], "ranges": pv["ranges"],
                                                           "tiles": pv["tiles"], "postprocess": cfg["postprocess"]})
    out.attrs["planview_frozen_phonons"] = phonons.describe(cfg, "planview")
    return out


def budget_key(cfg: dict, rule: str) -> str:
    """Config key that sets a STEM part's memory budget: ``stem.mem_budget_mb`` when set, else the job's mem_mb."""
    return "stem.mem_budget_mb" if cfg.get("mem_budget_mb") is not None else f"resources.{rule}.mem_mb"


def memory_budget(cfg: dict, job_mem_mb: float | None) -> float | None:
    """Memory budget [MB] of a STEM part: ``stem.mem_budget_mb``, else the job's mem_mb, else None (no limit)."""
    b = cfg.get("mem_budget_mb")
    return float(b) if b is not None else (float(job_mem_mb) if job_mem_mb else None)


def phonon_seed(cfg: dict, seed: int, *keys: int) -> int:
    """Seed of the frozen-phonon displacements: ``stem.frozen_phonons.seed`` or the run seed, per part/structure."""
    base = cfg["frozen_phonons"]["seed"]
    return int(part_rng(seed if base is None else base, 7, *keys).integers(2**31))
