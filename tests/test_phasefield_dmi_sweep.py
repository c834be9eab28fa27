"""Chiral-coupling (electric DMI) sweep of issue 19: library function, report columns and the optional rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from conftest import PAPER_CONFIG, TOY_CONFIG, dry_run_jobs, run_snakemake
from twistox.core.config import ConfigError
from twistox.core.io import write_dataset
from twistox.phasefield import figures, sweep
from twistox.phasefield.settings import validated
from twistox.report.stage import dmi_sweep_row

torch.set_num_threads(1)
A_LAT, LAM = 3.905, 20.0
THETA = math.degrees(2 * math.asin(A_LAT / (2 * LAM)))  # b / lambda = theta: a 2 x 2 network of 20 Å cells


def _strain(theta: float = THETA) -> xr.Dataset:
    return xr.Dataset(attrs={"supercell_length": 2 * LAM, "layer_angles_deg": [-theta / 2, theta / 2],
                             "moire_period": LAM, "a": A_LAT, "frame_angle_deg": 0.0, "theta_deg": theta})


def _pf(values) -> dict:
    return validated({"thickness_A": 24.0, "nz": 8, "dxy_A": 2.0, "residual_tol_V_per_m": 1000.0, "max_steps": 150,
                      "log_every": 1000, "dmi_sweep": {"values": values},
                      "eigenstrain": {"source": "analytic_network", "profile": "elastic", "fourier_order": 4}})


@pytest.fixture(scope="module")
def tiny():
    """20² x 8 grid, 4 nodes; D = 0, the estimate G θ/a = 0.050, 0.1 and 0.3 J m²/C² (~15 s)."""
    return sweep.run_sample(_pf([0.1, 0.3]), _strain(), "cpu", seed=0)


def test_tiny_sweep_numbers(tiny):
    ds = tiny
    D = ds["dmi"].values
    est = 1e-10 * math.radians(THETA) / (A_LAT * 1e-10)            # G θ / a, κ = 1
    assert ds.attrs["dmi_estimate"] == pytest.approx(est, rel=1e-12)
    np.testing.assert_allclose(D, sorted([0.0, est, 0.1, 0.3]))   # D = 0 and the estimate are always added
    for k, _, _ in sweep.SCALARS:
        assert np.isfinite(ds[k].values).all(), k
    assert np.isfinite(ds["energy_terms"].values).all() and np.isfinite(ds["P_interface"].values).all()
    f = ds["interface_majority_fraction"].values
    assert ((f >= 0.5) & (f <= 1)).all()
    # identical layers with top eps = -bottom eps: the layer-swapping C2 axis maps CW below onto CCW above and
    # f_DMI is invariant under it, so the fraction is exactly 1/2 and the net circulation vanishes at every D
    assert (f == 0.5).all()
    np.testing.assert_allclose(ds["circ_net_interface"], 0, atol=1e-6)
    np.testing.assert_allclose(ds["circ_projected"], 0, atol=1e-6)
    assert ds.attrs["dmi_threshold"] == "none found"
    # what the term does select: a radial part of one sign at the nodes (source for sign(θ) D > 0), growing with D
    rad = 0.5 * (ds["radial_bottom"] + ds["radial_top"]).values
    assert (np.diff(rad) > 0).all() and rad[-1] > 0.2
    Fd = ds["energy_terms"].sel(term="dmi").values
    assert Fd[0] == 0 and (Fd[1:] < 0).all()
    assert (ds["steps"].values < 150).all()   # every D relaxed to the tolerance


def test_tiny_sweep_figures_and_report_row(tiny, tmp_path):
    assert figures.dmi_map_values(tiny) == {"reference": 0.0, "estimate": pytest.approx(tiny.attrs["dmi_estimate"])}
    figures.dmi_handedness(tiny, tmp_path / "h.png")
    figures.dmi_maps(tiny, tmp_path / "m.png")
    assert (tmp_path / "h.png").stat().st_size > 10_000 and (tmp_path / "m.png").stat().st_size > 10_000
    assert np.isnan(dmi_sweep_row(tmp_path)["pf_dmi_estimate"])          # no artifact: NaN, never estimated
    write_dataset(tiny, tmp_path / "phasefield_dmi_sweep.zarr")
    row = dmi_sweep_row(tmp_path)
    assert row["pf_dmi_threshold"] == "none found"
    assert row["pf_dmi_majority_fraction_D0"] == 0.5
    w = tiny["E_defects_nodes"].values.mean(1)
    assert row["pf_dmi_Eproj_node_winding_D0"] == w[0] and row["pf_dmi_Eproj_node_winding_Dmax"] == w[-1]


def test_threshold_definition():
    df = lambda f: pd.DataFrame({"dmi": [0, 0.1, 0.2, 0.3], "interface_majority_fraction": f})  # noqa: E731
    assert sweep.single_handedness_threshold(df([0.5, 0.5, 1.0, 1.0])) == 0.2
    assert sweep.single_handedness_threshold(df([0.5, 1.0, 0.5, 1.0])) == 0.3    # must hold for every larger D
    assert sweep.single_handedness_threshold(df([0.5, 0.5, 0.75, 0.5])) is None
    assert sweep.single_handedness_threshold(df([1.0, 1.0, 1.0, 1.0])) is None  # single-handed already at D = 0


def test_node_rotation_of_sigma265_network():
    """Relative lattice rotation at a node of the Σ265 network (σ = 2 Å walls, N = 6): 0.64 rad (doc's estimate);
    infinitely narrow walls would give 2 b Σ_{m<=N} 1 / λ = 2 θ N."""
    lam = A_LAT / (2 * math.sin(math.atan(1 / 23)))
    assert sweep.node_rotation_rad(lam, A_LAT, 2.0, 1.0, 6) == pytest.approx(0.639, abs=2e-3)
    assert sweep.node_rotation_rad(lam, A_LAT, 1e-6, 1.0, 6) == pytest.approx(2 * 6 * A_LAT / lam, rel=1e-9)


def test_bad_input_is_a_config_error():
    with pytest.raises(ConfigError, match="phasefield.dmi_sweep.values"):
        sweep.run_sample(_pf([]), _strain(), "cpu", 0)
    with pytest.raises(ConfigError, match="untwisted"):
        sweep.run_sample(_pf([0.1]), _strain(0.0), "cpu", 0)


@pytest.mark.slow  # two Snakemake dry runs
@pytest.mark.parametrize("configfile, expected", [(PAPER_CONFIG, True), (TOY_CONFIG, False)])
def test_rule_only_when_enabled(configfile, expected, tmp_path):
    p = run_snakemake("-n", "--configfile", configfile, workdir=tmp_path / "w", timeout=110)
    jobs = [j for j in dry_run_jobs(p.stdout) if j.rule == "phasefield_dmi_sweep"]
    assert bool(jobs) is expected
