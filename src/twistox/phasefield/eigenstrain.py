"""Eigenstrain of the phase-field slab through the stack: per-plane strain of the relaxed stack, z-profile.

Source ``strain`` reads ``eps_global`` of strain.zarr: the in-plane strain (components xx, yy, xy,
tensor shear) of every plane of the relaxed stack in the global supercell frame, dims
(component, plane, y, x), with the plane heights ``plane_z`` (Å). Each plane is reduced to its
truncated Fourier series (|h|, |k| <= N_sc supercell harmonics, N_sc = round(N L / lambda) for
``eigenstrain.fourier_order`` N moiré harmonics, as the strain stage does), so the slab grid may differ
from the strain grid. The z-profile maps a slab cell at distance d from the interface face, in its
own layer, to coefficients c(d) (``eigenstrain.profile``):

- ``fitted`` (default): c(d) interpolated linearly between the layer's planes (the interfacial plane's
  value down to the interface, d <= d_1); beyond the last plane c(d) = c_last exp(-(d - d_last)/l),
  with l the e-folding length fitted (weighted log-linear least squares) to the amplitude
  A(d) = sqrt(sum over components and (h, k) != 0 of |c|^2) of the layer's planes (l = inf if A does
  not decay). The fit (l, A0, planes, rms) goes to the artifact attrs.
- ``exponential``: c(d) = c_interface exp(-d / decay_A) (the old assumed decay; explicit option).
- ``elastic``: each harmonic decays as exp(-|q| d), q = 2 pi (h, k) / L: the stress field of a periodic
  dislocation grid in an elastic half-space (Frank-Bilby / van der Merwe); the mean (q = 0) is uniform.

Out-of-plane components are zero; mechanical equilibrium decides the total strain. Layer 0 (bottom)
fills z below the interface face, layer 1 above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

COMPONENTS = ("xx", "yy", "xy")


def fourier_field(coef: np.ndarray, h: np.ndarray, k: np.ndarray, L: float, x: np.ndarray) -> np.ndarray:
    """Real field (y, x) of f(x, y) = sum c[h, k] exp(2 pi i (h x + k y) / L) at x (= y) points (same unit as L)."""
    ex = np.exp(2j * np.pi * np.outer(h, x) / L)   # (h, x)
    ey = np.exp(2j * np.pi * np.outer(k, x) / L)   # (k, y)
    return np.real(np.einsum("...hk,ky,hx->...yx", coef, ey, ex))


@dataclass
class StackStrain:
    """Fourier coefficients of the global-frame in-plane strain per plane (the eigenstrain's data)."""

    coef: np.ndarray          # (plane, 3 [xx, yy, xy], 2N+1 [h], 2N+1 [k]) complex
    d: np.ndarray             # (plane,) distance from the interface face (Å), >= 0
    layer: np.ndarray         # (plane,) 0 bottom, 1 top
    L: float                  # supercell side (Å)
    info: dict = field(default_factory=dict)

    @property
    def order(self) -> int:
        return (self.coef.shape[-1] - 1) // 2


def _plane_dim(da: xr.DataArray, path: str) -> str:
    dims = [d for d in da.dims if d not in ("component", "y", "x")]
    if len(dims) != 1 or set(da.dims) != {"component", dims[0], "y", "x"}:
        raise ValueError(f"{path}: eps_global dims {da.dims}, expected ('component', 'plane', 'y', 'x')")
    return dims[0]


def check_strain_dataset(ds: xr.Dataset, path: str = "strain.zarr") -> None:
    """Raise ValueError naming what is missing from (or not finite in) the strain artifact's contract."""
    for a in ("supercell_length", "layer_angles_deg"):
        if a not in ds.attrs:
            raise ValueError(f"{path}: attribute '{a}' missing (strain stage contract)")
    if "eps_global" not in ds:
        raise ValueError(f"{path}: variable 'eps_global' (component, plane, y, x; global-frame strain of every "
                         "plane) missing (strain stage contract); the phase field needs it")
    da = ds["eps_global"]
    pdim = _plane_dim(da, path)
    comps = [str(c) for c in da["component"].values]
    if [c for c in COMPONENTS if c not in comps]:
        raise ValueError(f"{path}: eps_global components {comps}, expected {list(COMPONENTS)}")
    if "plane_z" not in da.coords or da["plane_z"].dims != (pdim,):
        raise ValueError(f"{path}: coordinate 'plane_z' (Å) along '{pdim}' missing (strain stage contract)")
    v = da.transpose("component", pdim, "y", "x").values
    bad = ~np.isfinite(v)
    if bad.any():
        per = bad.any(axis=(0, 2, 3))
        planes = [int(p) for p in np.asarray(da[pdim].values)[per]]
        raise ValueError(f"{path}: eps_global has {int(bad.sum())} non-finite values on planes {planes}; "
                         "the phase-field eigenstrain needs finite strain on every plane (fix the strain stage "
                         "input, e.g. a plane without atoms)")
    if not np.isfinite(np.asarray(da["plane_z"].values, float)).all():
        raise ValueError(f"{path}: plane_z has non-finite values")


def _layers(ds: xr.Dataset, pdim: str, z: np.ndarray) -> np.ndarray:
    da = ds["eps_global"]
    if "plane_layer" in da.coords and da["plane_layer"].dims == (pdim,):
        return np.asarray(da["plane_layer"].values, int)
    zi = float(ds.attrs.get("interface_z", np.nan))
    if not np.isfinite(zi):
        raise ValueError("strain.zarr: neither 'plane_layer' nor attr 'interface_z' tells the layer of each plane")
    return (z > zi).astype(int)


PLANE_KINDS = {"AO": 0, "BO2": 1}  # strain.zarr coordinate plane_kind


def stack_strain(ds: xr.Dataset, moire_order: int, plane_kinds=tuple(PLANE_KINDS)) -> StackStrain:
    """Per-plane Fourier coefficients of eps_global, truncated at N_sc supercell harmonics.

    ``plane_kinds``: the planes used (``phasefield.eigenstrain.plane_kinds``): AO, BO2 or both. The B-cage
    (BO2) planes carry the elastic shear of the network; at a reconstructed SrO-TiO2 interface the AO plane's
    Sr-O vectors can also record local rearrangements (|eps| ~ 0.5 at a few spots in the Sigma145 demo)."""
    from twistox.strain.fourier import fourier_fit, supercell_order

    check_strain_dataset(ds)
    da = ds["eps_global"]
    pdim = _plane_dim(da, "strain.zarr")
    kinds = list(plane_kinds)
    bad = [k for k in kinds if k not in PLANE_KINDS]
    if bad or not kinds:
        raise ValueError(f"phasefield.eigenstrain.plane_kinds: {kinds}; allowed: a non-empty subset of "
                         f"{list(PLANE_KINDS)}")
    z = np.asarray(da["plane_z"].values, float)
    layer = _layers(ds, pdim, z)
    if set(layer.tolist()) != {0, 1}:
        raise ValueError(f"strain.zarr: eps_global must hold planes of both layers (layers found: {sorted(set(layer))})")
    z_if = 0.5 * (z[layer == 0].max() + z[layer == 1].min())  # the interface face of the whole stack
    keep = np.arange(len(z))
    if set(kinds) != set(PLANE_KINDS):
        if "plane_kind" not in da.coords:
            raise ValueError("phasefield.eigenstrain.plane_kinds: strain.zarr has no plane_kind coordinate; "
                             "allowed here: [AO, BO2] (all planes)")
        keep = np.flatnonzero(np.isin(np.asarray(da["plane_kind"].values, int), [PLANE_KINDS[k] for k in kinds]))
        if set(layer[keep].tolist()) != {0, 1}:
            raise ValueError(f"phasefield.eigenstrain.plane_kinds: {kinds} leaves planes of layers "
                             f"{sorted(set(layer[keep].tolist()))} only; allowed: kinds present in both layers")
    v = da.isel({pdim: keep}).sel(component=list(COMPONENTS)).transpose(pdim, "component", "y", "x").values
    z, layer = z[keep], layer[keep]
    L = float(ds.attrs["supercell_length"])
    lam = float(ds.attrs.get("moire_period", np.nan))
    N = supercell_order(moire_order, L, lam) if np.isfinite(lam) and lam > 0 else int(moire_order)
    if v.shape[-1] <= 2 * N:
        N = (v.shape[-1] - 1) // 2  # the strain grid resolves no more harmonics than this
    coef = np.stack([[fourier_fit(v[p, c], N) for c in range(3)] for p in range(len(z))])
    return StackStrain(coef, np.abs(z - z_if), layer, L,
                       {"fourier_order_supercell": N, "moire_order": int(moire_order), "n_planes": int(len(z)),
                        "interface_z_stack": float(z_if), "eigenstrain_plane_kinds": kinds})


def fit_decay(d: np.ndarray, amp: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares of ln A = ln A0 - d / l (weights A^2): (l [Å], A0, rms of ln residual).

    l = inf when A does not decrease with d (or fewer than two planes carry signal)."""
    ok = amp > 1e-12 * max(float(amp.max()), 1e-300)
    if ok.sum() < 2:
        return float("inf"), float(amp.max()) if amp.size else 0.0, float("nan")
    x, y, w = d[ok], np.log(amp[ok]), amp[ok] ** 2
    W = w.sum()
    xm, ym = (w * x).sum() / W, (w * y).sum() / W
    sxx = (w * (x - xm) ** 2).sum()
    slope = (w * (x - xm) * (y - ym)).sum() / sxx if sxx > 0 else 0.0
    a0 = float(np.exp(ym - slope * xm))
    rms = float(np.sqrt((w * (y - (ym + slope * (x - xm))) ** 2).sum() / W))
    return (float(-1.0 / slope) if slope < 0 else float("inf")), a0, rms


def _amplitude(coef: np.ndarray) -> np.ndarray:
    """sqrt(sum |c|^2) over components and harmonics except the mean, per plane."""
    N = (coef.shape[-1] - 1) // 2
    c = coef.copy()
    c[..., N, N] = 0.0
    return np.sqrt((np.abs(c) ** 2).sum(axis=(-3, -2, -1)))


def profile_coefficients(st: StackStrain, d_cells: np.ndarray, layer_cells: np.ndarray, profile: str,
                         decay_A: float) -> tuple[np.ndarray, dict]:
    """(cell, 3, 2N+1, 2N+1) coefficients at slab cells (distance d_cells Å from the interface, layer_cells)."""
    N = st.order
    out = np.zeros((d_cells.size, 3, 2 * N + 1, 2 * N + 1), complex)
    fit: dict = {"eigenstrain_profile": profile}
    hs = np.arange(-N, N + 1)
    q = 2 * np.pi * np.hypot(hs[:, None], hs[None, :]) / st.L  # 1/Å, [h, k]
    for lay in (0, 1):
        sel = st.layer == lay
        order = np.argsort(st.d[sel])
        d, c = st.d[sel][order], st.coef[sel][order]
        cells = np.flatnonzero(layer_cells == lay)
        dc = d_cells[cells]
        if profile == "exponential":
            out[cells] = c[0][None] * np.exp(-dc / decay_A)[:, None, None, None]
        elif profile == "elastic":
            out[cells] = c[0][None] * np.exp(-q[None, None] * dc[:, None, None, None])
        elif profile == "fitted":
            if d.size < 2:
                raise ValueError(f"phasefield.eigenstrain.profile: 'fitted' needs strain on >= 2 planes of layer {lay} "
                                 f"(strain.zarr has {d.size}); use 'exponential' or 'elastic'")
            ell, a0, rms = fit_decay(d, _amplitude(c))
            fit.update({f"eigenstrain_decay_fit_A_layer{lay}": ell, f"eigenstrain_amplitude0_layer{lay}": a0,
                        f"eigenstrain_fit_rms_log_layer{lay}": rms, f"eigenstrain_planes_layer{lay}": int(d.size),
                        f"eigenstrain_plane_d_range_A_layer{lay}": [float(d[0]), float(d[-1])]})
            flat = c.reshape(d.size, -1)
            inside = np.clip(dc, d[0], d[-1])
            vals = np.stack([np.interp(inside, d, flat[:, j].real) + 1j * np.interp(inside, d, flat[:, j].imag)
                             for j in range(flat.shape[1])], axis=1)
            tail = np.exp(-np.clip(dc - d[-1], 0.0, None) / ell) if np.isfinite(ell) else np.ones_like(dc)
            out[cells] = (vals * tail[:, None]).reshape((cells.size,) + c.shape[1:])
        else:
            raise ValueError(f"phasefield.eigenstrain.profile: {profile!r}; allowed: fitted, exponential, elastic")
    return out, fit


def eigenstrain_tensor(coef_cells: np.ndarray, L: float, x_A: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """(3, 3, nz, n, n) symmetric eigenstrain from per-cell coefficients (nz, 3 [xx, yy, xy], h, k)."""
    N = (coef_cells.shape[-1] - 1) // 2
    hs = np.arange(-N, N + 1)
    f = fourier_field(coef_cells, hs, hs, L, x_A) * scale  # (nz, 3, n, n)
    nz, n = f.shape[0], x_A.size
    out = np.zeros((3, 3, nz, n, n))
    out[0, 0], out[1, 1] = f[:, 0], f[:, 1]
    out[0, 1] = out[1, 0] = f[:, 2]
    return out
