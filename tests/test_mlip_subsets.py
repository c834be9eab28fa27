"""metrics.json ``twisted`` block (twistox.mlip.subsets) with fake predictions of known error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms

from twistox.mlip.metrics import error_metrics
from twistox.mlip.subsets import ERROR_KEYS, subset_metrics, twisted_block


def _frame(kind: str, n: int, rng) -> Atoms:
    at = Atoms("O" * n, positions=rng.random((n, 3)) * 5, cell=[5, 5, 5], pbc=True)
    at.info.update(config_type=kind, REF_energy=float(rng.normal()))
    at.arrays["REF_forces"] = rng.normal(size=(n, 3))
    return at


def test_twisted_block_known_errors():
    rng = np.random.default_rng(0)
    frames = [_frame(k, n, rng) for k, n in
              (("bulk", 5), ("twisted_rigid", 50), ("bilayer", 10), ("twisted_path", 50), ("twisted_carved", 90))]
    # exact predictions except: twisted frames energy off by +2 meV/atom, forces off by 0.1 eV/Å on every component
    pred = {"energy": [], "forces": []}
    for a in frames:
        tw = a.info["config_type"].startswith("twisted")
        pred["energy"].append(a.info["REF_energy"] + (0.002 * len(a) if tw else 0.5))
        pred["forces"].append(a.arrays["REF_forces"] + (0.1 if tw else 3.0))
    m = subset_metrics(frames, pred)
    assert m["n_test"] == 3 and m["n_test_atoms"] == 190
    assert m["config_types"] == ["twisted_carved", "twisted_path", "twisted_rigid"]
    assert m["energy_mae_meV_per_atom"] == pytest.approx(2.0) and m["energy_rmse_meV_per_atom"] == pytest.approx(2.0)
    assert m["forces_mae_meV_per_A"] == pytest.approx(100.0) and m["forces_rmse_meV_per_A"] == pytest.approx(100.0)
    assert set(ERROR_KEYS) <= set(m) and set(ERROR_KEYS) == set(error_metrics(frames, pred))  # same keys as the top level
    # all frames mix in the 3 eV/Å errors of the others: (190 x 0.1 + 15 x 3) / 205 eV/Å
    assert error_metrics(frames, pred)["forces_mae_meV_per_A"] == pytest.approx((190 * 100 + 15 * 3000) / 205)


def test_twisted_block_empty_is_null_json():
    rng = np.random.default_rng(1)
    frames = [_frame("bulk", 5, rng), _frame("slab", 10, rng)]
    m = twisted_block([], frames, "first")
    assert m["n_test"] == 0 and all(m[k] is None for k in ERROR_KEYS)
    assert json.loads(json.dumps(m, allow_nan=False)) == m  # valid JSON (no NaN)


def test_twisted_block_uses_the_evaluated_model(monkeypatch):
    """Given predictions of the loaded model are reused; without them the twisted frames alone are predicted."""
    import twistox.mlip.calculator as calcmod
    from ase.calculators.lj import LennardJones

    rng = np.random.default_rng(2)
    frames = [_frame("bulk", 5, rng), _frame("twisted_path", 6, rng), _frame("twisted_rigid", 4, rng)]
    mean_pred = {"energy": [a.info["REF_energy"] for a in frames], "forces": [a.arrays["REF_forces"] for a in frames]}
    m = twisted_block([], frames, "mean", test_pred=mean_pred)
    assert m["n_test"] == 2 and m["energy_mae_meV_per_atom"] == 0.0 and m["forces_mae_meV_per_A"] == 0.0
    seen = []

    def fake_load(paths, mode, device="cpu", **kw):
        seen.append(mode)
        return LennardJones(sigma=1.0, epsilon=0.0, rc=2.0)  # zero energy and forces

    monkeypatch.setattr(calcmod, "load_calculator", fake_load)
    m = twisted_block(["m0.model"], frames, "first")
    assert seen == ["first"] and m["n_test"] == 2 and m["n_test_atoms"] == 10
    e_ref = np.array([frames[1].info["REF_energy"] / 6, frames[2].info["REF_energy"] / 4])
    assert m["energy_mae_meV_per_atom"] == pytest.approx(np.abs(e_ref).mean() * 1e3)
