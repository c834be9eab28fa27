"""Small synthetic upstream artifacts (stem.zarr, phasefield.zarr, strain.zarr) following the contract in
docs/architecture.md + DESIGN.md, with analytic vortex lattices whose defects are known exactly.

On a cell of side L with k = 2π/L, the field s = (sin kx, sin ky) has a source at (0, 0), a sink at
(L/2, L/2) and antivortices at (L/2, 0), (0, L/2). For the toy Σ5 cell these are the moiré coincidence
(AA) and anti-coincidence (AB) sites. Known answers per source:
  dpc        E_proj = 40 V x R(+90°) s  -> CCW vortex at (0,0), CW at (L/2,L/2), antivortices at AB
  phasefield E_proj = 25 V x (sin kx, -sin ky)  -> antivortices (n = -1) at AA, source/sink at AB
  atomistic  P = 0.01 C/m² x R(-90°) s on the TiO2 interface plane -> CW at (0,0), CCW at (L/2,L/2);
             the SrO interface plane is NaN (no Ti) and must be skipped
  strain     eps_xy = 0.01 (cos kx + cos ky): |eps_xy| maxima at the AA sites; interlayer_twist =
             θ + 1° (cos kx + cos ky): node (maximum) at (0, 0), domain (minimum) at (L/2, L/2),
             wall midpoints (saddles) at (L/2, 0), (0, L/2)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from twistox.analysis.dpc import mrad_per_volt
from twistox.core.io import read_dataset, write_dataset

ENERGY = 300e3


def grid(L: float, n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) * L / n


def lattice(L: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = grid(L, n)
    X, Y = np.meshgrid(x, x)
    k = 2 * np.pi / L
    return np.sin(k * X), np.sin(k * Y)


def write_stem(d: Path, L: float, n: int = 32, cross_period: float | None = None) -> None:
    sx, sy = lattice(L, n)
    e = 40.0 * np.stack([-sy, sx])                     # V
    com = -e * mrad_per_volt(ENERGY)                   # mrad: electrons deflect against E
    x = grid(L, n)
    ds = xr.Dataset({"com": (("xy", "y", "x"), com, {"units": "mrad"})},
                    coords={"xy": ["x", "y"], "x": ("x", x, {"units": "Å"}), "y": ("y", x, {"units": "Å"})},
                    attrs={"energy_kev": ENERGY / 1e3, "supercell_length": L})
    if cross_period:
        # [100] cross section: atomic fringes (3.905 Å) + dark lines every cross_period, periodic over 4 periods
        nx = 400
        lat = np.arange(nx) * (4 * cross_period / nx)
        z = np.arange(40) * 0.5
        img = 1 + 0.4 * np.cos(2 * np.pi * lat / 3.905)[None, :] - 0.5 * np.exp(
            -(((lat[None, :] % cross_period) - cross_period / 2) ** 2) / 2.0) * np.ones((z.size, 1))
        ds["cross_section_100"] = xr.DataArray(img, dims=("cs100_y", "cs100_x"),
                                               coords={"cs100_y": z, "cs100_x": lat}, attrs={"units": "1"})
    write_dataset(ds, d / "stem.zarr", stage="stem-synthetic")


def write_phasefield(d: Path, L: float, n: int = 24, nz: int = 4) -> None:
    sx, sy = lattice(L, n)
    x = grid(L, n)
    e_proj = 25.0 * np.stack([sx, -sy])
    P = np.zeros((3, nz, n, n))
    P[0], P[1], P[2] = 0.01 * sx, -0.01 * sy, 0.005
    # E_projected has 2 components, P 3: separate component dims (xy / component)
    ds = xr.Dataset({"E_projected": (("xy", "y", "x"), e_proj, {"units": "V"}),
                     "P": (("component", "z", "y", "x"), P, {"units": "C/m²"})},
                    coords={"xy": ["x", "y"], "component": ["x", "y", "z"], "x": ("x", x, {"units": "Å"}),
                            "y": ("y", x, {"units": "Å"}), "z": ("z", np.arange(nz) * 2.0, {"units": "Å"})},
                    attrs={"supercell_length": L})
    write_dataset(ds, d / "phasefield.zarr", stage="phasefield-synthetic")


def write_strain(d: Path, L: float, interface_planes: list[int], n: int = 20) -> None:
    sx, sy = lattice(L, n)
    x = grid(L, n)
    k = 2 * np.pi / L
    X, Y = np.meshgrid(x, x)
    ib, it = interface_planes
    pol = np.full((2, n, n, 2), np.nan)
    # plane it (top layer's bottom plane) holds the Ti: R(-90°) s = (sy, -sx)
    pol[1, ..., 0], pol[1, ..., 1] = 0.01 * sy, -0.01 * sx
    eps = 0.01 * (np.cos(k * X) + np.cos(k * Y))
    twist = 36.87 + (np.cos(k * X) + np.cos(k * Y))
    ds = xr.Dataset({"polarization": (("plane", "y", "x", "xy"), pol, {"units": "C/m²"}),
                     "eps_xy": (("plane", "y", "x"), np.stack([eps, eps]), {"units": "1"}),
                     "interlayer_twist": (("y", "x"), twist, {"units": "deg"})},
                    coords={"plane": [ib, it], "xy": ["x", "y"], "x": ("x", x, {"units": "Å"}),
                            "y": ("y", x, {"units": "Å"})},
                    attrs={"interface_planes": [ib, it], "supercell_length": L})
    write_dataset(ds, d / "strain.zarr", stage="strain-synthetic")


def write_supercell(d: Path, sample: str, config: dict) -> xr.Dataset:
    from twistox.core.config import resolve_samples
    from twistox.supercell.stage import bilayer_spec
    from twistox.core.io import structure_dataset
    from twistox.supercell.builder import build_bilayer

    csl = resolve_samples(config)["STO"][sample]
    write_dataset(structure_dataset(build_bilayer(csl, bilayer_spec(config, "STO"))), d / "supercell.zarr",
                  stage="supercell")
    return read_dataset(d / "supercell.zarr")


def write_sample(d: Path, sample: str, config: dict, cross_period: float | None = None) -> dict:
    """All synthetic artifacts of one sample under d; returns {L, interface_planes}."""
    d.mkdir(parents=True, exist_ok=True)
    sc = write_supercell(d, sample, config)
    L = float(sc.attrs["supercell_length"])
    write_stem(d, L, cross_period=cross_period)
    write_phasefield(d, L)
    write_strain(d, L, list(sc.attrs["interface_planes"]))
    return {"L": L, "interface_planes": list(sc.attrs["interface_planes"])}
