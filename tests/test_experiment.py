"""twistox.analysis.experiment / readers: measured COM, 4D-STEM and images through RosettaSciIO
(Berkeley EMD, HyperSpy HDF5, MRC; DM3/DM4 and Velox through the same path), h5py, Zarr and
NumPy, with calibrations, closed files and one clear error per malformed input."""

import os

import numpy as np
import pytest

from twistox.analysis import dpc, readers
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
    elif fmt == "h5":
        import h5py

        with h5py.File(p, "w") as f:
            g = f.create_group("data/com_map")
            g.create_dataset("data", data=com)
            f.create_dataset("small", data=np.zeros(2))
    elif fmt == "emd":                                          # Berkeley EMD, RosettaSciIO's writer
        from rsciio.emd import file_writer

        file_writer(str(p), _signal(com, [("c", 1, ""), ("y", 0.05, "nm"), ("x", 0.05, "nm")]))
    else:
        import zarr

        zarr.save_array(str(p), com)
    got = load_com(p, key)
    np.testing.assert_allclose(got, com)


def _signal(data, axes, title="scan"):
    """A RosettaSciIO signal dict: axes [(name, scale, units)] in array order (first `nav` navigate)."""
    nav = data.ndim - 2 if data.ndim != 3 else 0
    return dict(data=data, axes=[dict(name=n, size=data.shape[i], scale=sc, offset=0.0, units=u, navigate=i < nav)
                                 for i, (n, sc, u) in enumerate(axes)],
                metadata={"General": {"title": title}, "Signal": {"signal_type": ""}}, original_metadata={},
                tmp_parameters={}, attributes={"_lazy": False}, learning_results={}, models={},
                package_info={"name": "twistox", "version": "0"})


def write_mrc(path, data, pixel_A):
    """A minimal MRC2014 file (mode 2, float32), cell = shape x pixel (Å)."""
    data = np.asarray(data, np.float32)
    nz, ny, nx = (1,) + data.shape if data.ndim == 2 else data.shape
    h = np.zeros(256, np.int32)
    hf = h.view(np.float32)
    h[0:3] = nx, ny, nz
    h[3] = 2
    h[7:10] = nx, ny, nz
    hf[10:13] = nx * pixel_A, ny * pixel_A, nz * pixel_A
    hf[13:16] = 90.0
    h[16:19] = 1, 2, 3
    hf[19:22] = data.min(), data.max(), data.mean()
    b = bytearray(h.tobytes())
    b[208:212] = b"MAP "
    b[212:216] = bytes([0x44, 0x44, 0, 0])
    with open(path, "wb") as f:
        f.write(bytes(b) + data.tobytes())


def _open_fds(path):
    target = os.path.realpath(path)
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.path.realpath(f"/proc/self/fd/{fd}") == target:
                out.append(fd)
        except OSError:
            pass
    return out


def _frames(ny=5, nx=6, n=17):
    k = np.arange(n) - (n // 2)
    KX, KY = np.meshgrid(k, k)
    data = np.empty((ny, nx, n, n), np.float32)
    for i in range(ny):
        for j in range(nx):
            data[i, j] = np.exp(-((KX - 0.2 * j) ** 2 + (KY + 0.1 * i) ** 2) / 6.0)
    return data


def test_hspy_4dstem_calibrations_and_com(tmp_path):
    from rsciio.hspy import file_writer

    p = tmp_path / "scan.hspy"
    file_writer(str(p), _signal(_frames(), [("y", 0.02, "nm"), ("x", 0.02, "nm"), ("ky", 0.5, "mrad"),
                                            ("kx", 0.5, "mrad")]))
    sig = readers.read_4dstem(p)
    assert sig.scan_sampling((0, 1)) == pytest.approx(0.2) and sig.k_sampling_mrad() == pytest.approx(0.5)
    assert not _open_fds(p), "the reader left the file open"
    entry = {"path": str(p), "sample": "theta36.87_m3n1", "kind": "4dstem", "energy_kV": 300, "background": "none",
             "com_mode": "whole"}  # Gaussian spots, no disc edge (bright-field mode: tests/test_stem_com.py)
    vf = experiment_field(entry, supercell_length=8.73)
    assert vf.x[1] - vf.x[0] == pytest.approx(0.2)  # scan step from the file (Å)
    com = vf.extra["com"][0]
    np.testing.assert_allclose(com[0, 2], 0.5 * 0.2 * np.arange(6), atol=1e-4)  # detector pixel from the file
    readers.probe_entry(entry)
    # the config disagreeing with the file's calibration is an error, not a silent choice
    with pytest.raises(DataError, match=r"pixel_size 0.2 differs from config key .*pixel_size' = 0.3"):
        experiment_field({**entry, "pixel_size": 0.3}, supercell_length=8.73)
    with pytest.raises(DataError, match=r"k_sampling_mrad"):
        readers.probe_entry({**entry, "k_sampling_mrad": 1.0})


def test_reciprocal_axes_become_mrad(tmp_path):
    from rsciio.hspy import file_writer

    p = tmp_path / "scan.hdf5"  # a HyperSpy file under the generic HDF5 suffix
    file_writer(str(p), _signal(_frames(), [("y", 2.0, "Å"), ("x", 2.0, "Å"), ("ky", 0.1, "1/nm"), ("kx", 0.1, "1/nm")]))
    sig = readers.read_4dstem(p, energy_kV=300)
    lam = readers.wavelength_A(300)
    assert lam == pytest.approx(0.019687, rel=1e-4)  # 300 kV electrons
    assert sig.k_sampling_mrad() == pytest.approx(0.01 * lam * 1e3)  # θ = λ k
    assert sig.scan_sampling((0, 1)) == pytest.approx(2.0)


def test_mrc_image_and_read_image(tmp_path):
    img = np.random.default_rng(0).random((16, 20))
    write_mrc(tmp_path / "haadf.mrc", img, 0.5)
    got, ps = readers.read_image(tmp_path / "haadf.mrc")
    np.testing.assert_allclose(got, img, rtol=1e-6)
    assert ps == pytest.approx(0.5) and got.shape == (16, 20)
    assert not _open_fds(tmp_path / "haadf.mrc")
    np.save(tmp_path / "img.npy", img)
    got, ps = readers.read_image(tmp_path / "img.npy")
    assert ps is None and got.shape == (16, 20)
    with pytest.raises(DataError, match="image must be 2D"):
        np.save(tmp_path / "cube.npy", np.ones((3, 8, 8)))
        readers.read_image(tmp_path / "cube.npy")


def test_berkeley_emd_com_with_calibration(tmp_path):
    from rsciio.emd import file_writer

    p = tmp_path / "com.emd"
    file_writer(str(p), _signal(_com(), [("c", 1, ""), ("y", 0.05, "nm"), ("x", 0.05, "nm")]))
    entry = {"path": str(p), "sample": "theta36.87_m3n1", "kind": "com", "background": "none"}
    vf = experiment_field(entry, supercell_length=8.73)
    assert vf.x[1] - vf.x[0] == pytest.approx(0.5)
    assert not _open_fds(p)


def test_malformed_files_one_error_each(tmp_path):
    from rsciio.hspy import file_writer

    (tmp_path / "bad.dm3").write_bytes(b"\x00\x00\x00\x03" + b"garbage" * 10)
    with pytest.raises(DataError, match=r"bad.dm3: cannot be read as .dm3"):
        readers.read_image(tmp_path / "bad.dm3")
    (tmp_path / "bad.dm4").write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        readers.read_image(tmp_path / "bad.dm4")
    write_mrc(tmp_path / "t.mrc", np.ones((8, 8)) + np.eye(8), 1.0)
    raw = (tmp_path / "t.mrc").read_bytes()
    (tmp_path / "trunc.mrc").write_bytes(raw[:1024 + 100])  # truncated data block
    with pytest.raises(DataError, match=r"trunc.mrc: cannot be read as .mrc"):
        readers.read_image(tmp_path / "trunc.mrc")
    p = tmp_path / "scan.hspy"
    file_writer(str(p), _signal(_frames(), [("y", 0.02, "nm"), ("x", 0.02, "nm"), ("ky", 0.5, "mrad"),
                                            ("kx", 0.5, "mrad")]))
    (tmp_path / "trunc.hspy").write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(DataError, match=r"trunc.hspy: cannot be read as .hspy"):
        readers.read_4dstem(tmp_path / "trunc.hspy")
    with pytest.raises(DataError, match="no dataset with 3 dimensions"):  # wrong rank
        readers.read_com(p)
    # uncalibrated: a plain array with no pixel_size in the config
    np.save(tmp_path / "com.npy", _com())
    with pytest.raises(DataError, match=r"no pixel_size calibration; set config key 'analysis.experiment\[0\].pixel_size'"):
        experiment_field({"path": str(tmp_path / "com.npy"), "sample": "s", "kind": "com"}, 8.73)
    np.save(tmp_path / "scan.npy", _frames())
    with pytest.raises(DataError, match="no k_sampling_mrad calibration"):
        readers.probe_entry({"path": str(tmp_path / "scan.npy"), "kind": "4dstem", "pixel_size": 0.2})
    with pytest.raises(DataError, match="dtype"):
        np.save(tmp_path / "str.npy", np.array([["a"] * 8] * 8))
        readers.read_image(tmp_path / "str.npy")


def test_scan_rotation_in_file_must_be_confirmed(tmp_path):
    sig = readers.Signal(tmp_path / "x.emd", _com(), [readers.Axis("c", 2, 1.0), readers.Axis("y", 24, 0.5, 0, "Å"),
                                                      readers.Axis("x", 30, 0.5, 0, "Å")], rotation_deg=12.0)
    import twistox.analysis.experiment as ex

    orig = readers.read_com
    try:
        readers.read_com = lambda *a, **k: sig
        with pytest.raises(DataError, match=r"scan rotation of 12 deg; set config key .*rotation_deg"):
            ex.experiment_field({"path": str(sig.path), "sample": "s"}, 8.73)
        vf = ex.experiment_field({"path": str(sig.path), "sample": "s", "rotation_deg": 12.0}, 8.73)
        assert vf.vx.shape == (NY, NX)
    finally:
        readers.read_com = orig


def test_velox_rotation_is_read():
    assert readers._rotation({"Scan": {"ScanRotation": np.pi / 6}}) == pytest.approx(30.0)
    assert readers._rotation({"ImageList": {"a": {"ImageTags": {"DigiScan": {"Rotation": 7.5}}}}}) == 7.5
    assert readers._rotation({}) is None


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
    com = com_from_4dstem_file(p, 0.5, mode="whole")  # Gaussian spots, no disc edge
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
    (tmp_path / "broken.emd").write_bytes(b"not an emd file")
    with pytest.raises(DataError, match="cannot be read as .emd"):
        load_com(tmp_path / "broken.emd")
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


def test_xarray_zarr_store_is_calibrated_from_its_coordinates(tmp_path):
    import xarray as xr

    from twistox.core.io import write_dataset

    com = _com()
    ds = xr.Dataset({"com": (("xy", "y", "x"), com, {"units": "mrad"})},
                    coords={"xy": ["x", "y"], "y": ("y", np.arange(NY) * 0.25, {"units": "Å"}),
                            "x": ("x", np.arange(NX) * 0.25, {"units": "Å"})})
    p = write_dataset(ds, tmp_path / "stem.zarr")
    sig = readers.read_com(p, key="com")
    np.testing.assert_allclose(sig.data, com)
    assert sig.scan_sampling((1, 2)) == pytest.approx(0.25)
    vf = experiment_field({"path": str(p), "key": "com", "sample": "s", "background": "none"}, 8.73)
    assert vf.x[1] - vf.x[0] == pytest.approx(0.25)
