"""Zarr artifacts: atomic writes with provenance, and reads.

A store is written to a hidden temporary sibling and renamed into place only when
complete, so a killed job never leaves something that looks like a finished store.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twistox import __version__

_PACKAGES = ("numpy", "xarray", "zarr", "ase", "scipy", "torch", "mace-torch", "abtem", "gpaw", "snakemake")


def git_commit(repo: Path | None = None) -> str:
    """Commit hash of the twistox checkout ('unknown' outside git)."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def provenance(config: dict | None = None, stage: str = "", t0: float | None = None) -> dict[str, Any]:
    """Provenance attrs: version, commit, config subset (JSON), packages, wall time, host."""
    return {
        "twistox_version": __version__,
        "git_commit": git_commit(),
        "stage": stage,
        "config": json.dumps(_jsonable(config or {}), sort_keys=True),
        "package_versions": json.dumps(package_versions(), sort_keys=True),
        "wall_time_s": float(time.time() - t0) if t0 is not None else float("nan"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _clean_attrs(attrs: dict) -> dict:
    """Zarr attrs must be JSON: convert numpy scalars/arrays and tuples."""
    return {k: _jsonable(v) for k, v in attrs.items()}


def write_dataset(ds: xr.Dataset, path: str | os.PathLike, *, config: dict | None = None,
                  stage: str = "", t0: float | None = None) -> Path:
    """Write ``ds`` as a Zarr store at ``path`` atomically, adding provenance attrs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = ds.copy()
    ds.attrs = _clean_attrs({**ds.attrs, **provenance(config, stage, t0)})
    for v in ds.variables.values():
        v.attrs = _clean_attrs(v.attrs)
        v.encoding = {}
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        # left by a writer that was killed (SIGKILL skips the cleanup below); never a complete store
        shutil.rmtree(stale, ignore_errors=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            ds.to_zarr(tmp, mode="w", consolidated=True)  # xr.open_zarr(path) then opens without warnings
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_dataset(path: str | os.PathLike, load: bool = True) -> xr.Dataset:
    """Open a twistox Zarr store (loaded into memory by default)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"artifact not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = xr.open_zarr(path, consolidated=None)  # consolidated when present (older stores: not)
    return ds.load() if load else ds


def config_of(ds: xr.Dataset) -> dict:
    """The config subset recorded in a store's provenance."""
    return json.loads(ds.attrs.get("config", "{}"))


_STRUCT_ATTRS = (
    "m", "n", "sigma", "theta_deg", "theta_requested_deg", "a", "supercell_length", "moire_period",
    "frame_angle_deg", "layer_angles_deg", "interface_planes", "interface_z", "plane_z", "plane_kinds",
    "interface", "translation", "interlayer_spacing",
)


def structure_dataset(atoms) -> xr.Dataset:
    """ASE Atoms of a twisted bilayer -> Dataset with the names in DESIGN.md."""
    n = len(atoms)
    data = {
        "positions": (("atom", "xyz"), atoms.get_positions(), {"units": "Å"}),
        "numbers": (("atom",), atoms.get_atomic_numbers().astype(np.int32), {"units": "1"}),
        "cell": (("cell_vector", "xyz"), np.asarray(atoms.get_cell()), {"units": "Å"}),
    }
    for name, desc in (("layer", "0 bottom, 1 top"), ("plane", "global plane index, bottom to top"),
                       ("plane_kind", "0 AO, 1 BO2")):
        if name in atoms.arrays:
            data[name] = (("atom",), atoms.arrays[name].astype(np.int32), {"units": "1", "description": desc})
    ds = xr.Dataset(data, coords={"atom": np.arange(n), "xyz": ["x", "y", "z"]})
    ds.attrs.update({k: atoms.info[k] for k in _STRUCT_ATTRS if k in atoms.info})
    ds.attrs["pbc"] = [bool(p) for p in atoms.pbc]
    ds.attrs["n_atoms"] = n
    return ds


def atoms_from_dataset(ds: xr.Dataset, positions: str = "positions"):
    """Dataset (supercell/relaxed store) -> ASE Atoms with layer/plane arrays and info."""
    from ase import Atoms

    atoms = Atoms(numbers=ds["numbers"].values, positions=ds[positions].values, cell=ds["cell"].values,
                  pbc=ds.attrs.get("pbc", [True, True, False]))
    for name in ("layer", "plane", "plane_kind"):
        if name in ds:
            atoms.set_array(name, ds[name].values.astype(np.int32))
    atoms.info.update({k: ds.attrs[k] for k in _STRUCT_ATTRS if k in ds.attrs})
    return atoms
