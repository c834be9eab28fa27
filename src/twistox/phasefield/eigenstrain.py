"""Eigenstrain of the phase-field slab from the atomistic Fourier fit (strain.zarr).

Each layer takes the fitted in-plane strain (eps_xx, eps_yy, eps_xy) of its own interface plane
(``interface_planes`` = [bottom layer's top plane, top layer's bottom plane]) and applies it with
the weight exp(-|z - z_interface| / decay) in its own cells; out-of-plane components are zero and
the local rotation (not a strain) is not used. Mechanical equilibrium then decides the total strain.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

COMPONENTS = ("eps_xx", "eps_yy", "eps_xy")


def fourier_field(coef: np.ndarray, h: np.ndarray, k: np.ndarray, L: float, x: np.ndarray) -> np.ndarray:
    """Real field (y, x) of f(x, y) = sum c[h, k] exp(2 pi i (h x + k y) / L) at x (= y) points (same unit as L)."""
    ex = np.exp(2j * np.pi * np.outer(h, x) / L)   # (h, x)
    ey = np.exp(2j * np.pi * np.outer(k, x) / L)   # (k, y)
    return np.real(np.einsum("hk,ky,hx->yx", coef, ey, ex))


def check_strain_dataset(ds: xr.Dataset, path: str = "strain.zarr") -> None:
    """Raise ValueError naming what is missing from the strain artifact's contract."""
    if "fourier_coefficients" not in ds:
        raise ValueError(f"{path}: variable 'fourier_coefficients' missing (strain stage contract)")
    fc = ds["fourier_coefficients"]
    if tuple(fc.dims) != ("plane", "component", "h", "k"):
        raise ValueError(f"{path}: fourier_coefficients dims {fc.dims}, expected ('plane', 'component', 'h', 'k')")
    comps = [str(c) for c in fc["component"].values]
    missing = [c for c in COMPONENTS if c not in comps]
    if missing:
        raise ValueError(f"{path}: fourier_coefficients lacks components {missing}; has {comps}")
    for a in ("supercell_length", "interface_planes", "layer_angles_deg"):
        if a not in ds.attrs:
            raise ValueError(f"{path}: attribute '{a}' missing (strain stage contract)")
    planes = [int(p) for p in fc["plane"].values]
    for p in ds.attrs["interface_planes"]:
        if int(p) not in planes:
            raise ValueError(f"{path}: interface plane {p} has no Fourier coefficients (planes: {planes})")


def interface_fields(ds: xr.Dataset, x_A: np.ndarray) -> np.ndarray:
    """(layer, component[xx, yy, xy], y, x) in-plane strain of the two interface planes at x_A (Å)."""
    fc = ds["fourier_coefficients"]
    L = float(ds.attrs["supercell_length"])
    h, k = fc["h"].values, fc["k"].values
    out = np.zeros((2, 3, x_A.size, x_A.size))
    for layer, plane in enumerate(ds.attrs["interface_planes"]):
        for c, name in enumerate(COMPONENTS):
            out[layer, c] = fourier_field(fc.sel(plane=int(plane), component=name).values, h, k, L, x_A)
    return out


def eigenstrain_field(fields: np.ndarray, z_A: np.ndarray, interface_z_A: float, decay_A: float,
                      scale: float = 1.0) -> np.ndarray:
    """(3, 3, nz, n, n) eigenstrain: each layer's interface field times exp(-|z - z_i| / decay)."""
    nz, n = z_A.size, fields.shape[-1]
    out = np.zeros((3, 3, nz, n, n))
    layer = (z_A >= interface_z_A).astype(int)
    w = np.exp(-np.abs(z_A - interface_z_A) / decay_A) * scale
    for m in range(nz):
        f = fields[layer[m]] * w[m]
        out[0, 0, m], out[1, 1, m] = f[0], f[1]
        out[0, 1, m] = out[1, 0, m] = f[2]
    return out
