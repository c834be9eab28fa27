"""Stage drivers of ``stem``: one simulation part per rule (``stem_haadf``, ``stem_cross_section``,
``stem_4d``) and the merge into ``stem.zarr`` with its figures. The rule scripts only call these.
"""

from __future__ import annotations

import logging

import xarray as xr

from twistox.core.checkpoint import Checkpoint
from twistox.core.device import array_device
from twistox.stem.checks import check_config
from twistox.stem.multislice import configure_abtem

PARTS = ("planview", "cross_section", "fourd")
# geometry attrs copied from the input structure store
GEOMETRY_ATTRS = ("theta_deg", "sigma", "supercell_length", "moire_period", "interface_z", "frame_angle_deg",
                  "layer_angles_deg")


def run_part(part: str, src: xr.Dataset, cfg: dict, device_preference: str, threads: int, seed: int,
             checkpoint_dir: str | None, log: logging.Logger, mem_budget_mb: float | None = None) -> xr.Dataset:
    """Simulate one part of the ``stem`` config (validated section ``cfg``) for every configured
    structure of the store ``src`` (relaxed.zarr or supercell.zarr); checkpointed per sub-simulation.
    ``mem_budget_mb``: the job's mem_mb [MB] (``stem.mem_budget_mb`` overrides it); plan view and 4D-STEM
    scan in tiles that keep the predicted peak under it (twistox.stem.tiling)."""
    from twistox.stem.cross_section import run_cross_sections
    from twistox.stem.fourd import run_fourd
    from twistox.stem.planview import run_planview
    from twistox.stem.sample import structure_atoms

    if part not in PARTS:
        raise ValueError(f"stem part {part!r} is not allowed; allowed: {', '.join(PARTS)}")
    check_config(cfg)  # before any heavy work
    structures = {name: structure_atoms(src, name) for name in cfg["structures"]}
    device = array_device(device_preference)
    configure_abtem(device, cfg["precision"], threads)
    log.info("stem %s: structures %s, device %s", part, list(structures), device)
    ckpt = Checkpoint(checkpoint_dir)
    if part == "planview":
        ds = run_planview(structures, cfg, device, seed, ckpt, log, mem_budget_mb=mem_budget_mb)
    elif part == "cross_section":
        ds = run_cross_sections(structures, cfg, device, seed, ckpt, log)
    else:
        ds, patterns = run_fourd(structures, cfg, device, seed, ckpt, log, mem_budget_mb=mem_budget_mb)
        if patterns is not None:
            ds = ds.merge(patterns)
    ds.attrs.update(structures=list(structures), energy_kev=float(cfg["energy_kev"]), device=device,
                    **{k: src.attrs[k] for k in GEOMETRY_ATTRS if k in src.attrs})
    return ds


def finish_part(cfg: dict, checkpoint_dir: str | None) -> None:
    """Remove a part's checkpoints (unless ``stem.keep_checkpoints``); call only once its artifact is
    written, so a job killed before that still resumes from them."""
    if not cfg["keep_checkpoints"]:
        Checkpoint(checkpoint_dir).clear()


def merge_parts(parts: list[xr.Dataset]) -> xr.Dataset:
    """stem.zarr from the part stores: maps merged, settings/geometry attrs kept; the full 4D data
    (``patterns*``) stays in stem/fourd.zarr."""
    attrs = {}
    for p in parts:
        attrs.update({k: v for k, v in p.attrs.items()
                      if k.endswith(("_settings", "_frozen_phonons")) or k.startswith("planview_sample")})
        attrs.update({k: p.attrs[k] for k in ("structures", "energy_kev", "device", *GEOMETRY_ATTRS) if k in p.attrs})
    ds = xr.merge([p.drop_vars([v for v in p.data_vars if v.startswith("patterns")]) for p in parts],
                  combine_attrs="drop_conflicts")
    ds.attrs = attrs
    return ds


def figures(ds: xr.Dataset, cfg: dict) -> dict:
    """Figures of stem.zarr: {name: matplotlib figure} for the names the rule declares."""
    from twistox.stem import figures as fig

    out = {}
    L = ds.attrs.get("supercell_length")
    if "haadf" in ds:
        out["haadf"] = fig.focal_series(ds, "haadf", f"HAADF {cfg['planview']['ranges']['haadf']} mrad", L)
        out["laadf"] = fig.focal_series(ds, "laadf", f"LAADF {cfg['planview']['ranges']['laadf']} mrad", L)
    if any(v.startswith("cross_section_") for v in ds.data_vars):
        out["cross_sections"] = fig.cross_sections(ds, cfg["cross_section"]["views"], ds.attrs.get("moire_period"))
    if "com" in ds:
        out["com"] = fig.com_map(ds)
        out["com_modes"] = fig.com_modes(ds)
    return out
