"""Fast incoherent HAADF model of a twisted perovskite bilayer, for training the registry regressor.

Incoherent imaging (Z-contrast): I(r) = Σ_columns w_j |P_Δz(r − r_j)|², each atom weighted by Z^n
(n ≈ 1.7; Hartel, Rose & Dinges, Ultramicroscopy 63, 93 (1996); n = 1.5–2 depending on the detector)
and imaged with the probe intensity at its own defocus Δz (depth below the focal plane), so the
focal series of a 20 nm specimen sections the two layers as the abTEM simulation does.

Each layer is a projected [001] ABX3 lattice (A at (0, 0); B and X at (½, ½); X at (½, 0), (0, ½))
with basis vectors A_ℓ (columns, Å) in the image frame. Because a lattice of columns has a Fourier
series, the image is evaluated exactly as Σ_hk c_hk OTF(|G_hk|) exp(2πi (h f₁ + k f₂)) on the layer's
fractional coordinates f = A⁻¹ (r − t) of every pixel — no pixel sampling of atoms, arbitrary
orientation, local strain, scan jitter and drift enter through the coordinates alone.

Registry (the regressor's label): with the top basis paired to the bottom basis by the twist
(A_t = R(θ) A_b), δ_i(r) = f_b,i(r) − f_t,i(r) mod 1 and D = a δ (Å along the two mean-lattice base
vectors). For the top layer rigidly shifted by t at θ = 0, D = t. For a rigid twist D = 2 sin(θ/2) J r,
so curl D = 4 sin(θ/2) (J = 90° CCW rotation).
Conventions: image[y, x], y = row × sampling (Å), angles CCW from +x in (x, y).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# physical constants (CODATA) for the relativistic electron wavelength
_H, _M0, _E, _C = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0


def wavelength(energy: float) -> float:
    """Relativistic electron wavelength (Å) at ``energy`` (eV)."""
    return _H / np.sqrt(2 * _M0 * _E * energy * (1 + _E * energy / (2 * _M0 * _C**2))) * 1e10


def rot(angle: float) -> np.ndarray:
    """2D rotation matrix, CCW by ``angle`` (rad)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def probe_otf_table(energy: float, semiangle_mrad: float, cs: float, defoci: np.ndarray,
                    n: int = 512, sampling: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Radial OTF of the probe intensity |P_Δz(r)|² (normalised to 1 at k = 0) for each defocus Δz (Å).

    Aberration phase χ(k) = π λ Δz k² + ½ π Cs λ³ k⁴ (cs in Å). Returns (k [1/Å], otf [n_defocus, n_k]).
    """
    lam = wavelength(energy)
    k = np.fft.fftfreq(n, sampling)
    kk = np.hypot(k[:, None], k[None, :])
    aperture = kk <= semiangle_mrad * 1e-3 / lam
    kbins = np.arange(0, k.max(), 1.0 / (n * sampling))
    idx = np.minimum(np.rint(kk * n * sampling).astype(int), len(kbins) - 1)
    counts = np.bincount(idx.ravel(), minlength=len(kbins))
    out = np.empty((len(defoci), len(kbins)))
    for i, dz in enumerate(np.atleast_1d(defoci)):
        chi = np.pi * lam * dz * kk**2 + 0.5 * np.pi * cs * lam**3 * kk**4
        psi = np.fft.ifft2(aperture * np.exp(-1j * chi))
        otf = np.fft.fft2(np.abs(psi) ** 2).real
        prof = np.bincount(idx.ravel(), weights=otf.ravel(), minlength=len(kbins)) / np.maximum(counts, 1)
        out[i] = prof / prof[0]
    return kbins, out


@dataclass
class ImagingModel:
    """Incoherent HAADF model of a bilayer specimen.

    a: lattice constant (Å); Z: atomic numbers (A, B, X); planes: per layer (0 bottom, 1 top) a list of
    (depth below the entrance surface in Å, kind 0 = AX plane, 1 = BX2 plane); focus_depth: depth of the
    focal plane (Å); energy (eV), semiangle (mrad), cs (Å) of the probe.
    """

    a: float = 3.905
    Z: tuple[int, int, int] = (38, 22, 8)
    planes: tuple[list, list] = field(default_factory=lambda: ([], []))
    focus_depth: float = 0.0
    energy: float = 300e3
    semiangle: float = 30.0
    cs: float = 1590.0
    hk_max: int = 6
    _tables: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        depths = np.array([d for lay in self.planes for d, _ in lay], float)
        if len(depths) == 0:
            raise ValueError("ImagingModel: no planes; give the depths of each layer's planes")
        dz = np.unique(np.round(depths - self.focus_depth, 0))
        self._k, otf = probe_otf_table(self.energy, self.semiangle, self.cs, dz)
        # per layer and plane kind: the OTF summed over that layer's planes of that kind
        self._layer_otf = np.zeros((2, 2, len(self._k)))
        for li, lay in enumerate(self.planes):
            for d, kind in lay:
                j = int(np.argmin(np.abs(dz - (d - self.focus_depth))))
                self._layer_otf[li, int(kind)] += otf[j]
        h = np.arange(-self.hk_max, self.hk_max + 1)
        self.h = h
        self._ph = np.exp(-1j * np.pi * h)  # e^{-iπh} = (−1)^h, the structure-factor phase of a ½ offset

    def structure_factors(self, exponent: float = 1.7, x_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """S_AX(h, k), S_BX2(h, k) of one plane of each kind with atoms weighted Z^exponent."""
        zA, zB, zX = (float(z) ** exponent for z in self.Z)
        zX *= x_weight
        ph, pk = self._ph[:, None], self._ph[None, :]
        s_ax = zA + zX * ph * pk
        s_bx = zB * ph * pk + zX * (ph + pk)
        return s_ax, s_bx

    def coefficients(self, layer: int, gabs: np.ndarray, exponent: float, blur: float,
                     x_weight: float = 1.0) -> np.ndarray:
        """c_hk (…, 2H+1, 2H+1) of one layer at |G_hk| = gabs (1/Å): structure factor × OTF × blur."""
        s_ax, s_bx = self.structure_factors(exponent, x_weight)
        o_ax = np.interp(gabs, self._k, self._layer_otf[layer, 0], right=0.0)
        o_bx = np.interp(gabs, self._k, self._layer_otf[layer, 1], right=0.0)
        return (s_ax * o_ax + s_bx * o_bx) * np.exp(-2 * np.pi**2 * blur**2 * gabs**2) / self.a**2


def planes_for_sample(a: float, thickness: float, interface_depth: float) -> tuple[list, list]:
    """Plane depths of a plan-view specimen (beam entering through the top layer at depth 0):
    top layer from 0 to the interface, bottom layer below it, one plane every a/2, kinds alternating
    (interface planes: BX2 on top, AX below, the paper's SrO–TiO2 interface)."""
    if not 0 < interface_depth < thickness:
        raise ValueError(f"interface depth {interface_depth} Å must lie inside the specimen (0, {thickness}) Å")
    step = a / 2.0
    top = [(interface_depth - step / 2 - j * step, 1 - (j % 2)) for j in range(int(interface_depth // step))]
    bottom = [(interface_depth + step / 2 + j * step, j % 2) for j in range(int((thickness - interface_depth) // step))]
    top = [(max(d, 0.0), k) for d, k in top] or [(interface_depth / 2, 1)]
    bottom = bottom or [(interface_depth + step / 2, 0)]
    return bottom, top


def render(model: ImagingModel, coords: np.ndarray, bases: np.ndarray, shifts: np.ndarray, *,
           exponent: float | np.ndarray = 1.7, blur: float | np.ndarray = 0.5,
           layer_weight: np.ndarray | None = None, x_weight: float | np.ndarray = 1.0,
           b_weight: float | np.ndarray = 1.0, chunk: int = 128) -> np.ndarray:
    """Images at specimen points ``coords`` (N, npix, 2; Å) of N bilayers.

    bases: (N, 2, 2, 2) [patch, layer, vector component, basis index] — columns are the layer's a-vectors (Å);
    shifts: (N, 2, 2) position (Å) of an A column of each layer. Per-patch exponent, blur (Å),
    layer_weight (N, 2) and x_weight may be arrays. Returns (N, npix) intensities (arbitrary units).
    """
    N = coords.shape[0]
    exponent = np.broadcast_to(np.asarray(exponent, float), (N,))
    blur = np.broadcast_to(np.asarray(blur, float), (N,))
    x_weight = np.broadcast_to(np.asarray(x_weight, float), (N,))
    b_weight = np.broadcast_to(np.asarray(b_weight, float), (N,))
    lw = np.ones((N, 2)) if layer_weight is None else np.asarray(layer_weight, float)
    h = model.h
    H = len(h)
    out = np.zeros(coords.shape[:2])
    for b0 in range(0, N, chunk):
        sl = slice(b0, min(N, b0 + chunk))
        n = sl.stop - sl.start
        for li in range(2):
            A = bases[sl, li]  # (n, 2, 2)
            Ainv = np.linalg.inv(A)
            f = np.einsum("nij,npj->nip", Ainv, coords[sl] - shifts[sl, li][:, None, :])  # (n, 2, npix)
            # G_hk = A^{-T} (h, k): rows of A^{-1} are the reciprocal basis vectors
            G = Ainv[:, 0, :, None, None] * h[None, None, :, None] + Ainv[:, 1, :, None, None] * h[None, None, None, :]
            gabs = np.hypot(G[:, 0], G[:, 1])  # (n, H, H)
            s_ax, s_bx = _structure_factors_batch(model, exponent[sl], x_weight[sl], b_weight[sl])
            o_ax = np.interp(gabs, model._k, model._layer_otf[li, 0], right=0.0)
            o_bx = np.interp(gabs, model._k, model._layer_otf[li, 1], right=0.0)
            c = (s_ax * o_ax + s_bx * o_bx) * np.exp(-2 * np.pi**2 * blur[sl, None, None] ** 2 * gabs**2) / model.a**2
            c = (c * lw[sl, li, None, None]).astype(np.complex64)
            # e^{2πi h f} for h = −H..H by powers of e^{2πi f} (cheaper than H exponentials)
            z1 = np.exp(2j * np.pi * f[:, 0]).astype(np.complex64)
            z2 = np.exp(2j * np.pi * f[:, 1]).astype(np.complex64)
            e1, e2 = _powers(z1, model.hk_max), _powers(z2, model.hk_max)  # (n, H, npix)
            out[sl] += (e1 * np.matmul(c, e2)).sum(axis=1).real
    return out


def _powers(z: np.ndarray, hmax: int) -> np.ndarray:
    """z^h for h = −hmax..hmax along a new axis 1 (|z| = 1, so z^{−h} = conj(z^h))."""
    out = np.empty((z.shape[0], 2 * hmax + 1, z.shape[1]), z.dtype)
    out[:, hmax] = 1.0
    for i in range(1, hmax + 1):
        np.multiply(out[:, hmax + i - 1], z, out=out[:, hmax + i])
        np.conjugate(out[:, hmax + i], out=out[:, hmax - i])
    return out


def _structure_factors_batch(model: ImagingModel, exponent: np.ndarray, x_weight: np.ndarray,
                             b_weight: np.ndarray):
    """S_AX, S_BX2 (n, H, H) for per-patch exponents and X / B weights (channelling changes the
    column contrast beyond a single Z^n law, so the B and X columns are scaled separately)."""
    zA, zB, zX = (float(z) ** exponent[:, None, None] for z in model.Z)
    zX = zX * x_weight[:, None, None]
    zB = zB * b_weight[:, None, None]
    ph, pk = model._ph[None, :, None], model._ph[None, None, :]
    return zA + zX * ph * pk, zB * ph * pk + zX * (ph + pk)


def registry(frac_bottom: np.ndarray, frac_top: np.ndarray) -> np.ndarray:
    """δ = f_b − f_t wrapped to [−½, ½) (fractional; × a gives D in Å)."""
    d = np.asarray(frac_bottom) - np.asarray(frac_top)
    return d - np.floor(d + 0.5)


@dataclass
class PatchSpec:
    """What the training patches look like: pixels, sampling (Å), the twist and mean orientation
    around which they are drawn, and the augmentation ranges."""

    size: int = 32
    sampling: float = 0.4
    theta_deg: float = 5.0
    mean_angle_deg: float = 0.0
    twist_spread_deg: float = 1.0
    angle_spread_deg: float = 0.5
    strain_max: float = 0.005
    exponent: tuple[float, float] = (1.5, 2.0)
    blur: tuple[float, float] = (0.3, 0.8)
    counts: tuple[float, float] = (30.0, 3e4)  # electrons per patch pixel on the mean intensity (log-uniform)
    scan_jitter: tuple[float, float] = (0.0, 0.08)  # Å rms row offsets (fast-scan noise)
    drift: float = 0.01  # max |shear / stretch| of the scan frame
    layer_ratio: tuple[float, float] = (0.8, 1.25)
    x_weight: tuple[float, float] = (0.5, 1.5)
    b_weight: tuple[float, float] = (1.0, 1.0)  # B-column contrast factor; widening it to (0.6, 1.6) did not help on abTEM (toy run)
    background: float = 0.2  # max constant background as a fraction of the mean

    def __post_init__(self):
        if self.size % 2 == 0 or self.size < 9:
            raise ValueError(f"patch size must be odd and >= 9 (the label is read at the centre pixel); got {self.size}")

    def grid(self) -> np.ndarray:
        """Pixel positions (npix, 2) in Å of a patch, relative to its centre ((size−1)/2 pixels)."""
        c = (np.arange(self.size) - (self.size - 1) / 2.0) * self.sampling
        yy, xx = np.meshgrid(c, c, indexing="ij")
        return np.column_stack([xx.ravel(), yy.ravel()])


def generate_patches(model: ImagingModel, spec: PatchSpec, n: int, rng: np.random.Generator,
                     augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """n normalised patches (n, size, size) float32 and their centre registry δ (n, 2) in [−½, ½).

    Each patch: a bilayer with twist θ ~ U(θ ± spread), mean orientation ~ U(ᾱ ± spread), random
    small strain per layer, random translations of both layers; augmentations: Z exponent, blur,
    layer intensity ratio, X-column weight, background, scan-row jitter, linear drift, Poisson dose.
    """
    a = model.a
    grid = spec.grid()
    th = np.radians(spec.theta_deg + (rng.uniform(-1, 1, n) * spec.twist_spread_deg if augment else np.zeros(n)))
    al = np.radians(spec.mean_angle_deg + (rng.uniform(-1, 1, n) * spec.angle_spread_deg if augment else np.zeros(n)))
    bases = np.empty((n, 2, 2, 2))
    for li, sgn in enumerate((-0.5, 0.5)):
        e = rng.uniform(-1, 1, (n, 3)) * spec.strain_max if augment else np.zeros((n, 3))
        eps = np.stack([np.stack([e[:, 0], e[:, 2]], -1), np.stack([e[:, 2], e[:, 1]], -1)], -2)
        ang = al + sgn * th
        R = np.stack([np.stack([np.cos(ang), -np.sin(ang)], -1), np.stack([np.sin(ang), np.cos(ang)], -1)], -2)
        bases[:, li] = (np.eye(2) + eps) @ R * a
    shifts = rng.uniform(0, a, (n, 2, 2))
    coords = np.broadcast_to(grid, (n,) + grid.shape).copy()
    if augment:
        # scan distortions act on where each pixel samples the specimen; the label is read where the
        # centre pixel samples it
        jit = rng.uniform(*spec.scan_jitter, n)
        rows = rng.normal(size=(n, spec.size))
        coords[..., 0] += (rows * jit[:, None]).repeat(spec.size, axis=1)
        S = rng.uniform(-1, 1, (n, 2, 2)) * spec.drift
        coords += np.einsum("nij,pj->npi", S, grid)
    c_pt = coords[:, (spec.size * spec.size) // 2]  # the centre pixel (size is odd)
    fb = np.linalg.solve(bases[:, 0], (c_pt - shifts[:, 0])[..., None])[..., 0]
    ft = np.linalg.solve(bases[:, 1], (c_pt - shifts[:, 1])[..., None])[..., 0]
    labels = registry(fb, ft)
    if augment:
        exp_ = rng.uniform(*spec.exponent, n)
        blur = rng.uniform(*spec.blur, n)
        lw = np.column_stack([np.ones(n), rng.uniform(*spec.layer_ratio, n)])
        xw = rng.uniform(*spec.x_weight, n)
        bw = rng.uniform(*spec.b_weight, n)
    else:
        exp_, blur, lw, xw, bw = 1.7, 0.5, None, 1.0, 1.0
    img = render(model, coords, bases, shifts, exponent=exp_, blur=blur, layer_weight=lw, x_weight=xw, b_weight=bw)
    img = np.clip(img, 0, None)
    if augment:
        mean = img.mean(axis=1, keepdims=True)
        img = img + rng.uniform(0, spec.background, (n, 1)) * mean
        counts = np.exp(rng.uniform(np.log(spec.counts[0]), np.log(spec.counts[1]), (n, 1)))
        scale = counts / img.mean(axis=1, keepdims=True)
        img = rng.poisson(img * scale) / scale
    return normalise(img.reshape(n, spec.size, spec.size)), labels.astype(np.float32)


def normalise(patches: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation per patch (float32): the regressor sees contrast only."""
    p = np.asarray(patches, np.float64)
    m = p.mean(axis=(-2, -1), keepdims=True)
    s = p.std(axis=(-2, -1), keepdims=True)
    return ((p - m) / np.maximum(s, 1e-12)).astype(np.float32)
