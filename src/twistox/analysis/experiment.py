"""Measured vector-field sources for the DPC / topology analysis.

A microscope's COM map (or a 4D-STEM dataset, reduced to COM) becomes a `VectorField`
(twistox.analysis.sources, where the twistox-artifact sources live), so it goes through the
same analysis as the simulated sources.

Files are read by `twistox.analysis.readers` (RosettaSciIO for Velox/Berkeley EMD, DM3/DM4,
MRC, HyperSpy HDF5; h5py / zarr / NumPy for plain arrays), with their calibrations. Each
reader checks rank, shape, finiteness and that the data are not constant, and says what is wrong.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np

from twistox.analysis import dpc, readers
# DataError, VectorField and the twistox-artifact sources live in analysis/sources.py; re-exported here
from twistox.analysis.sources import (DataError, VectorField, atomistic_fields, dpc_field,  # noqa: F401
                                      phasefield_field)

#: analysis.experiment kinds this stage reads as vector fields; `haadf` images go to the image_inference stage.
FIELD_KINDS = ("com", "4dstem")
#: extra formats of kind haadf (read by twistox.imaging.io)
IMAGE_ONLY_FORMATS = (".tif", ".tiff")
FORMATS = readers.FORMATS


# --------------------------------------------------------------------------- readers (twistox.analysis.readers)

def load_com(path: str | Path, key: str | None = None, layout: str = "auto") -> np.ndarray:
    """A measured COM map as (2, ny, nx) float, [0] = x. layout: 'auto', 'xy_first' (2, ny, nx)
    or 'xy_last' (ny, nx, 2); 'auto' takes the axis of length 2 (first if both are)."""
    return readers.read_com(path, key, layout).data


def com_from_4dstem_file(path: str | Path, k_sampling_mrad: float, key: str | None = None,
                         center: tuple[float, float] | None = None, device: str = "cpu", **com_settings) -> np.ndarray:
    """COM (2, scan_y, scan_x; mrad) from a 4D-STEM file (scan_y, scan_x, k_y, k_x); ``com_settings``:
    mode / mask_factor / disc of :func:`twistox.analysis.dpc.com_from_4dstem`."""
    return _com_of(readers.read_4dstem(path, key), k_sampling_mrad, center, device, **com_settings)


def _com_of(sig: readers.Signal, k_sampling_mrad: float, center, device: str, **com_settings) -> np.ndarray:
    try:
        com = dpc.com_from_4dstem(sig.data, k_sampling_mrad, center=center, device=device, **com_settings)
    except ValueError as exc:
        raise DataError(f"{sig.path}: {exc}") from None
    readers._check_values(com, sig.path, "COM computed from the 4D-STEM data")
    return com


def experiment_field(entry: dict, supercell_length: float, device: str = "cpu", name: str = "experiment",
                     key: str = "analysis.experiment[0]") -> VectorField:
    """Measured COM / 4D-STEM file (one config entry of analysis.experiment) -> E_proj VectorField (V).

    Calibrations (scan pixel size in Å, detector pixel in mrad) come from the file where it has
    them, else from the entry; both given and different: DataError. The COM is rotated by the
    entry's rotation_deg (scan vs detector, CCW); a file that records a scan rotation needs
    rotation_deg set explicitly (its sign convention differs between vendors). Then the
    background is removed and the COM converted with the beam energy; the grid is open.
    """
    path = Path(entry["path"])
    kind = entry.get("kind", "com")
    if kind == "4dstem":
        sig = readers.read_4dstem(path, entry.get("key"), entry.get("energy_kV"))
        k = readers.calibration(sig, entry, key, "k_sampling_mrad", sig.k_sampling_mrad())
        ps = readers.calibration(sig, entry, key, "pixel_size", sig.scan_sampling((0, 1)))
        com = _com_of(sig, k, None, device, **{k_[4:]: entry[k_] for k_ in ("com_mode", "com_mask_factor", "com_disc")
                                                  if k_ in entry})
    else:
        sig = readers.read_com(path, entry.get("key"), entry.get("layout", "auto"))
        ps = readers.calibration(sig, entry, key, "pixel_size", sig.scan_sampling((1, 2)))
        com = sig.data
    rot = entry.get("rotation_deg")
    if rot is None:
        if sig.rotation_deg not in (None, 0.0):
            raise DataError(f"{path}: the file records a scan rotation of {sig.rotation_deg:g} deg; set config key "
                            f"'{key}.rotation_deg' (scan-to-detector rotation applied to the COM, deg CCW)")
        rot = 0.0
    com = dpc.rotate_vectors(com, rot)
    com = dpc.remove_background(com, entry.get("background", "mean"))
    e = dpc.com_to_projected_field(com, entry.get("energy_kV", 300.0) * 1e3)
    ny, nx = com.shape[1:]
    x, y = np.arange(nx) * ps, np.arange(ny) * ps
    return VectorField(name, "experiment", e[0], e[1], x, y, "V", False, nx * ny * ps**2 / supercell_length**2,
                       description=f"measured {kind} from {path.name}", extra={"com": (com, "mrad")})


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
        formats = FORMATS + IMAGE_ONLY_FORMATS if e.get("kind") == "haadf" else FORMATS
        if p.suffix.lower() not in formats:
            raise ValueError(f"config key '{key}.path': unknown format {p.suffix!r}; allowed: {', '.join(formats)}")
        if not p.exists():
            raise ValueError(f"config key '{key}.path': file not found: {p}")




def experiment_entries(entries: list[dict], system: str, sample: str, first_system: str,
                       kinds: tuple[str, ...] = FIELD_KINDS) -> list[tuple[str, dict]]:
    """(name, entry) of the experiment files of one sample whose kind (default com) is in ``kinds``;
    names keep the entry's index in the config list, whatever the filter."""
    out = []
    for i, e in enumerate(entries):
        if (e.get("system") or first_system) == system and e["sample"] == sample and e.get("kind", "com") in kinds:
            out.append((e.get("name") or f"experiment_{i}", e))
    return out
