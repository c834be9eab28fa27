"""Beam entrance (issue 13 item 8): the specimen is turned over by a proper rotation, and images
are mapped back to the sample frame.

Handedness: in a right-handed frame whose z is the beam direction, the twist of the exit layer
relative to the entrance layer is +θ from either side (a twisted bilayer is like a screw: turning
it over keeps its sense). A z-mirror (the old 'top') turns that into −θ in the specimen's frame.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from twistox.stem.multislice import ProbeSettings, configure_abtem
from twistox.stem.planview import integrate_range, planview_radial
from twistox.stem.sample import planview_sample, to_sample_frame
from twistox.supercell.builder import BilayerSpec, build_bilayer
from twistox.supercell.lattice import nearest_csl

A = 3.905


@pytest.fixture(scope="module", autouse=True)
def _abtem_cpu():
    configure_abtem("cpu", "float32", 1)


def bilayer(theta=36.87) -> Atoms:
    atoms = build_bilayer(nearest_csl(theta, 30), BilayerSpec(bottom_cells=1, top_cells=1, vacuum=10.0))
    atoms.info["rigid_positions"] = atoms.positions.copy()
    return atoms


def layer_angle(atoms: Atoms, layer: int) -> float:
    """Lattice orientation [deg, mod 90] of one layer from its A-site (Sr) nearest-neighbour bonds."""
    m = (atoms.arrays["layer"] == layer) & (atoms.numbers == 38)
    pos = atoms.positions[m]
    z0 = np.median(pos[:, 2])
    pos = pos[np.abs(pos[:, 2] - z0) < 0.3]  # one plane
    L = np.diag(atoms.cell)[:2]
    d = pos[None, :, :2] - pos[:, None, :2]
    d -= L * np.round(d / L)
    r = np.hypot(d[..., 0], d[..., 1])
    v = d[np.abs(r - A) < 0.05]
    phi = np.arctan2(v[:, 1], v[:, 0])
    return float(np.degrees(np.angle(np.mean(np.exp(4j * phi)))) / 4.0)


def beam_twist(specimen: Atoms) -> float:
    """Exit-layer angle minus entrance-layer angle [deg, wrapped to (−45, 45]]; beam along +z."""
    z = specimen.positions[:, 2]
    lay = specimen.arrays["layer"]
    first = int(lay[np.argmin(z)])
    d = layer_angle(specimen, 1 - first) - layer_angle(specimen, first)
    return float((d + 45.0) % 90.0 - 45.0)


def test_turning_over_keeps_the_twist_handedness():
    atoms = bilayer()
    theta = (layer_angle(atoms, 1) - layer_angle(atoms, 0) + 45.0) % 90.0 - 45.0  # top vs bottom, seen from +z
    assert theta == pytest.approx(36.87, abs=0.05)
    for entrance in ("top", "bottom"):
        s = planview_sample(atoms, 0.0, 4.0, entrance)
        assert beam_twist(s) == pytest.approx(theta, abs=0.05), entrance
    # which layer the beam meets first
    top = planview_sample(atoms, 0.0, 4.0, "top")
    assert top.arrays["layer"][np.argmin(top.positions[:, 2])] == 1
    # the old 'top' (z-mirror only) images the mirror twist in the specimen's own frame
    mirrored = top.copy()
    mirrored.positions[:, 1] = -mirrored.positions[:, 1]  # undo the y of the rotation: z-flip only
    mirrored.wrap()
    assert beam_twist(mirrored) == pytest.approx(-theta, abs=0.05)


def _probe(**kw) -> ProbeSettings:
    return ProbeSettings(**(dict(energy=300e3, semiangle=30.0, potential_sampling=0.08, scan_sampling=0.5,
                                 slice_thickness=2.0, parametrization="lobato", supersampling=1) | kw))


def test_images_mapped_back_to_the_sample_frame():
    """One Sr column off-centre at (x0, y0) in the sample frame: the HAADF maximum must be there."""
    L, x0, y0 = 6.0, 1.5, 4.5
    col = Atoms("Sr4", positions=[(x0, y0, 2.0 + A * i) for i in range(4)], cell=[L, L, 20.0], pbc=True)
    col.positions[:, 1:] = -col.positions[:, 1:]  # turned over for a 'top' entrance: (x, -y, -z)
    col.positions[:, 2] += 20.0
    col.wrap()
    raw = integrate_range(planview_radial(col, _probe(), 0.0, 100.0, 4.0), 60, 100)
    img = to_sample_frame(raw, "top")
    iy, ix = np.unravel_index(np.argmax(img.values), img.shape)
    assert (img["x"].values[ix], img["y"].values[iy]) == pytest.approx((x0, y0))
    jy, _ = np.unravel_index(np.argmax(raw.values), raw.shape)
    assert raw["y"].values[jy] == pytest.approx(L - y0)  # not mapped back: the mirror position
    # vector maps flip their y component; a k_y axis is reversed
    import xarray as xr

    v = xr.DataArray(np.stack([raw.values, raw.values]), dims=("xy", "y", "x"),
                     coords={"xy": ["x", "y"], "y": raw["y"].values, "x": raw["x"].values})
    vb = to_sample_frame(v, "top", vector_dim="xy")
    np.testing.assert_allclose(vb.sel(xy="x").values, img.values)
    np.testing.assert_allclose(vb.sel(xy="y").values, -img.values)


def test_rotated_specimen_images_match_the_mirrored_one():
    """With round aberrations the multislice is mirror-symmetric, so the mapped-back image of the
    rotated specimen equals that of the old z-mirrored one: the old images were right, only the
    specimen's own frame was left-handed (which would matter for non-round aberrations)."""
    atoms = bilayer()
    top = planview_sample(atoms, 0.0, 3.0, "top")
    mirrored = top.copy()
    mirrored.positions[:, 1] = -mirrored.positions[:, 1]
    mirrored.wrap()
    s = _probe(potential_sampling=0.1, scan_sampling=0.8)
    new = to_sample_frame(integrate_range(planview_radial(top, s, 0.0, 80.0, 4.0), 40, 80), "top")
    old = integrate_range(planview_radial(mirrored, s, 0.0, 80.0, 4.0), 40, 80)
    assert np.abs(new.values - old.values).max() < 1e-4 * float(old.max())
