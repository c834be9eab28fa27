"""Readers of measured microscope data, with their calibrations, through RosettaSciIO.

Formats (by suffix):

- ``.emd`` (Velox / FEI and Berkeley EMD), ``.dm3`` / ``.dm4`` (Gatan), ``.mrc``, ``.hspy``:
  RosettaSciIO (``rsciio``); calibrations from the file's axes.
- ``.h5`` / ``.hdf5``: a HyperSpy HDF5 file through RosettaSciIO when it is one, else a plain
  HDF5 array (h5py; uncalibrated).
- ``.zarr``: an xarray store (calibration from evenly spaced coordinates, e.g. a twistox
  stem.zarr) or a plain Zarr array / group (uncalibrated). RosettaSciIO's ``.zspy`` reader needs
  Zarr 2, so Zarr is read with zarr/xarray directly.
- ``.npy`` / ``.npz``: plain arrays (uncalibrated).

Every reader returns a `Signal`: the data as a NumPy array (files are read whole and closed
before returning), the axes in array order with their scale converted to Å (real space) or
mrad (diffraction), and the scan rotation when the file records one. Malformed, truncated,
wrong-rank or uncalibrated input raises one `DataError` naming the file and the problem.

Conventions: arrays are indexed [y, x] (scan) and [k_y, k_x] (detector); a COM map is
(2, ny, nx) with component 0 = x; a 4D-STEM dataset is (scan_y, scan_x, k_y, k_x).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twistox.analysis.sources import DataError

RSCIIO = {".emd": "rsciio.emd", ".dm3": "rsciio.digitalmicrograph", ".dm4": "rsciio.digitalmicrograph",
          ".mrc": "rsciio.mrc", ".hspy": "rsciio.hspy"}
PLAIN = (".npy", ".npz", ".h5", ".hdf5", ".zarr")
FORMATS = tuple(RSCIIO) + PLAIN

# unit -> factor to Å (real space) or to mrad (angles)
_LENGTH = {"m": 1e10, "mm": 1e7, "µm": 1e4, "um": 1e4, "\u03bcm": 1e4, "nm": 10.0, "Å": 1.0, "A": 1.0, "\u212b": 1.0,
           "angstrom": 1.0, "pm": 1e-2}
_ANGLE = {"rad": 1e3, "mrad": 1.0, "µrad": 1e-3, "urad": 1e-3}
# reciprocal length -> factor to 1/Å
_RECIPROCAL = {"1/nm": 0.1, "nm^-1": 0.1, "nm-1": 0.1, "1 / nm": 0.1, "1/Å": 1.0, "1/A": 1.0, "Å^-1": 1.0,
               "1/m": 1e-10, "1/pm": 100.0}


@dataclass
class Axis:
    """One array axis: name, size, scale and offset in ``units`` ('Å', 'mrad', or the file's own
    when it cannot be converted; '' = uncalibrated)."""

    name: str
    size: int
    scale: float
    offset: float = 0.0
    units: str = ""

    @property
    def calibrated(self) -> bool:
        return self.units in ("Å", "mrad")


@dataclass
class Signal:
    """Data read from a file: array, axes in array order, scan rotation (deg, CCW) if recorded."""

    path: Path
    data: np.ndarray
    axes: list[Axis]
    title: str = ""
    rotation_deg: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def scan_sampling(self, dims: slice | tuple = (-2, -1)) -> float | None:
        """Pixel size (Å) of the two scan axes given (equal within 1 %), None when uncalibrated."""
        ax = [self.axes[i] for i in dims]
        if not all(a.units == "Å" for a in ax):
            return None
        s = [abs(a.scale) for a in ax]
        if abs(s[0] - s[1]) > 0.01 * max(s):
            raise DataError(f"{self.path}: scan pixels are not square ({s[0]:g} x {s[1]:g} Å); resample first")
        return float(s[0])

    def k_sampling_mrad(self) -> float | None:
        """Detector pixel (mrad) of the last two axes of a 4D dataset, None when uncalibrated."""
        ax = self.axes[-2:]
        if not all(a.units == "mrad" for a in ax):
            return None
        s = [abs(a.scale) for a in ax]
        if abs(s[0] - s[1]) > 0.01 * max(s):
            raise DataError(f"{self.path}: detector pixels are not square ({s[0]:g} x {s[1]:g} mrad)")
        return float(s[0])


def wavelength_A(energy_kV: float) -> float:
    """Relativistic electron wavelength (Å) at ``energy_kV`` (kV)."""
    from ase.units import _c, _e, _hplanck, _me

    E = energy_kV * 1e3 * _e
    return _hplanck / np.sqrt(2 * _me * E * (1 + E / (2 * _me * _c**2))) * 1e10


def _axis(name: str, size: int, scale: float, offset: float, units: str, energy_kV: float | None) -> Axis:
    u = (units or "").strip()
    if u in _LENGTH:
        return Axis(name, size, scale * _LENGTH[u], offset * _LENGTH[u], "Å")
    if u in _ANGLE:
        return Axis(name, size, scale * _ANGLE[u], offset * _ANGLE[u], "mrad")
    if u in _RECIPROCAL and energy_kV:
        f = _RECIPROCAL[u] * wavelength_A(energy_kV) * 1e3  # θ = λ k (small angle), mrad
        return Axis(name, size, scale * f, offset * f, "mrad")
    if u in ("", "<undefined>", "pixel", "px", "pixels") or u is None:
        return Axis(name, size, 1.0, 0.0, "")
    return Axis(name, size, float(scale), float(offset), u)


# ------------------------------------------------------------------------------ format back-ends

def _read_rsciio(path: Path, suffix: str, energy_kV: float | None, lazy: bool = False) -> list[Signal]:
    try:
        mod = importlib.import_module(RSCIIO[suffix])
    except ImportError as exc:
        raise DataError(f"{path}: reading {suffix} needs RosettaSciIO (pip install rosettasciio): {exc}") from None
    try:
        dicts = mod.file_reader(str(path), lazy=lazy)
    except Exception as exc:  # rsciio raises many types on malformed / truncated files
        raise DataError(f"{path}: cannot be read as {suffix} ({type(exc).__name__}: {exc})") from None
    out = []
    for d in dicts:
        data = d["data"] if lazy else np.asarray(d["data"])  # lazy: a dask array, shape and dtype only
        axes_d = d.get("axes", [])
        if len(axes_d) != data.ndim:
            raise DataError(f"{path}: {len(axes_d)} axes described for data of shape {data.shape}")
        axes = [_axis(str(a.get("name", i)), int(a.get("size", data.shape[i])), float(a.get("scale", 1.0)),
                      float(a.get("offset", 0.0)), str(a.get("units", "")), energy_kV) for i, a in enumerate(axes_d)]
        md = d.get("metadata", {}) or {}
        title = str(md.get("General", {}).get("title", ""))
        out.append(Signal(path, data, axes, title, _rotation(d.get("original_metadata", {}) or {}), md))
    if not out:
        raise DataError(f"{path}: the file holds no dataset")
    return out


def _rotation(om: dict) -> float | None:
    """Scan rotation (deg, CCW) recorded by the microscope software, if any: Velox
    ``Scan.ScanRotation`` (rad) or DigitalMicrograph ``...DigiScan.Rotation`` (deg)."""
    scan = om.get("Scan") if isinstance(om, dict) else None
    if isinstance(scan, dict) and "ScanRotation" in scan:
        return float(np.degrees(float(scan["ScanRotation"])))
    tags = om.get("ImageList", {}) if isinstance(om, dict) else {}
    stack = [tags]
    while stack:  # DM: the DigiScan group sits deep in the ImageTags tree
        node = stack.pop()
        if isinstance(node, dict):
            if "DigiScan" in node and isinstance(node["DigiScan"], dict) and "Rotation" in node["DigiScan"]:
                return float(node["DigiScan"]["Rotation"])
            stack.extend(node.values())
    return None


def _pick(names: dict[str, tuple], key: str | None, path: Path, rank: int | None) -> str:
    if key is not None:
        if key not in names:
            raise DataError(f"{path}: key {key!r} not found; available: {', '.join(sorted(names)) or 'none'}")
        return key
    cands = {k: s for k, s in names.items() if (len(s) == rank if rank else len(s) >= 2)}
    if not cands:
        raise DataError(f"{path}: no array with {rank or 'at least 2'} dimensions; available: "
                        + (", ".join(f"{k} {tuple(s)}" for k, s in sorted(names.items())) or "none"))
    return max(cands, key=lambda k: int(np.prod(cands[k])))


def _plain_axes(shape) -> list[Axis]:
    return [Axis(f"dim_{i}", int(n), 1.0) for i, n in enumerate(shape)]


class _Header:
    """Shape and dtype of an array not read (lazy reads of plain files)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype, self.ndim = tuple(int(n) for n in shape), np.dtype(dtype), len(shape)


def _read_plain(path: Path, suffix: str, key: str | None, rank: int | None, lazy: bool = False) -> Signal:
    load = (lambda a: _Header(a.shape, a.dtype)) if lazy else np.array
    try:
        if suffix == ".npy":
            a = np.load(path, mmap_mode="r", allow_pickle=False)
            data = load(a)
            del a  # closes the memory map
            return Signal(path, data, _plain_axes(data.shape))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                k = _pick({n: z[n].shape for n in z.files}, key, path, rank)
                data = load(z[k])
            return Signal(path, data, _plain_axes(data.shape), k)
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                found: dict[str, tuple] = {}
                f.visititems(lambda n, o: found.__setitem__(n, o.shape) if isinstance(o, h5py.Dataset) else None)
                k = _pick(found, key.lstrip("/") if key else None, path, rank)
                data = load(f[k])
            return Signal(path, data, _plain_axes(data.shape), k)
        return _read_zarr(path, key, rank, load)
    except DataError:
        raise
    except Exception as exc:  # corrupt / truncated container
        raise DataError(f"{path}: cannot be read as {suffix} ({type(exc).__name__}: {exc})") from None


def _read_zarr(path: Path, key: str | None, rank: int | None, load=np.array) -> Signal:
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        data = load(node)
        return Signal(path, data, _plain_axes(data.shape))
    arrays = {k: a.shape for k, a in node.arrays()}
    k = _pick(arrays, key, path, rank)
    arr = node[k]
    data = load(arr)
    dims = arr.attrs.get("_ARRAY_DIMENSIONS") or getattr(arr.metadata, "dimension_names", None)
    axes = _plain_axes(data.shape)
    for i, d in enumerate(dims or []):  # xarray store: calibration from evenly spaced 1D coordinates
        if d and d in arrays and len(arrays[d]) == 1 and arrays[d][0] == data.shape[i] and data.shape[i] > 1:
            raw = np.asarray(node[d][...])
            if not np.issubdtype(raw.dtype, np.number):
                continue  # labels such as the component coordinate ["x", "y"]
            c = raw.astype(float)
            step = np.diff(c)
            units = str(node[d].attrs.get("units", ""))
            if np.allclose(step, step[0], rtol=1e-6):
                axes[i] = _axis(d, data.shape[i], float(step[0]), float(c[0]), units, None)
    return Signal(path, data, axes, k)


# ------------------------------------------------------------------------------ public readers

def read(path: str | Path, key: str | None = None, rank: int | None = None,
         energy_kV: float | None = None, lazy: bool = False) -> Signal:
    """One dataset of a file (``key``: its name / title / index inside containers; default the
    largest with ``rank`` dimensions). Reciprocal-space axes (1/nm) become mrad with ``energy_kV``.
    lazy: read only shape, dtype and calibration (``data`` then has .shape/.dtype/.ndim only)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if suffix not in FORMATS:
        raise DataError(f"{path}: unknown format {suffix!r}; allowed: {', '.join(FORMATS)}")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    if suffix in (".h5", ".hdf5") and _is_hyperspy(path):
        suffix = ".hspy"
    if suffix not in RSCIIO:
        return _read_plain(path, suffix, key, rank, lazy)
    sigs = _read_rsciio(path, suffix, energy_kV, lazy)
    if key is not None:
        hit = [s for i, s in enumerate(sigs) if key in (s.title, str(i))]
        if not hit:
            raise DataError(f"{path}: dataset {key!r} not found; available: "
                            + ", ".join(f"{i}: {s.title or '(untitled)'} {s.data.shape}" for i, s in enumerate(sigs)))
        return hit[0]
    cands = [s for s in sigs if (s.data.ndim == rank if rank else s.data.ndim >= 2)]
    if not cands:
        raise DataError(f"{path}: no dataset with {rank or 'at least 2'} dimensions; found "
                        + ", ".join(f"{s.title or '(untitled)'} {s.data.shape}" for s in sigs))
    return max(cands, key=lambda s: s.data.size)


def _is_hyperspy(path: Path) -> bool:
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "file_format" in f.attrs and "hyperspy" in str(f.attrs["file_format"]).lower()
    except Exception:
        return False  # _read_plain reports unreadable files


def _check_values(a: np.ndarray, path: Path, what: str) -> None:
    if not np.issubdtype(a.dtype, np.number):
        raise DataError(f"{path}: {what} has dtype {a.dtype}; a numeric array is needed")
    bad = ~np.isfinite(a)
    if bad.any():
        raise DataError(f"{path}: {what} has {int(bad.sum())} of {a.size} non-finite (NaN/inf) values; "
                        "mask or interpolate them before the analysis")
    if a.size and np.ptp(a) == 0:
        raise DataError(f"{path}: {what} is constant; nothing to analyse")


def read_image(path: str | Path, key: str | None = None) -> tuple[np.ndarray, float | None]:
    """A 2D image (e.g. HAADF) as (image [y, x] float64, pixel size in Å or None when the file has
    no calibration). Raises DataError for other ranks, non-finite or constant images."""
    sig = read(path, key, rank=2)
    if sig.data.ndim != 2:
        raise DataError(f"{sig.path}: an image must be 2D (y, x); got shape {sig.data.shape}")
    if min(sig.data.shape) < 4:
        raise DataError(f"{sig.path}: image {sig.data.shape} too small; need at least 4 x 4 pixels")
    if not np.issubdtype(sig.data.dtype, np.number):
        raise DataError(f"{sig.path}: image has dtype {sig.data.dtype}; a numeric array is needed")
    img = np.asarray(sig.data, dtype=float)
    _check_values(img, sig.path, "image")
    return img, sig.scan_sampling((0, 1))


def _com_layout(shape: tuple, path: Path, layout: str) -> str:
    if layout not in ("auto", "xy_first", "xy_last"):
        raise DataError(f"layout {layout!r} not allowed; allowed: auto, xy_first, xy_last")
    if len(shape) != 3:
        raise DataError(f"{path}: a COM map must be 3D, (2, ny, nx) or (ny, nx, 2); got shape {shape}")
    if layout == "auto":
        layout = "xy_first" if shape[0] == 2 else ("xy_last" if shape[-1] == 2 else "")
        if not layout:
            raise DataError(f"{path}: a COM map needs a component axis of length 2 first or last; got shape {shape}")
    if (shape[0] if layout == "xy_first" else shape[-1]) != 2:
        raise DataError(f"{path}: layout {layout} expects 2 components, got shape {shape}")
    scan = shape[1:] if layout == "xy_first" else shape[:2]
    if min(scan) < 4:
        raise DataError(f"{path}: COM map {scan} too small; need at least 4 x 4 scan points")
    return layout


def read_com(path: str | Path, key: str | None = None, layout: str = "auto", lazy: bool = False) -> Signal:
    """A COM map as a Signal with data (2, ny, nx) float, component 0 = x (mrad); axes in that order.

    layout: 'auto' (the axis of length 2, first if both), 'xy_first' (2, ny, nx), 'xy_last' (ny, nx, 2)."""
    sig = read(path, key, rank=3, lazy=lazy)
    layout = _com_layout(tuple(sig.data.shape), sig.path, layout)
    axes = list(sig.axes) if layout == "xy_first" else [sig.axes[-1]] + list(sig.axes[:-1])
    if lazy:
        shape = tuple(sig.data.shape)
        data = _Header(shape if layout == "xy_first" else (2,) + shape[:2], sig.data.dtype)
        return Signal(sig.path, data, axes, sig.title, sig.rotation_deg, sig.metadata)
    arr = np.asarray(sig.data, dtype=float) if np.issubdtype(sig.data.dtype, np.number) else sig.data
    _check_values(arr, sig.path, "COM map")
    if layout == "xy_last":
        arr = np.moveaxis(arr, -1, 0)
    return Signal(sig.path, np.ascontiguousarray(arr), axes, sig.title, sig.rotation_deg, sig.metadata)


def read_4dstem(path: str | Path, key: str | None = None, energy_kV: float | None = None,
                lazy: bool = False) -> Signal:
    """A 4D-STEM dataset (scan_y, scan_x, k_y, k_x), calibrated where the file says so."""
    sig = read(path, key, rank=4, energy_kV=energy_kV, lazy=lazy)
    shape = tuple(sig.data.shape)
    if len(shape) != 4:
        raise DataError(f"{sig.path}: 4D-STEM data must be 4D (scan_y, scan_x, k_y, k_x); got shape {shape}")
    if min(shape[:2]) < 4 or min(shape[2:]) < 2:
        raise DataError(f"{sig.path}: 4D-STEM shape {shape} too small (scan >= 4 x 4, detector >= 2 x 2)")
    if not np.issubdtype(sig.data.dtype, np.number):
        raise DataError(f"{sig.path}: 4D-STEM data has dtype {sig.data.dtype}; a numeric array is needed")
    return sig


def calibration(sig: Signal, entry: dict, key: str, what: str, from_file: float | None) -> float:
    """The calibration to use: the file's, or the config's where the file has none; both given and
    different by > 1 %: DataError (which one is right cannot be guessed)."""
    cfg = entry.get(what)
    if from_file is not None and cfg is not None and abs(from_file - cfg) > 0.01 * abs(from_file):
        raise DataError(f"{sig.path}: the file's {what} {from_file:g} differs from config key '{key}.{what}' "
                        f"= {cfg:g}; remove the config value to use the file's, or correct it")
    value = from_file if from_file is not None else cfg
    if value is None:
        raise DataError(f"{sig.path}: the file has no {what} calibration; set config key '{key}.{what}'")
    return float(value)


def probe_entry(entry: dict, key: str = "analysis.experiment[0]") -> None:
    """Read one analysis.experiment file and check rank, shape, values and calibration (at workflow
    start, before any job); raise DataError naming the file and the problem."""
    import gc

    kind = entry.get("kind", "com")
    try:  # lazy: headers and calibrations only, so a many-GB dataset costs nothing at start-up
        if kind == "4dstem":
            sig = read_4dstem(entry["path"], entry.get("key"), entry.get("energy_kV"), lazy=True)
            calibration(sig, entry, key, "k_sampling_mrad", sig.k_sampling_mrad())
            calibration(sig, entry, key, "pixel_size", sig.scan_sampling((0, 1)))
        else:
            sig = read_com(entry["path"], entry.get("key"), entry.get("layout", "auto"), lazy=True)
            calibration(sig, entry, key, "pixel_size", sig.scan_sampling((1, 2)))
    except DataError as exc:
        raise DataError(f"config key '{key}.path': {str(exc).removeprefix(str(entry['path']) + ': ')}") from None
    finally:
        sig = None
        gc.collect()  # lazily opened HDF5 files (rsciio) close when their last reference goes
