"""twistox.analysis.experiment: readers for measured COM / 4D-STEM data (NumPy, HDF5/EMD, Zarr) and their errors."""

import numpy as np
import pytest

from twistox.analysis import dpc
from twistox.analysis.experiment import (DataError, check_experiment_config, com_from_4dstem_file, experiment_field,
                                load_com)
from twistox.analysis.topology import find_defects

NY, NX = 24, 30


def _com():
    y, x = np.mgrid[0:NY, 0:NX].astype(float)
    # COM of a CCW projected field around (12.3, 10.6) px: com = -(σλ/2π) E
    e = np.stack([-(y - 10.6), x - 12.3]) * 20.0
    return dpc.projected_field_to_com(e, 300e3)


@pytest.mark.parametrize("fmt", ["npy", "npz", "h5", "emd", "zarr"])
def test_com_readers_round_trip(tmp_path, fmt):
    com = _com()
    p = tmp_path / f"com.{fmt}"
    key = None
    if fmt == "npy":
        np.save(p, np.moveaxis(com, 0, -1))                       # (ny, nx, 2) layout
    elif fmt == "npz":
        np.savez(p, com=com, other=np.zeros(3))
        key = "com"
    elif fmt in ("h5", "emd"):
        import h5py

        with h5py.File(p, "w") as f:
            g = f.create_group("data/com_map")                  # EMD-like layout
            g.attrs["emd_group_type"] = 1
            g.create_dataset("data", data=com)
            f.create_dataset("small", data=np.zeros(2))
    else:
        import zarr

        zarr.save_array(str(p), com)
    got = load_com(p, key)
    np.testing.assert_allclose(got, com)


def test_experiment_field_goes_through_the_analysis(tmp_path):
    p = tmp_path / "com.npy"
    np.save(p, _com())
    entry = {"path": str(p), "sample": "theta36.87_m3n1", "pixel_size": 0.5, "kind": "com", "energy_kV": 300,
             "rotation_deg": 0.0, "background": "none", "layout": "auto"}
    vf = experiment_field(entry, supercell_length=8.73)
    assert vf.units == "V" and not vf.periodic and vf.source == "experiment"
    d, _ = find_defects(vf.vx, vf.vy, vf.x, vf.y, periodic=False)
    assert len(d) == 1 and d[0].winding == 1 and d[0].kind == "ccw"
    assert d[0].x == pytest.approx(12.3 * 0.5, abs=0.3) and d[0].y == pytest.approx(10.6 * 0.5, abs=0.3)


def test_4dstem_file_to_com(tmp_path):
    k = np.arange(17) - 8.0
    KX, KY = np.meshgrid(k, k)
    data = np.empty((5, 6, 17, 17), np.float32)
    for i in range(5):
        for j in range(6):
            data[i, j] = np.exp(-((KX - 0.2 * j) ** 2 + (KY + 0.1 * i) ** 2) / 6.0)
    import h5py

    p = tmp_path / "scan.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("frames", data=data)
    com = com_from_4dstem_file(p, 0.5)
    np.testing.assert_allclose(com[0, 2], 0.5 * 0.2 * np.arange(6), atol=1e-4)
    np.testing.assert_allclose(com[1, :, 0], -0.5 * 0.1 * np.arange(5), atol=1e-4)


def test_malformed_inputs_give_clear_errors(tmp_path):
    np.save(tmp_path / "rank2.npy", np.zeros((10, 10)))
    with pytest.raises(DataError, match="must be 3D"):
        load_com(tmp_path / "rank2.npy")
    np.save(tmp_path / "shape.npy", np.zeros((3, 10, 10)))
    with pytest.raises(DataError, match="component axis of length 2"):
        load_com(tmp_path / "shape.npy")
    nan = _com()
    nan[0, 3, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(DataError, match="1 of .* non-finite"):
        load_com(tmp_path / "nan.npy")
    np.save(tmp_path / "const.npy", np.ones((2, 8, 8)))
    with pytest.raises(DataError, match="constant"):
        load_com(tmp_path / "const.npy")
    np.save(tmp_path / "tiny.npy", np.random.default_rng(0).normal(size=(2, 3, 8)))
    with pytest.raises(DataError, match="too small"):
        load_com(tmp_path / "tiny.npy")
    (tmp_path / "broken.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(DataError, match="cannot be read"):
        load_com(tmp_path / "broken.h5")
    with pytest.raises(DataError, match="unknown format '.tif'; allowed"):
        load_com(tmp_path / "x.tif" if (tmp_path / "x.tif").write_bytes(b"") is not None else None)
    with pytest.raises(DataError, match="file not found"):
        load_com(tmp_path / "missing.npy")
    np.savez(tmp_path / "two.npz", a=_com())
    with pytest.raises(DataError, match="key 'b' not found; available: a"):
        load_com(tmp_path / "two.npz", key="b")
    np.save(tmp_path / "cube.npy", np.zeros((4, 4, 4)))
    with pytest.raises(DataError, match="must be 4D"):
        com_from_4dstem_file(tmp_path / "cube.npy", 1.0)
    bad = np.ones((4, 4, 5, 5))
    bad[0, 0] = np.nan
    np.save(tmp_path / "nan4d.npy", bad)
    with pytest.raises(DataError, match="non-finite"):
        com_from_4dstem_file(tmp_path / "nan4d.npy", 1.0)


def test_experiment_config_semantic_checks(tmp_path):
    p = tmp_path / "c.npy"
    np.save(p, _com())
    samples = {"STO": ["theta36.87_m3n1"]}
    ok = {"path": str(p), "sample": "theta36.87_m3n1", "pixel_size": 0.5}
    check_experiment_config([ok], samples)
    with pytest.raises(ValueError, match=r"analysis.experiment\[0\].sample'.*allowed: theta36.87_m3n1"):
        check_experiment_config([{**ok, "sample": "theta5.00_m23n1"}], samples)
    with pytest.raises(ValueError, match=r"analysis.experiment\[0\].path': file not found"):
        check_experiment_config([{**ok, "path": str(tmp_path / "nope.npy")}], samples)
    with pytest.raises(ValueError, match=r"analysis.experiment\[0\].system'"):
        check_experiment_config([{**ok, "system": "BTO"}], samples)
