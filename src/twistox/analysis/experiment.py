"""Vector-field sources for the DPC / topology analysis: twistox artifacts and measured data.

Everything becomes a `VectorField` (components x, y on a regular [y, x] grid in Å), so the
simulated 4D-STEM COM, the phase-field projected field, the atomistic polarisation and a
microscope's COM map (or a 4D-STEM dataset, reduced to COM) go through one analysis.

Measured data readers: NumPy (.npy, .npz), HDF5 / EMD (.h5, .hdf5, .emd; h5py), Zarr
(.zarr; plain arrays, groups, and xarray stores such as a stem.zarr). Each reader checks
rank, shape, finiteness and that the data are not constant, and says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twistox.analysis import dpc

FORMATS = (".npy", ".npz", ".h5", ".hdf5", ".emd", ".zarr")


class DataError(ValueError):
    """Input data that cannot be analysed; the message names the file and the problem."""


@dataclass
class VectorField:
    """A 2D vector map for the topology analysis.

    vx, vy: (ny, nx) arrays indexed [y, x]; x, y: coords (Å); units of the components;
    periodic: the grid covers whole supercells with periodic boundaries; n_cells: supercells covered.
    extra: further named maps (e.g. the COM in mrad) written next to the field, {name: (array, units)}.
    """

    name: str
    source: str
    vx: np.ndarray
    vy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    units: str
    periodic: bool
    n_cells: float
    plane: int = -1
    description: str = ""
    extra: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)

    @property
    def magnitude(self) -> np.ndarray:
        return np.hypot(self.vx, self.vy)


# --------------------------------------------------------------------------- raw readers

def _pick(names: dict[str, tuple], key: str | None, path: Path) -> str:
    """Choose an array among {name: shape}: the key if given, else the single / largest one with ndim >= 2."""
    if key is not None:
        if key not in names:
            raise DataError(f"{path}: key {key!r} not found; available: {', '.join(sorted(names)) or 'none'}")
        return key
    cands = {k: s for k, s in names.items() if len(s) >= 2}
    if not cands:
        raise DataError(f"{path}: no array with at least 2 dimensions; available: {', '.join(sorted(names)) or 'none'}")
    return max(cands, key=lambda k: int(np.prod(cands[k])))


def open_array(path: str | Path, key: str | None = None) -> Any:
    """Array-like (lazy where the format allows: .npy memory-mapped, HDF5, Zarr) from a data file.

    key: array name inside .npz / HDF5 / EMD / Zarr containers (default: the largest array
    with >= 2 dims). EMD files are HDF5 (Berkeley EMD: the ``data`` dataset of an emd group).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if suffix not in FORMATS:
        raise DataError(f"{path}: unknown format {suffix!r}; allowed: {', '.join(FORMATS)}")
    try:
        if suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        if suffix == ".npz":
            z = np.load(path, allow_pickle=False)
            return z[_pick({k: z[k].shape for k in z.files}, key, path)]
        if suffix in (".h5", ".hdf5", ".emd"):
            import h5py

            f = h5py.File(path, "r")
            found: dict[str, tuple] = {}
            f.visititems(lambda n, o: found.__setitem__(n, o.shape) if isinstance(o, h5py.Dataset) else None)
            return f[_pick(found, key.lstrip("/") if key else None, path)]
        # Zarr: an xarray store (twistox artifact), a group of arrays, or one array
        import zarr

        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Array):
            return node
        arrays = {k: a.shape for k, a in node.arrays()}
        return node[_pick(arrays, key, path)]
    except DataError:
        raise
    except Exception as exc:  # corrupt / unreadable container
        raise DataError(f"{path}: cannot be read as {suffix} ({type(exc).__name__}: {exc})") from None


def _check_finite(a: np.ndarray, path: Path, what: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        raise DataError(f"{path}: {what} has {int(bad.sum())} of {a.size} non-finite (NaN/inf) values; "
                        "mask or interpolate them before the analysis")
    if np.ptp(a) == 0:
        raise DataError(f"{path}: {what} is constant; nothing to analyse")


def load_com(path: str | Path, key: str | None = None, layout: str = "auto") -> np.ndarray:
    """A measured COM map as (2, ny, nx) float, [0] = x. layout: 'auto', 'xy_first' (2, ny, nx)
    or 'xy_last' (ny, nx, 2); 'auto' takes the axis of length 2 (first if both are)."""
    path = Path(path)
    a = open_array(path, key)
    shape = tuple(a.shape)
    if len(shape) != 3:
        raise DataError(f"{path}: a COM map must be 3D, (2, ny, nx) or (ny, nx, 2); got shape {shape}")
    if layout not in ("auto", "xy_first", "xy_last"):
        raise DataError(f"layout {layout!r} not allowed; allowed: auto, xy_first, xy_last")
    if layout == "auto":
        layout = "xy_first" if shape[0] == 2 else ("xy_last" if shape[-1] == 2 else "")
        if not layout:
            raise DataError(f"{path}: a COM map needs a component axis of length 2 first or last; got shape {shape}")
    arr = np.asarray(a[...], dtype=float)
    if layout == "xy_last":
        arr = np.moveaxis(arr, -1, 0)
    if arr.shape[0] != 2:
        raise DataError(f"{path}: layout {layout} expects 2 components, got shape {shape}")
    if min(arr.shape[1:]) < 4:
        raise DataError(f"{path}: COM map {arr.shape[1:]} too small; need at least 4 x 4 scan points")
    _check_finite(arr, path, "COM map")
    return arr


def com_from_4dstem_file(path: str | Path, k_sampling_mrad: float, key: str | None = None,
                         center: tuple[float, float] | None = None, device: str = "cpu") -> np.ndarray:
    """COM (2, scan_y, scan_x; mrad) from a 4D-STEM file (scan_y, scan_x, k_y, k_x), read in row chunks."""
    path = Path(path)
    a = open_array(path, key)
    if len(a.shape) != 4:
        raise DataError(f"{path}: 4D-STEM data must be 4D (scan_y, scan_x, k_y, k_x); got shape {tuple(a.shape)}")
    if min(a.shape[:2]) < 4 or min(a.shape[2:]) < 2:
        raise DataError(f"{path}: 4D-STEM shape {tuple(a.shape)} too small (scan >= 4 x 4, detector >= 2 x 2)")
    try:
        com = dpc.com_from_4dstem(a, k_sampling_mrad, center=center, device=device)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    _check_finite(com, path, "COM computed from the 4D-STEM data")
    return com


def experiment_field(entry: dict, supercell_length: float, device: str = "cpu", name: str = "experiment") -> VectorField:
    """Measured COM / 4D-STEM file (one config entry of analysis.experiment) -> E_proj VectorField (V).

    The COM is rotated by rotation_deg (scan vs detector), its background removed, and
    converted with the beam energy; the grid is open (not periodic).
    """
    path = Path(entry["path"])
    if entry.get("kind", "com") == "4dstem":
        com = com_from_4dstem_file(path, entry["k_sampling_mrad"], entry.get("key"), device=device)
    else:
        com = load_com(path, entry.get("key"), entry.get("layout", "auto"))
    com = dpc.rotate_vectors(com, entry.get("rotation_deg", 0.0))
    com = dpc.remove_background(com, entry.get("background", "mean"))
    e = dpc.com_to_projected_field(com, entry.get("energy_kV", 300.0) * 1e3)
    ps = float(entry["pixel_size"])
    ny, nx = com.shape[1:]
    x, y = np.arange(nx) * ps, np.arange(ny) * ps
    return VectorField(name, "experiment", e[0], e[1], x, y, "V", False, nx * ny * ps**2 / supercell_length**2,
                       description=f"measured {entry.get('kind', 'com')} from {path.name}",
                       extra={"com": (com, "mrad")})


# --------------------------------------------------------------------------- twistox artifacts

def _components(da: xr.DataArray, what: str) -> tuple[np.ndarray, np.ndarray, xr.DataArray]:
    """Split a DataArray with one length-2 component dim (labels x, y) into (vx, vy) transposed to [y, x]."""
    comp = [d for d in da.dims if d not in ("x", "y") and da.sizes[d] == 2]
    if "x" not in da.dims or "y" not in da.dims or len(comp) != 1:
        raise DataError(f"{what}: expected dims (component of length 2, y, x); got {dict(da.sizes)}")
    c = comp[0]
    labels = [str(v) for v in da[c].values] if c in da.coords else ["x", "y"]
    ix, iy = (labels.index("x"), labels.index("y")) if {"x", "y"} <= set(labels) else (0, 1)
    t = da.transpose(c, "y", "x")
    return np.asarray(t.isel({c: ix}).values, float), np.asarray(t.isel({c: iy}).values, float), t


def _is_whole_cells(x: np.ndarray, L: float) -> tuple[bool, float]:
    """Does an evenly spaced coordinate span an integer number (>= 1) of supercells?"""
    ext = len(x) * float(x[1] - x[0])
    k = ext / L
    return bool(round(k) >= 1 and abs(k - round(k)) < 0.01), k


def _grid_cells(x, y, L) -> tuple[bool, float]:
    px, kx = _is_whole_cells(np.asarray(x), L)
    py, ky = _is_whole_cells(np.asarray(y), L)
    return px and py, kx * ky


def dpc_field(stem: xr.Dataset, supercell_length: float, energy_eV: float) -> VectorField:
    """stem.zarr `com` (xy, y, x; mrad) -> projected field E_proj (V) with the COM kept as extra."""
    if "com" not in stem:
        raise DataError("stem.zarr has no variable 'com' (xy, y, x; mrad)")
    cx, cy, _ = _components(stem["com"], "stem.zarr com")
    com = np.stack([cx, cy])
    e = dpc.com_to_projected_field(com, energy_eV)
    x, y = stem["com"]["x"].values, stem["com"]["y"].values
    periodic, cells = _grid_cells(x, y, supercell_length)
    return VectorField("dpc", "dpc", e[0], e[1], x, y, "V", periodic, cells,
                       description=f"E_proj from simulated 4D-STEM COM at {energy_eV / 1e3:.0f} kV",
                       extra={"com": (com, "mrad")})


def phasefield_field(pf: xr.Dataset, supercell_length: float, energy_eV: float) -> VectorField:
    """phasefield.zarr `E_projected` (component, y, x; V), with the expected COM (mrad) as extra."""
    if "E_projected" not in pf:
        raise DataError("phasefield.zarr has no variable 'E_projected' (component, y, x; V)")
    ex, ey, _ = _components(pf["E_projected"], "phasefield.zarr E_projected")
    x, y = pf["E_projected"]["x"].values, pf["E_projected"]["y"].values
    periodic, cells = _grid_cells(x, y, supercell_length)
    com = dpc.projected_field_to_com(np.stack([ex, ey]), energy_eV)
    return VectorField("phasefield", "phasefield", ex, ey, x, y, "V", periodic, cells,
                       description="phase-field projected field ∫E dz (single column)",
                       extra={"com_expected": (com, "mrad")})


def atomistic_fields(strain: xr.Dataset, supercell_length: float) -> list[VectorField]:
    """strain.zarr `polarization` (plane, y, x, xy; C/m²) on the interface planes, one field per plane.
    Planes whose map is entirely NaN (no Ti in an AO plane) are skipped."""
    if "polarization" not in strain:
        raise DataError("strain.zarr has no variable 'polarization' (plane, y, x, xy; C/m²)")
    P = strain["polarization"]
    planes = [int(p) for p in strain.attrs.get("interface_planes", P["plane"].values.tolist())]
    out = []
    for p in planes:
        if p not in P["plane"].values:
            continue
        px, py, _ = _components(P.sel(plane=p), f"strain.zarr polarization plane {p}")
        if not (np.isfinite(px).any() and np.isfinite(py).any()):
            continue
        x, y = P["x"].values, P["y"].values
        periodic, cells = _grid_cells(x, y, supercell_length)
        out.append(VectorField(f"atomistic_p{p}", "atomistic", px, py, x, y, "C/m²", periodic, cells, plane=p,
                               description=f"Ti off-centring polarisation, plane {p}"))
    return out


def check_experiment_config(entries: list[dict], samples: dict[str, list[str]]) -> None:
    """Semantic checks of analysis.experiment the schema cannot express (cheap: no file is read).

    samples: {system: [sample names of this run]}. Raises ValueError naming the config key.
    """
    systems = list(samples)
    for i, e in enumerate(entries):
        key = f"analysis.experiment[{i}]"
        system = e.get("system") or systems[0]
        if system not in samples:
            raise ValueError(f"config key '{key}.system': {system!r} is not configured; allowed: {', '.join(systems)}")
        if e["sample"] not in samples[system]:
            raise ValueError(f"config key '{key}.sample': {e['sample']!r} is not a sample of this run; "
                             f"allowed: {', '.join(samples[system])}")
        p = Path(e["path"])
        if p.suffix.lower() not in FORMATS:
            raise ValueError(f"config key '{key}.path': unknown format {p.suffix!r}; allowed: {', '.join(FORMATS)}")
        if not p.exists():
            raise ValueError(f"config key '{key}.path': file not found: {p}")
        if e.get("kind", "com") == "4dstem" and "k_sampling_mrad" not in e:
            raise ValueError(f"config key '{key}.k_sampling_mrad': required for kind 4dstem (detector pixel, mrad)")


def experiment_entries(entries: list[dict], system: str, sample: str, first_system: str) -> list[tuple[str, dict]]:
    """(name, entry) of the experiment files to analyse with one sample."""
    out = []
    for i, e in enumerate(entries):
        if (e.get("system") or first_system) == system and e["sample"] == sample:
            out.append((e.get("name") or f"experiment_{i}", e))
    return out
