"""strain.zarr contract: every plane gridded, crystal and global frames, Fourier fit, non-finite input, dz."""

import numpy as np
import pytest
from strain_models import bilayer, deformed, network, relaxed_dataset

from twistox.core.io import read_dataset, write_dataset
from twistox.strain.deformation import to_layer_frame
from twistox.strain.fields import FIELDS
from twistox.strain.gridding import NonFiniteFieldError
from twistox.strain.stage import run

CFG = {"neighbour_cutoff": 0.85, "bo_cutoff": 2.4, "born_charge": 7.12, "grid_spacing": 0.5,
       "smoothing_sigma": 1.0, "fourier_order": 6}
SPECIES = {"B": "Ti", "X": "O"}


@pytest.fixture(scope="module")
def sigma13():
    return bilayer(22.62, bottom_cells=2)  # TiO2 SrO TiO2 SrO | TiO2 SrO: 6 planes


def test_contract_on_a_homogeneously_strained_stack(sigma13, tmp_path):
    eps = np.array([[0.004, 0.002], [0.002, -0.001]])
    b = deformed(sigma13, np.eye(2) + eps)
    ds = run(relaxed_dataset(b, sigma13), CFG, species=SPECIES)
    planes = np.unique(sigma13.arrays["plane"])
    assert list(ds["plane"].values) == list(planes) and len(planes) == 6  # every plane, not only the interface
    assert list(ds["plane_layer"].values) == [0, 0, 0, 0, 1, 1]
    z = ds["plane_z"].values
    assert ds["plane_z"].attrs["units"] == "Å" and np.all(np.diff(z) > 0)
    assert np.allclose(z, [sigma13.positions[sigma13.arrays["plane"] == p, 2].mean() for p in planes])
    for v in ("eps_xx", "eps_yy", "eps_xy", "rotation"):
        assert ds[v].dims == ("plane", "y", "x") and "units" in ds[v].attrs
    assert ds["eps_global"].dims == ("component", "plane", "y", "x")
    assert ds["ti_offcentering"].dims == ("plane", "y", "x", "xy")
    assert ds["polarization"].attrs["units"] == "C/m^2"
    # crystal frame per plane = the global tensor turned into the layer's frame
    angles = ds.attrs["layer_angles_deg"]
    for ip, lay in enumerate(ds["plane_layer"].values):
        ec = to_layer_frame(eps, angles[lay])
        assert np.allclose(ds["eps_xx"][ip], ec[0, 0], atol=1e-9) and np.allclose(ds["eps_xy"][ip], ec[0, 1], atol=1e-9)
    for i, c in enumerate(("xx", "yy", "xy")):
        assert np.allclose(ds["eps_global"].sel(component=c), eps[[0, 1, 0][i], [0, 1, 1][i]], atol=1e-9)
    c = ds["fourier_coefficients"]
    N = ds.attrs["fourier_order_supercell"]
    assert N == 8 and ds.attrs["fourier_order_moire"] == 6  # L / lambda = sqrt(2)
    assert c.dims == ("plane", "field", "h", "k") and c.dtype == np.complex128
    assert list(c["field"].values) == FIELDS and list(c["h"].values) == list(range(-N, N + 1))
    assert np.allclose(c.values, np.conj(c.values[:, :, ::-1, ::-1]), atol=1e-15)
    assert c.sel(field="eps_yy", h=0, k=0).values == pytest.approx([eps[1, 1]] * 6, abs=1e-9)
    flat = c.values.reshape(6, 4, -1)
    assert np.abs(np.delete(flat, N * (2 * N + 1) + N, axis=2)).max() < 1e-9  # constant: only c[0, 0]
    assert ds.attrs["fourier_residual_rms"] < 1e-9
    kinds = ds["plane_kind"].values
    assert np.nanmax(np.abs(ds["ti_offcentering"].values[kinds == 1])) < 1e-9
    assert np.isnan(ds["ti_offcentering"].values[kinds == 0]).all()
    # written and read back: attrs JSON-clean (NaN periods included)
    write_dataset(ds, tmp_path / "strain.zarr", stage="strain")
    back = read_dataset(tmp_path / "strain.zarr")
    assert back.attrs["fourier_order_supercell"] == N and np.isnan(back.attrs["network_period_twist"])


def test_strain_reaches_into_the_stack(sigma13):
    """A network relaxation confined to the interface planes shows there, not on the outer planes;
    a plane lifted rigidly shows in max_dz but not in max_dz_relative."""
    relaxed = network(sigma13, -0.3)
    plane = sigma13.arrays["plane"]
    ib, it = sigma13.info["interface_planes"]
    keep = (plane == ib) | (plane == it)
    relaxed.positions[~keep] = sigma13.positions[~keep]
    relaxed.positions[plane == 0, 2] += 0.2
    ds = run(relaxed_dataset(relaxed, sigma13), CFG, species=SPECIES)
    rms = np.sqrt((ds["eps_xy"] ** 2).mean(("y", "x"))).values
    assert rms[[ib, it]].min() > 1e-3 and rms[0] < 1e-12
    assert ds["max_dz"].sel(all_planes=0) == pytest.approx(0.2) and ds["max_dz_relative"].sel(all_planes=0) < 1e-9
    assert float(ds["max_dz"].sel(all_planes=ib)) < 1e-12


def test_nonfinite_input_fails_loudly(sigma13):
    """Old code: a grid with holes skipped the Fourier fit and left zero coefficients -> no eigenstrain."""
    rel = relaxed_dataset(sigma13)
    with pytest.raises(NonFiniteFieldError, match="smoothing_sigma"):
        run(rel, {**CFG, "smoothing_sigma": 0.1, "grid_spacing": 0.25}, species=SPECIES)
    bad = rel.copy(deep=True)
    bad["positions"].values[5, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        run(bad, CFG, species=SPECIES)
    with pytest.raises(ValueError, match="positions_rigid"):
        run(rel.drop_vars("positions_rigid"), CFG, species=SPECIES)


def test_md_block_uncertainty_of_the_offcentring(sigma13):
    """positions_blocks (block, atom, xyz): one Ti jitters by +-s along x between 4 blocks -> its standard
    error s sqrt(4/3) / 2; the gridded uncertainty peaks there and stays below it (kernel average)."""
    rel = relaxed_dataset(sigma13)
    ib, it = sigma13.info["interface_planes"]
    k = int(np.flatnonzero((sigma13.numbers == 22) & (sigma13.arrays["plane"] == it))[0])
    s = 0.01
    blocks = np.repeat(sigma13.positions[None], 4, axis=0)
    blocks[:, k, 0] += s * np.array([1, -1, 1, -1])
    rel["positions_blocks"] = (("block", "atom", "xyz"), blocks, {"units": "Å"})
    ds = run(rel, CFG, species=SPECIES)
    se = s * np.sqrt(4 / 3) / 2
    assert ds["atom_ti_offcentering_stderr"].values[k] == pytest.approx([se, 0.0], abs=1e-12)
    others = np.delete(np.arange(len(sigma13)), k)
    assert np.nanmax(ds["atom_ti_offcentering_stderr"].values[others]) < 1e-12
    u = ds["ti_offcentering_uncertainty"].sel(plane=it).values[..., 0]
    assert 0.2 * se < u.max() < se and ds.attrs["md_blocks"] == 4
    assert ds["polarization_uncertainty"].dims == ("plane", "y", "x", "xy")
    assert "polarization_uncertainty" not in run(relaxed_dataset(sigma13), CFG, species=SPECIES)


def test_run_takes_its_defaults_from_the_schema(sigma13):
    from twistox.core.config import ConfigError

    ds = run(relaxed_dataset(sigma13), {"grid_spacing": 0.5}, species=SPECIES)
    assert ds.attrs["fourier_order_moire"] == 6 and ds.attrs["born_charge"] == 7.12  # schema defaults
    with pytest.raises(ConfigError, match="planes"):
        run(relaxed_dataset(sigma13), {"planes": "interface"}, species=SPECIES)  # removed key: every plane is gridded


def test_reference_lattice_constant_is_the_rigid_lattice():
    """A stack built with the potential's own a = 3.86 Å (issue 12 item 5) but a stale attr a = 3.905 Å:
    strain is measured against the rigid lattice (zero), not against 3.905 Å (-1.2 % biaxial)."""
    from twistox.supercell.builder import Perovskite

    b = bilayer(22.62, material=Perovskite(A="Sr", B="Ti", X="O", a=3.86))
    rel = relaxed_dataset(b)
    rel.attrs["a"] = 3.905
    ds = run(rel, CFG, species=SPECIES)
    assert ds.attrs["a_reference"] == pytest.approx(3.86, abs=1e-9)
    assert np.abs(ds["eps_global"].values).max() < 1e-9
