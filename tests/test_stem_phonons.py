"""Frozen phonons (issue 13 item 9): seeded, per-element displacements, and the thermal diffuse
scattering they add to HAADF between the columns of bulk SrTiO3 [001]."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from twistox.core.config import ConfigError, validate_config
from twistox.stem import phonons
from twistox.stem.checks import check_config
from twistox.stem.multislice import ProbeSettings, configure_abtem
from twistox.stem.planview import integrate_range, planview_radial

A = 3.905
SIGMA = {"Sr": 0.08, "Ti": 0.07, "O": 0.09}


@pytest.fixture(scope="module", autouse=True)
def _abtem_cpu():
    configure_abtem("cpu", "float32", 1)


def sto(n=(2, 2, 4)) -> Atoms:
    return Atoms("SrTiO3", scaled_positions=[(0, 0, 0), (.5, .5, .5), (.5, .5, 0), (.5, 0, .5), (0, .5, .5)],
                 cell=[A, A, A], pbc=True).repeat(n)


def fp_cfg(**kw) -> dict:
    cfg = validate_config({"systems": {"STO": {}}, "twist": {"angles_deg": [36.87], "max_sigma": 30},
                           "stem": {"frozen_phonons": {"enabled": True, "num_configs": 3, "sigma": SIGMA} | kw}})
    return cfg["stem"]


def test_configurations_are_seeded_with_per_element_rms():
    atoms = sto((4, 4, 8))
    cfg = fp_cfg(num_configs=2)
    a = phonons.configurations(atoms, cfg, "planview", 11)
    b = phonons.configurations(atoms, cfg, "planview", 11)
    c = phonons.configurations(atoms, cfg, "planview", 12)
    assert len(a) == 2
    assert all(np.array_equal(p.positions, q.positions) for p, q in zip(a, b))  # reproducible
    assert not np.allclose(a[0].positions, c[0].positions)  # another seed, other displacements
    assert not np.allclose(a[0].positions, a[1].positions)  # configurations differ
    L = np.diag(atoms.cell)
    for el, sig in SIGMA.items():
        m = atoms.numbers == {"Sr": 38, "Ti": 22, "O": 8}[el]
        d = a[0].positions[m] - atoms.positions[m]
        d[:, :2] -= L[:2] * np.round(d[:, :2] / L[:2])  # x, y were wrapped into the cell
        assert d.std() == pytest.approx(sig, rel=0.1)  # per Cartesian direction
    # switched off, or not for this part: the static specimen
    assert phonons.configurations(atoms, fp_cfg(enabled=False), "planview", 11)[0] is atoms
    assert phonons.configurations(atoms, cfg, "fourd", 11)[0] is atoms


def test_config_checks():
    with pytest.raises(ConfigError, match="stem.frozen_phonons.sigma"):
        check_config(fp_cfg(sigma={"Sr": 0.08, "Xx": 0.1}))
    with pytest.raises(ConfigError, match="stem.frozen_phonons"):
        fp_cfg(num_configs=0)
    with pytest.raises(ValueError, match="no value for O"):
        phonons.configurations(sto(), fp_cfg(sigma={"Sr": 0.08, "Ti": 0.07}), "planview", 1)


def test_tds_raises_haadf_between_columns():
    """HAADF 60-120 mrad over 2a x 2a: frozen phonons add diffuse intensity between the columns
    (the static lattice has almost none there) and change the column intensities."""
    atoms = sto()
    s = ProbeSettings(energy=300e3, semiangle=30.0, potential_sampling=2 * A / 160, scan_sampling=A / 4,
                      slice_thickness=2.0, parametrization="lobato", supersampling=1)

    def haadf(specimens):
        return np.mean([integrate_range(planview_radial(x, s, 0.0, 120.0, 4.0), 60, 120).values for x in specimens], 0)

    static = haadf([atoms])
    confs = phonons.configurations(atoms, fp_cfg(), "planview", 5)
    tds = haadf(confs)
    again = haadf(phonons.configurations(atoms, fp_cfg(), "planview", 5))
    np.testing.assert_array_equal(tds, again)  # seeded end to end
    between = (1, 1)  # (a/4, a/4): no column
    assert tds[between] > 1.5 * static[between]
    assert np.abs(tds - static).max() > 0.1 * static.max()
