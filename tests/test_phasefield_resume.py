"""Phase-field resume is exact (issue 14 item 5): a relaxation resumed from a mid-run checkpoint
gives bit-identical P, u, phi and energy history to the uninterrupted run, and a checkpoint is
written at least every ``$TWISTOX_CHECKPOINT_INTERVAL_S`` seconds even between the
``checkpoint_every`` steps (what lets the workflow kill-and-resume test catch a short run)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from twistox.core.checkpoint import INTERVAL_ENV, Checkpoint
from twistox.phasefield import Grid, Material, PhaseFieldSolver, RelaxSettings, SlabEnergy, alpha1_pertsev
from twistox.phasefield.solver import CKPT_NAME

torch.set_num_threads(1)
# the tests' SrTiO3 at 300 K (tests/test_phasefield.py)
STO = Material(alpha1=alpha1_pertsev(300.0), alpha11=1.70e9, alpha12=1.37e9, G=1e-10, c11=3.36e11, c12=1.07e11,
               c44=1.27e11, Q11=0.066, Q12=-0.0135, Q44=0.0096, f11=2.0, f12=1.0, f44=1.0, eps_b=10.0)


def _solver(max_steps: int, method: str, checkpoint_every: int = 5) -> PhaseFieldSolver:
    """Sigma-like 12 x 12 x 8 slab with a shear + normal eigenstrain texture and opposite layer twists."""
    L, n, nz = 1.2e-9, 12, 8
    g = Grid(L=L, n=n, nz=nz, thickness=3.2e-9, interface_cell=4)
    x, k = g.x_centres(), 2 * math.pi / L
    eig = torch.zeros(3, 3, nz, n, n, dtype=torch.float64)
    eig[0, 1] = eig[1, 0] = 0.01 * (torch.cos(k * x)[None, :] + torch.cos(k * x)[:, None])[None]
    eig[0, 0] = 0.005 * torch.sin(k * x)[None, None, :]
    return PhaseFieldSolver(SlabEnergy(g, (STO, STO), (-10.0, 10.0), eig),
                            RelaxSettings(dt=10, residual_tol_V_per_m=1e-9, max_steps=max_steps,
                                          checkpoint_every=checkpoint_every, method=method))


P0 = 5e-5 * (2 * torch.rand(3, 8, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) - 1)


@pytest.mark.parametrize("method", ["cg", "tdgl"])
def test_resume_is_bit_identical(tmp_path, method):
    """Old code: ~1e-8 relative differences (the preconditioner's beta was updated incrementally with
    every dt change, and the loaded state was re-equilibrated)."""
    ref = _solver(30, method).relax(P0)
    for stop in (5, 20):  # the job was killed after the checkpoint of step `stop`
        ck = tmp_path / f"{method}{stop}"
        _solver(stop, method).relax(P0, checkpoint=ck, fingerprint="abc")
        r = _solver(30, method).relax(P0, checkpoint=ck, fingerprint="abc")
        assert r.resumed_from == stop and r.steps == ref.steps
        for name in ("P", "u", "phi", "eps_bar"):
            assert torch.equal(getattr(r, name), getattr(ref, name)), (stop, name)
        assert np.array_equal(r.energy_terms, ref.energy_terms) and np.array_equal(r.residual, ref.residual)


def test_checkpoint_interval_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "0")
    assert Checkpoint(tmp_path, interval_s=120.0).interval_s == 0.0  # the environment overrides the config
    ck = tmp_path / "pf"
    _solver(3, "cg", checkpoint_every=1000).relax(P0, checkpoint=ck, fingerprint="abc")  # no step-count save
    state = Checkpoint(ck, fmt="pt").load(CKPT_NAME, key="abc")
    assert state is not None and state["step"] == 3
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(ValueError, match=INTERVAL_ENV):
        Checkpoint(tmp_path)
    monkeypatch.delenv(INTERVAL_ENV)
    assert Checkpoint(tmp_path).interval_s == 60.0 and Checkpoint(tmp_path, interval_s=5).interval_s == 5.0
