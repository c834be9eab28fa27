"""Vector-field sources of the topology analysis from twistox artifacts.

Every source becomes a `VectorField` (components x, y on a regular [y, x] grid in Å):
``dpc`` (E_proj from the simulated 4D-STEM COM of stem.zarr), ``phasefield`` (E_projected of
phasefield.zarr) and ``atomistic`` (B-site off-centring P of strain.zarr, per interface plane).
Measured data (microscope COM / 4D-STEM files) are read in `twistox.analysis.experiment`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from twistox.analysis import dpc


class DataError(ValueError):
    """Input data that cannot be analysed; the message names the file and the problem."""


@dataclass
class VectorField:
    """A 2D vector map for the topology analysis.

    vx, vy: (ny, nx) arrays indexed [y, x]; x, y: coords (Å); units of the components;
    periodic: the grid covers whole supercells with periodic boundaries; n_cells: supercells covered.
    extra: further named maps (e.g. the COM in mrad) written next to the field, {name: (array, units)}.
    uncertainty: per-point standard error of the components (same units and shape as vx), when the
    artifact provides one (e.g. MD block averages); it sets the noise floor (twistox.analysis.noise).
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
    uncertainty: np.ndarray | None = None

    @property
    def magnitude(self) -> np.ndarray:
        return np.hypot(self.vx, self.vy)

    @property
    def n_nonfinite(self) -> int:
        """Grid points where a component is NaN or inf (their plaquettes are masked, never zero-filled)."""
        return int((~(np.isfinite(self.vx) & np.isfinite(self.vy))).sum())





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
    Planes whose map is entirely NaN (no B site in an AO plane) are skipped. An optional
    `polarization_uncertainty` (same dims; C/m², e.g. the MD block-average standard error) is kept."""
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
        unc = None
        if "polarization_uncertainty" in strain:
            ux, uy, _ = _components(strain["polarization_uncertainty"].sel(plane=p),
                                    f"strain.zarr polarization_uncertainty plane {p}")
            unc = np.hypot(ux, uy) / np.sqrt(2)        # per-component standard error
        out.append(VectorField(f"atomistic_p{p}", "atomistic", px, py, x, y, "C/m²", periodic, cells, plane=p,
                               description=f"B-site off-centring polarisation, plane {p}", uncertainty=unc))
    return out


