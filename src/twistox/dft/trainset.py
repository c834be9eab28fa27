"""Training configurations for the DFT labels: small cells that DFT can afford.

Kinds (``atoms.info["config_type"]``):

- ``bulk``: cubic ABO3 cell (5 atoms, or a repeat) under a random homogeneous strain, rattled.
- ``slab``: free (001) slab, 1x1 in-plane, both terminations, rattled.
- ``bilayer``: untwisted 1x1 bilayer with the system's interface; the top layer is
  translated on a g x g grid of in-plane shifts (the local registries that a twisted
  interface visits); the spacing opens until no interlayer pair is closer than
  ``bilayer_min_distance`` (then jittered), rattled.
- ``twisted``: commensurate twisted bilayer at small Sigma with thin layers
  (``twistox.supercell.builder.build_bilayer``), top-layer translations on a grid, rattled.
- ``md``: snapshots of short Langevin MD of bilayer/bulk cells driven by a cheap calculator.

Lengths in Å, strains dimensionless, temperatures in K. Every frame gets a stable
``frame_id`` and a ``split`` (train/test) chosen with the config seed, stratified by kind.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from twistox.supercell.lattice import nearest_csl
from twistox.supercell.builder import AO, BilayerSpec, Perovskite, build_bilayer

KINDS = ("bulk", "slab", "bilayer", "twisted", "md")


def bulk_cell(mat: Perovskite, repeat=(1, 1, 1)) -> Atoms:
    """Cubic perovskite cell: A at the corner, B at the body centre (Å)."""
    a = mat.a
    at = Atoms([mat.A, mat.B, mat.X, mat.X, mat.X],
               scaled_positions=[[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
               cell=[a, a, a], pbc=True)
    return at.repeat(repeat)


def _planes_1x1(mat: Perovskite, kinds: list[int], z: list[float], layers: list[int],
                shifts: dict[int, np.ndarray], cell_z: float) -> Atoms:
    """Stack 1x1 planes (kinds AO/BO2) at heights z; layer k is shifted in-plane by shifts[k] (fractions)."""
    symbols, pos, lay = [], [], []
    for kind, zi, k in zip(kinds, z, layers):
        sp, frac = mat.plane_sites(kind)
        for s, f in zip(sp, frac):
            xy = ((f + shifts.get(k, 0.0)) % 1.0) * mat.a
            symbols.append(s)
            pos.append([xy[0], xy[1], zi])
            lay.append(k)
    at = Atoms(symbols, positions=pos, cell=[mat.a, mat.a, cell_z], pbc=(True, True, False))
    at.set_array("layer", np.array(lay, dtype=np.int32))
    return at


def slab_1x1(mat: Perovskite, n_planes: int, first_kind: int, vacuum: float) -> Atoms:
    """Free (001) slab of n_planes alternating planes starting with first_kind (0 AO, 1 BO2)."""
    kinds = [(first_kind + i) % 2 for i in range(n_planes)]
    z = [vacuum / 2 + i * mat.a / 2 for i in range(n_planes)]
    return _planes_1x1(mat, kinds, z, [0] * n_planes, {}, z[-1] + vacuum / 2)


def bilayer_1x1(spec: BilayerSpec, shift: tuple[float, float], spacing: float | None = None) -> Atoms:
    """Untwisted 1x1 bilayer with the spec's planes; top layer shifted by ``shift`` (cell fractions)."""
    mat = spec.material
    bottom, top = spec.plane_sequence()
    d = spacing if spacing is not None else (spec.interlayer_spacing or mat.a / 2)
    z = [spec.vacuum / 2 + i * mat.a / 2 for i in range(len(bottom))]
    z += [z[-1] + d + i * mat.a / 2 for i in range(len(top))]
    layers = [0] * len(bottom) + [1] * len(top)
    return _planes_1x1(mat, bottom + top, z, layers, {1: np.asarray(shift, float)}, z[-1] + spec.vacuum / 2)


def contact_spacing(spec: BilayerSpec, shift: tuple[float, float], d_min: float) -> float:
    """Smallest interlayer spacing (Å) >= the spec's at which no interlayer pair of the shifted
    1x1 bilayer is closer than d_min (cation-anion) or LIKE * d_min (cation-cation, anion-anion):
    misregistered interfaces (Ti over Sr, O over O) open up instead of carrying the ~30 eV/Å
    contact forces that a relaxed interface never sees."""
    d0 = spec.interlayer_spacing or spec.material.a / 2
    at = bilayer_1x1(spec, shift, 0.0)
    lay = at.arrays["layer"]
    z = at.positions[:, 2]
    ib = np.where((lay == 0) & np.isclose(z, z[lay == 0].max()))[0]
    it = np.where((lay == 1) & np.isclose(z, z[lay == 1].min()))[0]
    anion = np.array([s == spec.material.X for s in at.get_chemical_symbols()])
    a = spec.material.a
    need = d0
    for i in ib:
        for j in it:
            dxy = at.positions[j, :2] - at.positions[i, :2]
            dxy -= a * np.round(dxy / a)  # nearest periodic image
            dm = d_min * (LIKE if anion[i] == anion[j] else 1.0)
            need = max(need, np.sqrt(max(dm**2 - float(dxy @ dxy), 0.0)))
    return float(need)


LIKE = 2.76 / 1.9525  # bulk SrTiO3 O-O over Ti-O distance: like-charged pairs sit farther apart


def random_strain(rng: np.random.Generator, max_strain: float) -> np.ndarray:
    """Symmetric strain tensor with components uniform in [-max_strain, max_strain]."""
    e = rng.uniform(-max_strain, max_strain, (3, 3))
    return 0.5 * (e + e.T)


def rattle(atoms: Atoms, rng: np.random.Generator, sigma: float) -> Atoms:
    """Gaussian random displacements of standard deviation sigma (Å) on every atom."""
    atoms.positions += rng.normal(0.0, sigma, atoms.positions.shape)
    return atoms


def _grid(g: int) -> list[tuple[float, float]]:
    return [(i / g, j / g) for i, j in itertools.product(range(g), range(g))]


@dataclass
class TrainsetSettings:
    """Counts and amplitudes of the training configurations (see dft.schema.yaml)."""

    bulk: int = 8
    bulk_repeat: tuple[int, int, int] = (1, 1, 1)
    bulk_max_strain: float = 0.03
    slab: int = 2
    slab_planes: int = 4
    bilayer_grid: int = 2
    bilayer_cells: int = 1
    bilayer_spacing_jitter: float = 0.15
    bilayer_min_distance: float = 1.9
    twisted_angles_deg: tuple[float, ...] = ()
    twisted_grid: int = 1
    twisted_cells: int = 1
    md: int = 0
    md_calculator: str = "chgnet"
    md_temperature_K: float = 600.0
    md_steps: int = 40
    md_timestep_fs: float = 2.0
    rattle: float = 0.05
    vacuum: float = 8.0
    test_fraction: float = 0.2
    twisted: dict = field(default_factory=dict)  # dft.configs.twisted (twistox.dft.twisted)

    @classmethod
    def from_config(cls, d: dict) -> "TrainsetSettings":
        d = dict(d)
        d["bulk_repeat"] = tuple(d.get("bulk_repeat", (1, 1, 1)))
        d["twisted_angles_deg"] = tuple(d.get("twisted_angles_deg", ()))
        return cls(**d)


def generate(mat: Perovskite, spec: BilayerSpec, s: TrainsetSettings, rng: np.random.Generator,
             md_calc_factory=None, max_sigma: int = 30, path_calc_factory=None) -> list[Atoms]:
    """All training configurations (unlabelled), with config_type, frame_id and split in info.

    ``md_calc_factory()`` returns the ASE calculator that drives the ``md`` snapshots
    (only called when s.md > 0).
    """
    frames: list[Atoms] = []
    for _ in range(s.bulk):
        at = bulk_cell(mat, s.bulk_repeat)
        at.set_cell(at.cell @ (np.eye(3) + random_strain(rng, s.bulk_max_strain)), scale_atoms=True)
        frames.append(_tag(rattle(at, rng, s.rattle), "bulk"))
    for i in range(s.slab):
        # alternate SrO- and TiO2-started slabs: both surface terminations
        at = slab_1x1(mat, s.slab_planes, AO if i % 2 == 0 else 1 - AO, s.vacuum)
        frames.append(_tag(rattle(at, rng, s.rattle), "slab"))
    thin = BilayerSpec(material=mat, interface=spec.interface, bottom_cells=s.bilayer_cells,
                       top_cells=s.bilayer_cells, bottom_outer=spec.bottom_outer, top_outer=spec.top_outer,
                       interlayer_spacing=spec.interlayer_spacing, vacuum=s.vacuum)
    for shift in _grid(s.bilayer_grid):
        d = contact_spacing(thin, shift, s.bilayer_min_distance)
        d += rng.uniform(-s.bilayer_spacing_jitter, s.bilayer_spacing_jitter)
        at = bilayer_1x1(thin, shift, d)
        at.info["translation"] = list(shift)
        frames.append(_tag(rattle(at, rng, s.rattle), "bilayer"))
    for theta in s.twisted_angles_deg:
        csl = nearest_csl(theta, max_sigma)
        for shift in _grid(s.twisted_grid):
            tspec = BilayerSpec(material=mat, interface=spec.interface, bottom_cells=s.twisted_cells,
                                top_cells=s.twisted_cells, interlayer_spacing=spec.interlayer_spacing,
                                translation=shift, vacuum=s.vacuum)
            at = build_bilayer(csl, tspec)
            keep = {k: at.arrays[k] for k in ("layer",)}
            at = Atoms(at.numbers, at.positions, cell=at.cell, pbc=at.pbc)
            at.set_array("layer", keep["layer"])
            at.info.update(translation=list(shift), sigma=csl.sigma, theta_deg=csl.theta_deg)
            frames.append(_tag(rattle(at, rng, s.rattle), "twisted"))
    if s.twisted:  # twisted_rigid / twisted_path frames (``path_calc_factory`` drives the paths)
        from twistox.dft.twisted import TwistedSettings, twisted_frames

        frames += twisted_frames(mat, spec, TwistedSettings.from_config(s.twisted), rng, s.vacuum, path_calc_factory)
    if s.md > 0:
        if md_calc_factory is None:
            raise ValueError("md: snapshots requested but no MD calculator given")
        frames += md_snapshots([bilayer_1x1(thin, (0.0, 0.0)), bulk_cell(mat, s.bulk_repeat)], s.md,
                               md_calc_factory(), s.md_temperature_K, s.md_steps, s.md_timestep_fs, rng)
    for i, at in enumerate(frames):
        at.info["frame_id"] = i
    assign_split(frames, s.test_fraction, rng)
    return frames


def _tag(at: Atoms, kind: str) -> Atoms:
    at.info["config_type"] = kind
    return at


def md_snapshots(starts: list[Atoms], n: int, calc, temperature_K: float, steps: int, timestep_fs: float,
                 rng: np.random.Generator) -> list[Atoms]:
    """n snapshots from short Langevin runs (equal share per start structure), last frames of equal segments."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    out: list[Atoms] = []
    per = [n // len(starts) + (1 if i < n % len(starts) else 0) for i in range(len(starts))]
    for start, k in zip(starts, per):
        if k == 0:
            continue
        at = start.copy()
        at.calc = calc
        MaxwellBoltzmannDistribution(at, temperature_K=temperature_K, rng=rng)
        dyn = Langevin(at, timestep_fs * units.fs, temperature_K=temperature_K, friction=0.02, fixcm=False,
                       rng=np.random.RandomState(int(rng.integers(2**31))))
        seg = max(1, steps // k)
        for _ in range(k):
            dyn.run(seg)
            snap = Atoms(at.numbers, at.positions.copy(), cell=at.cell.copy(), pbc=at.pbc)
            snap.info["md_temperature_K"] = temperature_K
            out.append(_tag(snap, "md"))
    return out


def assign_split(frames: list[Atoms], test_fraction: float, rng: np.random.Generator) -> None:
    """Set info['split'] to 'train'/'test', stratified by config_type (>= 1 train frame per kind)."""
    by_kind: dict[str, list[int]] = {}
    for i, at in enumerate(frames):
        by_kind.setdefault(at.info["config_type"], []).append(i)
    for idx in by_kind.values():
        n_test = int(round(test_fraction * len(idx)))
        n_test = min(n_test, len(idx) - 1) if len(idx) > 1 else 0
        test = set(rng.permutation(idx)[:n_test].tolist())
        for i in idx:
            frames[i].info["split"] = "test" if i in test else "train"


def start_cells(kinds: list[str] | tuple[str, ...], mat: Perovskite, spec: BilayerSpec, s: TrainsetSettings,
                twisted_angles_deg=(), max_sigma: int = 30) -> list[Atoms]:
    """Unrattled start cells for committee MD (active learning), config_type = kind.

    bulk: cubic cell repeated by ``bulk_repeat``; slab: 1x1 slab;
    bilayer: untwisted 1x1 bilayers in AA (0, 0) and AB (1/2, 1/2) registry; twisted: thin
    Sigma bilayers at the nearest CSL of each angle (50 atoms for Sigma5 with 1+1 cells).
    """
    thin = BilayerSpec(material=mat, interface=spec.interface, bottom_cells=s.bilayer_cells,
                       top_cells=s.bilayer_cells, bottom_outer=spec.bottom_outer, top_outer=spec.top_outer,
                       interlayer_spacing=spec.interlayer_spacing, vacuum=s.vacuum)
    out: list[Atoms] = []
    for kind in kinds:
        if kind == "bulk":
            out.append(_tag(bulk_cell(mat, s.bulk_repeat), "bulk"))
        elif kind == "slab":
            out.append(_tag(slab_1x1(mat, s.slab_planes, AO, s.vacuum), "slab"))
        elif kind == "bilayer":
            out += [_tag(bilayer_1x1(thin, sh), "bilayer") for sh in ((0.0, 0.0), (0.5, 0.5))]
        elif kind == "twisted":
            for theta in twisted_angles_deg:
                csl = nearest_csl(theta, max_sigma)
                tspec = BilayerSpec(material=mat, interface=spec.interface, bottom_cells=s.twisted_cells,
                                    top_cells=s.twisted_cells, interlayer_spacing=spec.interlayer_spacing,
                                    vacuum=s.vacuum)
                at = build_bilayer(csl, tspec)
                a2 = Atoms(at.numbers, at.positions, cell=at.cell, pbc=at.pbc)
                a2.set_array("layer", at.arrays["layer"])
                a2.info.update(sigma=csl.sigma, theta_deg=csl.theta_deg)
                out.append(_tag(a2, "twisted"))
        else:
            raise ValueError(f"cells: {kind!r} is not allowed; allowed: bulk, slab, bilayer, twisted")
    return out
