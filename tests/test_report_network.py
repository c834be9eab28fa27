"""summary.csv network columns (issue 12 item 7) from strain.zarr and vortices.zarr attrs, with known values."""

import json

import numpy as np
import xarray as xr

from twistox.core.io import read_dataset, write_dataset
from twistox.report.stage import NETWORK_COLUMNS, network_row


def _row(d):
    """network_row on what a sample directory holds, read back as sample_row reads it."""
    st, an = d / "strain.zarr", d / "vortices.zarr"
    return network_row(read_dataset(st) if st.exists() else None, read_dataset(an) if an.exists() else None)


def test_network_row_reads_interface_periods_cages_and_site_registry(tmp_path):
    d = tmp_path / "theta6.73_m17n1"
    d.mkdir()
    assert all(np.isnan(v) for v in _row(d).values())
    # as the strain stage writes them: per-plane periods a variable, the interface pair's period a scalar attr
    st = xr.Dataset({"max_dz": ("all_planes", [0.2, 0.75, 0.5, 0.1]),
                     "network_period": ("plane", [15.0, 23.4, 33.1, 46.7])}, coords={"plane": [0, 1, 2, 3]})
    st.attrs.update(network_period_eps_xy=33.1, interface_planes=[1, 2], network_period_twist=33.05,
                    cage_changed_total=0)
    write_dataset(st, d / "strain.zarr")
    reg = {"source": "interlayer_twist", "domain_to_coincidence_A": [0.4, 1.0],
           "domain_to_coincidence_max_over_lambda": 1.0 / 33.25, "twist_at_domain_deg": [0.5, 1.5],
           "twist_at_node_deg": [16.0, 18.0]}
    write_dataset(xr.Dataset(attrs={"site_registry": json.dumps(reg)}), d / "vortices.zarr")
    row = _row(d)
    assert set(row) == set(NETWORK_COLUMNS)
    assert row["network_period_eps_xy_interface_A"] == 33.1
    assert row["network_period_twist_A"] == 33.05 and row["cage_changed_total"] == 0 and row["max_dz_A"] == 0.75
    assert row["domain_to_aa_max_A"] == 1.0 and row["twist_domain_mean_deg"] == 1.0
    assert row["twist_node_mean_deg"] == 17.0
    # sites from the coincidence geometry are their own reference: no registry numbers
    write_dataset(xr.Dataset(attrs={"site_registry": json.dumps({**reg, "source": "coincidence geometry"})}),
                  d / "vortices.zarr")
    assert np.isnan(_row(d)["domain_to_aa_max_A"])
