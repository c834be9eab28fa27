"""The phase field refuses a grid that cannot fit the job's memory, before it builds anything (issue 17 item 4)."""

from __future__ import annotations

import pytest
from test_phasefield import _pf_config, write_synthetic_strain

from twistox.core.config import ConfigError
from twistox.phasefield import stage
from twistox.phasefield.memory import phasefield_memory_mb


def test_run_refuses_grid_over_budget_before_building(tmp_path, monkeypatch):
    pf = _pf_config(thickness_A=24.0, nz=8, dxy_A=0.8)
    strain = write_synthetic_strain(tmp_path / "strain.zarr")

    def boom(*a, **k):
        raise AssertionError("the model was built before the memory check")

    monkeypatch.setattr(stage, "build_model", boom)
    with pytest.raises(ConfigError, match=r"resources\.phasefield\.mem_mb"):
        stage.run(pf, strain, "cpu", seed=1, mem_budget_mb=100.0)


def test_memory_check_uses_the_grid_the_run_builds(tmp_path):
    pf = _pf_config(thickness_A=24.0, nz=8, dxy_A=0.8)
    strain = write_synthetic_strain(tmp_path / "strain.zarr")
    _, grid, _ = stage.build_eigenstrain(pf, strain)
    assert stage.check_memory(pf, strain, None) == pytest.approx(phasefield_memory_mb(grid.n, grid.nz))
    assert stage.check_memory(pf, strain, 1e6) == pytest.approx(phasefield_memory_mb(grid.n, grid.nz))
