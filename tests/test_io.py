"""Atomic Zarr writes with provenance."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import xarray as xr

from twistox.core.io import atoms_from_dataset, read_dataset, structure_dataset, write_dataset
from twistox.supercell.lattice import nearest_csl
from twistox.supercell.builder import BilayerSpec, build_bilayer


def test_roundtrip_and_provenance(tmp_path):
    ds = xr.Dataset({"f": (("y", "x"), np.arange(12.0).reshape(3, 4), {"units": "Å"})}, attrs={"m": np.int64(3)})
    p = write_dataset(ds, tmp_path / "a.zarr", config={"seed": 1, "twist": {"angles_deg": [5.0]}}, stage="t", t0=0.0)
    back = read_dataset(p)
    np.testing.assert_array_equal(back["f"].values, ds["f"].values)
    assert back["f"].attrs["units"] == "Å"
    for key in ("twistox_version", "git_commit", "config", "package_versions", "wall_time_s", "host"):
        assert key in back.attrs
    assert json.loads(back.attrs["config"])["twist"]["angles_deg"] == [5.0]
    assert "numpy" in json.loads(back.attrs["package_versions"])
    assert not [q for q in os.listdir(tmp_path) if q.startswith(".")]


def test_overwrite_replaces_whole_store(tmp_path):
    p = tmp_path / "a.zarr"
    write_dataset(xr.Dataset({"old": ("x", [1.0])}), p)
    write_dataset(xr.Dataset({"new": ("x", [2.0])}), p)
    back = read_dataset(p)
    assert "new" in back and "old" not in back


def test_killed_writer_leaves_no_complete_looking_store(tmp_path):
    # a writer killed in the middle of to_zarr leaves only a hidden temporary sibling
    code = textwrap.dedent(f"""
        import os, signal, numpy as np, xarray as xr
        import twistox.core.io as tio
        real = xr.Dataset.to_zarr
        def slow(self, store, **kw):
            real(self.isel(x=slice(0, 1)), store, **kw)
            os.kill(os.getpid(), signal.SIGKILL)
        xr.Dataset.to_zarr = slow
        tio.write_dataset(xr.Dataset({{"f": ("x", np.arange(1000.0))}}), {str(tmp_path / "b.zarr")!r})
    """)
    out = subprocess.run([sys.executable, "-c", code])
    assert out.returncode == -signal.SIGKILL
    assert not (tmp_path / "b.zarr").exists()


def test_structure_roundtrip():
    atoms = build_bilayer(nearest_csl(22.62), BilayerSpec())
    ds = structure_dataset(atoms)
    assert ds.attrs["sigma"] == 13 and ds["positions"].attrs["units"] == "Å"
    back = atoms_from_dataset(ds)
    np.testing.assert_allclose(back.positions, atoms.positions)
    np.testing.assert_array_equal(back.arrays["plane"], atoms.arrays["plane"])
    assert back.info["interface_planes"] == atoms.info["interface_planes"]


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    stale = tmp_path / ".c.zarr.tmp-deadbeef"
    stale.mkdir()
    (stale / "junk").write_text("x")
    write_dataset(xr.Dataset({"f": ("x", [1.0])}), tmp_path / "c.zarr")
    assert not stale.exists() and (tmp_path / "c.zarr").exists()
