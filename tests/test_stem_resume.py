"""Resuming the STEM stage is exact: a plan-view part resumed from its per-sub-simulation
checkpoints (in a new process, as after a killed job) gives the bit-identical artifact of a run
that was never interrupted, also after the Poisson dose noise (which turns a last-bit change of
the simulated signal into whole-count flips).

What differed before (issue 14 item 5) was per-process state: abTEM planned its FFTs with
FFTW_MEASURE, which picks among algorithms (that round differently) by timing them, and FFTW
reuses earlier wisdom. So the resumed part runs in a new process, and a second test pins the
mechanism: the simulated signal must not depend on FFTW wisdom already in the process.
"""

from __future__ import annotations

import copy
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from twistox.core.io import read_dataset

TESTS = Path(__file__).resolve().parent
VOLATILE_ATTRS = {"wall_time_s", "created_utc", "host", "platform", "git_commit"}  # git_commit: a commit made mid-test


def _config() -> dict:
    """Tiny plan-view config: Sigma5 cell, 2 foci, 9 x 9 probes, dose noise on."""
    from test_stem import base_config

    return copy.deepcopy(base_config(
        structures=["rigid"], sample={"thickness_nm": 0.0},
        planview={"focus": ["surface", "interface"], "potential_sampling": 0.06, "scan_sampling": 1.0,
                  "detector": {"step_mrad": 4.0, "outer_mrad": 92.0},
                  "ranges": {"haadf": [60, 92], "laadf": [32, 92]}, "tiles": 2},
        postprocess={"interpolate_sampling": 0.4, "blur_sigma": 0.3, "dose": 1e5})["stem"])


def _planview(ckpt: Path, out: Path) -> None:
    """The plan-view part as the rule runs it (run_part), with checkpoints in ``ckpt``, written to ``out``."""
    from test_stem import bilayer

    from twistox.core.io import structure_dataset, write_dataset
    from twistox.stem.stage import run_part

    ds = run_part("planview", structure_dataset(bilayer(cells=(1, 1))), _config(), "cpu", 1, 1, str(ckpt),
                  logging.getLogger("test"))
    write_dataset(ds, out)


def _planview_new_process(ckpt: Path, out: Path) -> None:
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); from pathlib import Path; "
            f"from test_stem_resume import _planview; _planview(Path({str(ckpt)!r}), Path({str(out)!r}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]


def _assert_identical(a: Path, b: Path) -> None:
    da, db = read_dataset(a), read_dataset(b)
    assert set(da.variables) == set(db.variables)
    for name in da.variables:
        x, y = da[name].values, db[name].values
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), f"{name}: {np.count_nonzero(x != y)} of {x.size} values differ"
        assert da[name].attrs == db[name].attrs, name
    strip = lambda d: {k: v for k, v in d.items() if k not in VOLATILE_ATTRS}  # noqa: E731
    assert strip(da.attrs) == strip(db.attrs)


def _stores(ckpt: Path) -> dict[str, int]:
    return {p.name: max(f.stat().st_mtime_ns for f in p.rglob("*")) for p in sorted(ckpt.glob("*.zarr"))}


def test_planview_resume_is_bit_identical(tmp_path):
    ref_ck, ref = tmp_path / "ck_ref", tmp_path / "ref.zarr"
    _planview(ref_ck, ref)  # uninterrupted: empty checkpoint directory, every focus computed
    stores = _stores(ref_ck)
    assert sorted(stores) == ["planview-rigid-0-c0.zarr", "planview-rigid-1-c0.zarr"]
    assert float(read_dataset(ref)["haadf"].std()) > 0  # non-flat, noisy images

    # killed after the first focus: its store is on disk, the second is not
    ck = tmp_path / "ck_killed"
    shutil.copytree(ref_ck, ck)
    shutil.rmtree(ck / "planview-rigid-1-c0.zarr")
    _planview_new_process(ck, tmp_path / "resumed.zarr")  # a new job, as after the kill
    after = _stores(ck)
    assert after["planview-rigid-0-c0.zarr"] == stores["planview-rigid-0-c0.zarr"], "finished focus recomputed"
    assert "planview-rigid-1-c0.zarr" in after
    _assert_identical(ref, tmp_path / "resumed.zarr")

    # killed after the last sub-simulation, before the artifact was written: nothing is recomputed
    _planview(ref_ck, tmp_path / "rerun.zarr")
    assert _stores(ref_ck) == stores
    _assert_identical(ref, tmp_path / "rerun.zarr")


def test_planview_signal_does_not_depend_on_fftw_wisdom():
    """configure_abtem makes the simulation a function of its inputs only: FFTW_ESTIMATE plans and
    no wisdom inherited from earlier (MEASURE-planned) transforms in the process. Fails with
    abTEM's default FFTW_MEASURE (the MEASURE plans differ from ESTIMATE ones and round differently)."""
    import abtem
    import pyfftw
    from test_stem import bilayer, probe

    from twistox.stem.multislice import configure_abtem
    from twistox.stem.planview import planview_radial

    atoms = bilayer(cells=(1, 1))
    s = probe(potential_sampling=0.06, scan_sampling=1.5)  # 150 px: MEASURE plans differ from ESTIMATE (128 px: not)

    def signal():
        return planview_radial(atoms, s, 0.0, 92.0, 4.0).values

    abtem.config.set({"fft": "fftw", "fftw.planning_effort": "FFTW_ESTIMATE", "fftw.threads": 1,
                      "precision": "float32", "device": "cpu"})
    pyfftw.forget_wisdom()
    clean = signal()  # estimate plans from a clean planner
    abtem.config.set({"fftw.planning_effort": "FFTW_MEASURE"})
    measured = signal()  # leaves MEASURE wisdom for exactly these transforms
    configure_abtem("cpu", "float32", 1)
    assert np.array_equal(signal(), clean)
    np.testing.assert_allclose(measured, clean, rtol=1e-5, atol=1e-9)  # same physics, other rounding only
