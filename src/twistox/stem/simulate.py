"""STEM, cross-section STEM and 4D-STEM (centre of mass) simulation with abTEM 1.0.

Physics set-up follows the paper's Methods ("Simulated TEM"): Lobato potentials, infinite
projection, 2 Å slices; 300 keV; plan view with a 30 mrad probe, Cs = 0.159 µm and one
flexible annular detector (1 mrad bins) from which HAADF / LAADF / interface ranges are
integrated; 4D-STEM with a 1 mrad probe and a pixelated detector reduced to COM maps.

Conventions: lengths Å, angles mrad, energies eV. abTEM arrays are indexed [x, y]; everything
returned here is xarray with dims (..., y, x). Focus: the config uses the microscopist's
defocus (negative = focused below the entrance surface); abTEM's ``defocus`` is the opposite
(positive = focused that far below the potential's entrance plane), verified numerically.
abTEM is imported lazily so the config checks stay cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

ANTIALIAS_CUTOFF = 2.0 / 3.0  # abTEM's default antialias aperture (fraction of the Nyquist frequency)
FFT_PRIMES = (2, 3, 5, 7)

# physical constants (CODATA) for the relativistic electron wavelength
_H, _M0, _E, _C = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0


def wavelength(energy: float) -> float:
    """Relativistic electron wavelength (Å) at ``energy`` (eV)."""
    return _H / math.sqrt(2 * _M0 * _E * energy * (1 + _E * energy / (2 * _M0 * _C**2))) * 1e10


def max_scattering_angle(sampling: float, energy: float, cutoff: float = ANTIALIAS_CUTOFF) -> float:
    """Largest scattering angle (mrad) a grid of ``sampling`` (Å) resolves after the antialias aperture."""
    return cutoff * wavelength(energy) / (2.0 * sampling) * 1e3


def max_sampling_for_angle(angle: float, energy: float, cutoff: float = ANTIALIAS_CUTOFF) -> float:
    """Coarsest sampling (Å) that still resolves ``angle`` (mrad)."""
    return cutoff * wavelength(energy) / (2.0 * angle * 1e-3)


def fft_friendly(n: int, primes: tuple[int, ...] = FFT_PRIMES) -> int:
    """Smallest integer >= n whose prime factors are all in ``primes`` (fast FFT sizes)."""
    n = max(1, int(n))
    while True:
        m = n
        for p in primes:
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def grid_points(extent: float, max_sampling: float) -> int:
    """FFT-friendly number of grid points with sampling <= ``max_sampling`` over ``extent`` (Å)."""
    return fft_friendly(math.ceil(extent / max_sampling - 1e-9))


# ---------------------------------------------------------------------------------------------
# configuration checks (cheap, no abTEM import)


def _err(msg: str):
    from twistox.core.config import ConfigError

    return ConfigError(msg)


def _check_reach(key: str, sampling: float, outer: float, outer_key: str, energy: float) -> None:
    reach = max_scattering_angle(sampling, energy)
    if outer > reach + 1e-9:
        need = max_sampling_for_angle(outer, energy)
        raise _err(
            f"config key 'stem.{key}': potential sampling {sampling} Å resolves scattering only up to "
            f"{reach:.1f} mrad at {energy / 1e3:g} keV (abTEM's 2/3 antialias aperture), below "
            f"'stem.{outer_key}' = {outer:g} mrad; allowed: stem.{key} <= {need:.4f} Å, "
            f"or stem.{outer_key} <= {reach:.1f} mrad")


def check_config(cfg: dict) -> None:
    """Semantic checks of the (schema-validated) ``stem`` section; raise ConfigError naming the key."""
    energy = float(cfg["energy_kev"]) * 1e3
    structs = cfg["structures"]
    if len(set(structs)) != len(structs):
        raise _err(f"config key 'stem.structures': {structs} has duplicates; allowed: relaxed, rigid (each once)")
    pv = cfg["planview"]
    if pv["enabled"]:
        outer = float(pv["detector"]["outer_mrad"])
        for name, (lo, hi) in pv["ranges"].items():
            if not (0 <= lo < hi <= outer):
                raise _err(f"config key 'stem.planview.ranges.{name}': [{lo}, {hi}] mrad must satisfy "
                           f"0 <= inner < outer <= stem.planview.detector.outer_mrad = {outer:g}")
        _check_reach("planview.potential_sampling", pv["potential_sampling"], outer,
                     "planview.detector.outer_mrad", energy)
    cs = cfg["cross_section"]
    if cs["enabled"]:
        lo, hi = cs["detector_mrad"]
        if not 0 <= lo < hi:
            raise _err(f"config key 'stem.cross_section.detector_mrad': [{lo}, {hi}]; allowed: 0 <= inner < outer")
        _check_reach("cross_section.potential_sampling", cs["potential_sampling"], hi,
                     "cross_section.detector_mrad[1]", energy)
    fd = cfg["fourd"]
    if fd["enabled"] and fd["max_angle_mrad"] is not None:
        _check_reach("fourd.potential_sampling", fd["potential_sampling"], fd["max_angle_mrad"],
                     "fourd.max_angle_mrad", energy)
        if fd["max_angle_mrad"] <= fd["semiangle_mrad"]:
            raise _err("config key 'stem.fourd.max_angle_mrad': must exceed stem.fourd.semiangle_mrad "
                       "so the bright-field disc lies on the detector")


# ---------------------------------------------------------------------------------------------
# abTEM set-up


def abtem_device(preference: str = "auto") -> str:
    """abTEM device: 'gpu' when CuPy sees a CUDA device (and allowed), else 'cpu'."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: {preference!r} is not allowed; allowed: auto, cpu, cuda")
    if preference == "cpu":
        return "cpu"
    try:
        import cupy

        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, or no device
        has_gpu = False
    if preference == "cuda" and not has_gpu:
        raise RuntimeError("device: 'cuda' requested but CuPy finds no CUDA device (install cupy-cuda12x)")
    return "gpu" if has_gpu else "cpu"


def configure_abtem(device: str = "cpu", precision: str = "float32", threads: int = 1) -> None:
    """Global abTEM settings: device, FFT backend (FFTW on CPU), precision, threads."""
    import abtem

    settings = {"device": device, "precision": precision, "fft": "fftw" if device == "cpu" else "fftw",
                "fftw.threads": int(threads), "mkl.threads": int(threads),
                "diagnostics.progress_bar": False}
    abtem.config.set(settings)


# ---------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class ProbeSettings:
    """Probe and multislice settings of one simulation (Å, mrad, eV)."""

    energy: float = 300e3
    semiangle: float = 30.0
    cs: float = 0.0  # C30 (Å)
    potential_sampling: float = 0.03  # upper bound; the grid is FFT-friendly and at least this fine
    scan_sampling: float = 0.24
    slice_thickness: float = 2.0
    parametrization: str = "lobato"
    supersampling: int = 1  # potential built n x finer, then Fourier-cropped (see _potential)
    device: str = "cpu"
    max_batch: int | str = "auto"

    def key(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("device", "max_batch")}


def fourier_crop(array: np.ndarray, gpts: tuple[int, int]) -> np.ndarray:
    """Band-limit and resample periodic real arrays (..., nx, ny) to ``gpts`` by cropping their spectrum.

    Keeps the mean (values, not sums). Works on NumPy or CuPy arrays."""
    xp = np if isinstance(array, np.ndarray) else __import__("cupy")
    F = xp.fft.fft2(array, axes=(-2, -1))
    out = xp.zeros(array.shape[:-2] + tuple(gpts), dtype=F.dtype)
    idx = []
    for N, n in zip(array.shape[-2:], gpts):
        k = np.fft.fftfreq(N, 1.0 / N).astype(int)
        # symmetric band |k| <= (n-1)//2: an unpaired Nyquist term would break inversion symmetry
        # (measured: a spurious uniform COM of ~0.002 mrad); it lies beyond the antialias aperture anyway
        keep = np.nonzero(np.abs(k) <= (n - 1) // 2)[0]
        idx.append((keep, k[keep] % n))
    (ix, ox), (iy, oy) = idx
    out[..., ox[:, None], oy[None, :]] = F[..., ix[:, None], iy[None, :]]
    scale = (gpts[0] * gpts[1]) / (array.shape[-2] * array.shape[-1])
    return (xp.fft.ifft2(out, axes=(-2, -1)).real * scale).astype(array.dtype)


def _potential(atoms, s: ProbeSettings, periodic: bool = True):
    """abTEM potential on an FFT-friendly grid, built once (reused for every focus / scan chunk).

    With ``supersampling`` n > 1 the slices are built on an n-times finer grid and Fourier-cropped:
    abTEM spreads each atom bilinearly over the four nearest pixels, which attenuates the
    high-angle scattering of atoms between pixels (measured: HAADF of a half-pixel Sr column 40 %
    low at 0.058 Å; tests/test_stem.py); the finer build removes most of that error.
    """
    import abtem
    from abtem.potentials.iam import PotentialArray

    gpts = tuple(grid_points(float(atoms.cell[i, i]), s.potential_sampling) for i in (0, 1))
    n = int(s.supersampling)
    pot = abtem.Potential(atoms, gpts=tuple(n * g for g in gpts), slice_thickness=s.slice_thickness,
                          parametrization=s.parametrization, projection="infinite", periodic=periodic,
                          device=s.device)
    if n == 1:
        return pot.build(lazy=False)
    chunk = 8  # slices per fine build: bounds the memory of the n^2-larger grid
    parts = [fourier_crop(pot.build(first_slice=i, last_slice=min(i + chunk, pot.num_slices), lazy=False).array, gpts)
             for i in range(0, pot.num_slices, chunk)]
    xp = np if isinstance(parts[0], np.ndarray) else __import__("cupy")
    return PotentialArray(xp.concatenate(parts), slice_thickness=pot.slice_thickness, extent=pot.extent)


def _batch(s: ProbeSettings, pot) -> int | str:
    """Probe positions per batch. On CPU ~8 MB wave batches stay cache-friendly: measured ~2x faster
    than abTEM's 128 MB default chunks (benchmarks/bench_stem.py); on GPU abTEM's auto is kept."""
    if s.max_batch != "auto":
        return int(s.max_batch)
    if s.device != "cpu":
        return "auto"
    nx, ny = pot.gpts
    return max(1, int(8e6 // (8 * nx * ny)))


def _probe(pot, s: ProbeSettings, defocus: float = 0.0):
    import abtem

    probe = abtem.Probe(energy=s.energy, semiangle_cutoff=s.semiangle, defocus=defocus, Cs=s.cs, device=s.device)
    probe.grid.match(pot)
    return probe


def _scan(start: tuple[float, float], end: tuple[float, float], sampling: float):
    import abtem

    gpts = tuple(max(1, math.ceil((e - b) / sampling - 1e-9)) for b, e in zip(start, end))
    return abtem.GridScan(start=start, end=end, gpts=gpts, endpoint=False)


def _to_numpy(a) -> np.ndarray:
    if hasattr(a, "compute"):
        a = a.compute()
    if hasattr(a, "get"):  # CuPy -> host
        a = a.get()
    return np.asarray(a)


def _scan_coords(scan) -> tuple[np.ndarray, np.ndarray]:
    """Probe positions (Å) along x and y of an abTEM GridScan."""
    pos = np.asarray(scan.get_positions())  # (nx, ny, 2)
    return pos[:, 0, 0], pos[0, :, 1]


# ---------------------------------------------------------------------------------------------
# plan view


def planview_radial(atoms, s: ProbeSettings, defocus_abtem: float, outer: float, step: float = 1.0,
                    pot=None) -> xr.DataArray:
    """Flexible annular detector signal over one supercell: dims (y, x, angle); fraction of the beam.

    ``angle`` holds the inner edge of each ``step``-mrad bin, from 0 to ``outer``.
    """
    import abtem

    pot = pot if pot is not None else _potential(atoms, s)
    probe = _probe(pot, s, defocus_abtem)
    scan = _scan((0.0, 0.0), (float(atoms.cell[0, 0]), float(atoms.cell[1, 1])), s.scan_sampling)
    det = abtem.FlexibleAnnularDetector(step_size=step, inner=0.0, outer=outer)
    meas = probe.scan(pot, scan=scan, detectors=det, max_batch=_batch(s, pot), lazy=True).compute()
    arr = _to_numpy(meas.array)[..., 0]  # (nx, ny, n_radial), single azimuthal bin
    x, y = _scan_coords(scan)
    angles = np.arange(arr.shape[-1]) * step
    return xr.DataArray(arr.transpose(1, 0, 2), dims=("y", "x", "angle"),
                        coords={"y": y, "x": x, "angle": angles},
                        attrs={"units": "1", "description": "flexible annular detector, fraction of the incident beam per bin",
                               "angle_units": "mrad", "angle_step_mrad": step})


def integrate_range(radial: xr.DataArray, inner: float, outer: float) -> xr.DataArray:
    """Annular signal between ``inner`` and ``outer`` (mrad) from flexible-detector bins."""
    step = float(radial.attrs.get("angle_step_mrad", 1.0))
    a = radial["angle"].values
    sel = (a >= inner - 1e-9) & (a + step <= outer + 1e-9)
    if not sel.any():
        raise ValueError(f"no detector bins between {inner} and {outer} mrad")
    out = radial.isel(angle=np.nonzero(sel)[0]).sum("angle")
    out.attrs = {"units": "1", "inner_mrad": inner, "outer_mrad": outer}
    return out


# ---------------------------------------------------------------------------------------------
# post-processing


def poisson_noise(image: np.ndarray, dose: float, pixel_area: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: counts ~ Poisson(I * dose * pixel_area), returned in the same units as I.

    ``image`` is a fraction of the incident beam, ``dose`` e/Å², ``pixel_area`` Å². The result has
    mean I and variance I / (dose * pixel_area).
    """
    n = dose * pixel_area
    if n <= 0:
        raise ValueError("dose * pixel_area must be > 0")
    return rng.poisson(np.clip(image, 0, None) * n) / n


def postprocess(image: xr.DataArray, *, interpolate: float | None = None, blur: float | None = None,
                tiles: int | tuple[int, int] = 1, dose: float | None = None,
                rng: np.random.Generator | None = None) -> xr.DataArray:
    """Paper's chain on a periodic image (y, x): Fourier interpolation to ``interpolate`` Å,
    Gaussian blur of ``blur`` Å (periodic), tiling ``tiles`` (int or (ny, nx)), then Poisson noise
    at ``dose`` e/Å². Each step is skipped when its argument is None / 0 (tiles 1).
    The input's last two dims are taken as (y, x); the output has dims (y, x)."""
    import abtem

    ty, tx = (tiles, tiles) if isinstance(tiles, int) else tiles
    ydim, xdim = image.dims[-2:]
    image = image.rename({ydim: "y", xdim: "x"})
    x, y = image["x"].values, image["y"].values
    dx = float(x[1] - x[0]) if len(x) > 1 else 1.0
    dy = float(y[1] - y[0]) if len(y) > 1 else 1.0
    img = abtem.Images(np.ascontiguousarray(image.values.T.astype(np.float64)), sampling=(dx, dy))
    if interpolate:
        img = img.interpolate(sampling=interpolate, method="fft")
    if blur:
        img = img.gaussian_filter(blur, boundary="periodic")
    if tx > 1 or ty > 1:
        img = img.tile((tx, ty))
    arr = _to_numpy(img.compute().array if hasattr(img, "compute") else img.array)
    sx, sy = img.sampling
    if dose:
        arr = poisson_noise(arr, dose, sx * sy, rng if rng is not None else np.random.default_rng())
    out = xr.DataArray(arr.T.astype(np.float32), dims=("y", "x"),
                       coords={"y": y[0] + np.arange(arr.shape[1]) * sy, "x": x[0] + np.arange(arr.shape[0]) * sx},
                       attrs={**image.attrs, "interpolate_sampling": interpolate or 0.0, "blur_sigma": blur or 0.0,
                              "tiles": [ty, tx], "dose": dose or 0.0})
    return out


# ---------------------------------------------------------------------------------------------
# cross section


def cross_section_image(sample, s: ProbeSettings, inner: float, outer: float) -> xr.DataArray:
    """Annular dark-field cross-section image over the whole re-cut cell: dims (y, x) = (stacking, lateral)."""
    import abtem

    pot = _potential(sample, s)
    probe = _probe(pot, s, 0.0)
    scan = _scan((0.0, 0.0), (float(sample.cell[0, 0]), float(sample.cell[1, 1])), s.scan_sampling)
    det = abtem.AnnularDetector(inner=inner, outer=outer)
    meas = probe.scan(pot, scan=scan, detectors=det, max_batch=_batch(s, pot), lazy=True).compute()
    arr = _to_numpy(meas.array)
    x, y = _scan_coords(scan)
    return xr.DataArray(arr.T, dims=("y", "x"), coords={"y": y, "x": x},
                        attrs={"units": "1", "inner_mrad": inner, "outer_mrad": outer})


# ---------------------------------------------------------------------------------------------
# 4D-STEM


def fourd_tiling(period: float, semiangle: float, energy: float, min_disc_radius_px: float) -> int:
    """Lateral repeats n of a cell of ``period`` (Å) so the BF disc spans >= ``min_disc_radius_px``.

    The diffraction pixel is λ / (n period) rad, so the disc radius is α n period / λ pixels.
    """
    px_per_cell = semiangle * 1e-3 * period / wavelength(energy)
    return max(1, math.ceil(min_disc_radius_px / px_per_cell - 1e-9))


def centre_of_mass(patterns: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COM (units of kx, ky) of patterns (..., nkx, nky) over the largest k-symmetric window.

    An even-sized pattern has one unpaired row/column at -k_max; counting it biases the COM
    (measured with abTEM's center_of_mass on a 256^2 grid: a uniform 0.006 mrad offset over a
    centrosymmetric cell). Only k with a -k partner are used.
    """
    def sym(k):
        kmax = min(k.max(), -k.min())
        return np.abs(k) <= kmax + 1e-9 * max(1.0, kmax)

    mx, my = sym(kx), sym(ky)
    p = patterns[..., mx, :][..., my]
    kx, ky = kx[mx], ky[my]
    total = p.sum(axis=(-2, -1))
    return (np.tensordot(p.sum(-1), kx, axes=([-1], [0])) / total,
            np.tensordot(p.sum(-2), ky, axes=([-1], [0])) / total)


def com_maps(sample, s: ProbeSettings, scan_extent: tuple[float, float], max_angle: float | None = None,
             dose: float | None = None, keep_patterns: bool = False, seed: int = 0, pot=None,
             ) -> tuple[xr.DataArray, xr.DataArray | None]:
    """Centre of mass (mrad) of the diffraction patterns over ``scan_extent`` (Å, from the origin).

    Returns ``com`` with dims (xy, y, x), xy = ['x', 'y'], and, when ``keep_patterns``, the
    patterns (y, x, ky, kx) as fractions of the beam (or counts / (dose * area) with noise).
    """
    import abtem

    pot = pot if pot is not None else _potential(sample, s)
    probe = _probe(pot, s, 0.0)
    scan = _scan((0.0, 0.0), scan_extent, s.scan_sampling)
    det = abtem.PixelatedDetector(max_angle=max_angle if max_angle is not None else "valid")
    dp = probe.scan(pot, scan=scan, detectors=det, max_batch=_batch(s, pot), lazy=True).compute()
    if dose:
        # shot noise on each pattern: dose * scan pixel area electrons per probe position
        rng = np.random.default_rng(seed)
        sx, sy = scan.sampling
        arr = poisson_noise(_to_numpy(dp.array), dose, sx * sy, rng)
        dp = abtem.DiffractionPatterns(arr, sampling=dp.sampling, fftshift=dp.fftshift,
                                       ensemble_axes_metadata=dp.ensemble_axes_metadata, metadata=dp.metadata)
    cx, cy = centre_of_mass(_to_numpy(dp.array), *(np.asarray(c) for c in dp.angular_coordinates))
    x, y = _scan_coords(scan)
    data = np.stack([cx.T, cy.T]).astype(np.float64)
    out = xr.DataArray(data, dims=("xy", "y", "x"), coords={"xy": ["x", "y"], "y": y, "x": x},
                       attrs={"units": "mrad", "description": "centre of mass of the diffraction pattern"})
    patterns = None
    if keep_patterns:
        arr = _to_numpy(dp.array)  # (nx, ny, kx, ky), fftshifted
        kx, ky = (np.asarray(c) for c in dp.angular_coordinates)
        patterns = xr.DataArray(arr.transpose(1, 0, 3, 2), dims=("y", "x", "ky", "kx"),
                                coords={"y": y, "x": x, "ky": ky, "kx": kx},
                                attrs={"units": "1", "k_units": "mrad"})
    return out, patterns


def smooth_com(com: xr.DataArray, sigma: float | None) -> xr.DataArray:
    """Periodic Gaussian smoothing (σ in Å) of each COM component."""
    if not sigma:
        return com
    from scipy.ndimage import gaussian_filter

    dx = float(com["x"][1] - com["x"][0])
    dy = float(com["y"][1] - com["y"][0])
    out = com.copy(data=np.stack([gaussian_filter(c, (sigma / dy, sigma / dx), mode="wrap") for c in com.values]))
    out.attrs["smoothing_sigma"] = sigma
    return out


# ---------------------------------------------------------------------------------------------
# checkpoints


def settings_hash(*parts) -> str:
    """Short stable hash of settings / arrays identifying one sub-simulation."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(np.ascontiguousarray(np.round(p, 6)).tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


class Checkpoints:
    """One Zarr store per finished sub-simulation, so a killed job resumes where it stopped."""

    def __init__(self, directory: str | Path, log=None):
        self.dir = Path(directory)
        self.log = log

    def get(self, name: str, key: str, compute: Callable[[], xr.Dataset]) -> xr.Dataset:
        from twistox.core.io import read_dataset, write_dataset

        path = self.dir / f"{name}-{key}.zarr"
        if path.exists():
            if self.log:
                self.log.info("checkpoint hit: %s", path.name)
            return read_dataset(path)
        ds = compute()
        write_dataset(ds, path, stage="stem-checkpoint")
        return ds

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# stage drivers (one per rule): config -> sub-simulations (checkpointed) -> Dataset


def suffix(names: list[str], name: str) -> str:
    """Variable-name suffix of a structure: '' for the first (primary) one, '_rigid' / '_relaxed' else."""
    return "" if name == names[0] else f"_{name}"


def probe_settings(cfg: dict, part: str, device: str) -> ProbeSettings:
    """ProbeSettings of one part ('planview', 'cross_section', 'fourd') of the ``stem`` config."""
    p = cfg[part]
    return ProbeSettings(energy=float(cfg["energy_kev"]) * 1e3, semiangle=float(p["semiangle_mrad"]),
                         cs=float(p.get("cs_um", 0.0)) * 1e4, potential_sampling=float(p["potential_sampling"]),
                         scan_sampling=float(p["scan_sampling"]), slice_thickness=float(cfg["slice_thickness"]),
                         parametrization=cfg["parametrization"], supersampling=int(cfg["potential_supersampling"]),
                         device=device, max_batch=cfg["max_batch"])


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


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *map(int, keys)])


def _post(cfg: dict, img: xr.DataArray, tiles, rng) -> xr.DataArray:
    pp = cfg["postprocess"]
    return postprocess(img, interpolate=pp["interpolate_sampling"] or None, blur=pp["blur_sigma"] or None,
                       tiles=tiles, dose=pp["dose"], rng=rng)


def run_planview(structures: dict, cfg: dict, device: str, seed: int, ckpt: Checkpoints, log) -> xr.Dataset:
    """Plan-view focal series for each structure: flexible-detector data and post-processed ADF images."""
    from twistox.stem.sample import planview_sample

    s = probe_settings(cfg, "planview", device)
    pv, smp = cfg["planview"], cfg["sample"]
    names = list(structures)
    out = xr.Dataset()
    for si, (name, atoms) in enumerate(structures.items()):
        sample = planview_sample(atoms, 10.0 * smp["thickness_nm"], smp["vacuum"], smp["beam_entrance"])
        foci = resolve_focus(pv["focus"], sample.info["interface_depth"])
        log.info("plan view %s: %d atoms, %.1f Å thick (interface %.1f Å deep), %d foci", name, len(sample),
                 sample.info["sample_thickness"], sample.info["interface_depth"], len(foci))
        pot = None
        radial = []
        for fi, (label, depth) in enumerate(foci):
            key = settings_hash(s.key(), pv["detector"], depth, smp, sample.positions, sample.numbers.astype(float))

            def compute(depth=depth):
                nonlocal pot
                pot = pot if pot is not None else _potential(sample, s)  # built once per structure
                r = planview_radial(sample, s, smp["vacuum"] + depth, pv["detector"]["outer_mrad"],
                                    pv["detector"]["step_mrad"], pot=pot)
                return r.to_dataset(name="adf_radial")

            t = __import__("time").time()
            r = ckpt.get(f"planview-{name}-{fi}", key, compute)["adf_radial"]
            log.info("  focus %d/%d (%s, %.1f Å below surface): %d x %d probes in %.1f s", fi + 1, len(foci), label,
                     depth, r.sizes["x"], r.sizes["y"], __import__("time").time() - t)
            radial.append(r)
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
            imgs = [_post(cfg, integrate_range(radial[fi], lo, hi), pv["tiles"], _rng(seed, 1, si, fi, ri))
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
    return out


def run_cross_sections(structures: dict, cfg: dict, device: str, seed: int, ckpt: Checkpoints, log) -> xr.Dataset:
    """[100] / [110] cross sections of the bilayer for each structure: dims (z_{view}, s_{view})."""
    from twistox.stem.sample import cross_section_sample

    s = probe_settings(cfg, "cross_section", device)
    cs = cfg["cross_section"]
    lo, hi = cs["detector_mrad"]
    names = list(structures)
    out = xr.Dataset()
    for si, (name, atoms) in enumerate(structures.items()):
        for vi, view in enumerate(cs["views"]):
            sample, geo = cross_section_sample(atoms, view, 10.0 * cs["thickness_nm"], cs["vacuum"])
            key = settings_hash(s.key(), [lo, hi], sample.positions, sample.numbers.astype(float))
            t = __import__("time").time()
            img = ckpt.get(f"cross-{name}-{view}", key,
                           lambda: cross_section_image(sample, s, lo, hi).to_dataset(name="image"))["image"]
            log.info("cross section %s [%s]: %d atoms, %d repeats (%.1f Å) along the beam, %d x %d probes in %.1f s",
                     name, view, len(sample), sample.info["repeats_along_beam"], sample.info["beam_thickness"],
                     img.sizes["x"], img.sizes["y"], __import__("time").time() - t)
            post = _post(cfg, img, (1, cs["tiles"]), _rng(seed, 2, si, vi))
            post = post.assign_coords(y=post["y"] + sample.info["z_offset"]).rename(y=f"z_{view}", x=f"s_{view}")
            post[f"z_{view}"].attrs.update(units="Å", description="height along the stacking axis (structure frame)")
            post[f"s_{view}"].attrs.update(units="Å", description="lateral position across the beam")
            post.attrs.update(units="1", inner_mrad=lo, outer_mrad=hi, beam_angle_deg=geo.beam_angle_deg,
                              lateral_period=geo.lateral_period, beam_thickness=sample.info["beam_thickness"],
                              description=f"ADF cross section, beam along mean [{view}] (post-processed)")
            out[f"cross_section_{view}{suffix(names, name)}"] = post
    out.attrs["cross_section_settings"] = json.dumps(s.key() | {k: cs[k] for k in cs} | {"postprocess": cfg["postprocess"]})
    return out


def run_fourd(structures: dict, cfg: dict, device: str, seed: int, ckpt: Checkpoints, log
              ) -> tuple[xr.Dataset, xr.Dataset | None]:
    """4D-STEM COM maps over one supercell (cell tiled laterally so the BF disc is resolved)."""
    from twistox.stem.sample import planview_sample

    s = probe_settings(cfg, "fourd", device)
    fd, smp = cfg["fourd"], cfg["sample"]
    names = list(structures)
    out, full = xr.Dataset(), xr.Dataset()
    for si, (name, atoms) in enumerate(structures.items()):
        sample = planview_sample(atoms, 10.0 * smp["thickness_nm"], smp["vacuum"], smp["beam_entrance"])
        L = float(sample.cell[0, 0])
        n = fourd_tiling(L, s.semiangle, s.energy, fd["min_disc_radius_px"])
        tiled = sample.repeat((n, n, 1))
        key = settings_hash(s.key(), fd, sample.positions, sample.numbers.astype(float), n)
        t = __import__("time").time()

        def compute():
            com, pat = com_maps(tiled, s, (L, float(sample.cell[1, 1])), fd["max_angle_mrad"], fd["dose"],
                                fd["store_patterns"], seed=int(_rng(seed, 3, si).integers(2**31)))
            ds = com.to_dataset(name="com")
            if pat is not None:
                ds["patterns"] = pat
            return ds

        ds = ckpt.get(f"fourd-{name}", key, compute)
        sfx = suffix(names, name)
        disc_px = s.semiangle * 1e-3 * n * L / wavelength(s.energy)
        log.info("4D-STEM %s: cell tiled %dx%d (%.1f Å, BF disc radius %.1f px), %d x %d probes in %.1f s",
                 name, n, n, n * L, disc_px, ds.sizes["x"], ds.sizes["y"], __import__("time").time() - t)
        com = ds["com"]
        smooth = smooth_com(com, fd["smoothing_sigma"])
        smooth.attrs = {"units": "mrad", "tiling": n, "disc_radius_px": disc_px,
                        "probe_cutoff_period": wavelength(s.energy) / (2 * s.semiangle * 1e-3),
                        "smoothing_sigma": fd["smoothing_sigma"],
                        "description": "COM of the diffraction patterns (mrad), Gaussian-smoothed"}
        out[f"com{sfx}"] = smooth
        out[f"com_raw{sfx}"] = com.assign_attrs(units="mrad", description="COM before smoothing")
        if "patterns" in ds:
            full[f"patterns{sfx}"] = ds["patterns"].chunk({"y": 8, "x": 8})
    out["x"].attrs["units"] = "Å"
    out["y"].attrs["units"] = "Å"
    out.attrs["fourd_settings"] = json.dumps(s.key() | fd)
    return out, (full if len(full) else None)
