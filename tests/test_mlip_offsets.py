"""metrics.json ``by_config_type`` (twistox.mlip.offsets): per-type errors and the share of the energy
error that is a constant offset per type, on fake predictions of known error."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from ase import Atoms

from twistox.mlip.offsets import by_config_type, category_errors, offset_share

KINDS = (("bulk", 5), ("bilayer", 10), ("twisted_path", 50))


def _frames(rng, per_kind: int = 6) -> list[Atoms]:
    out = []
    for kind, n in KINDS:
        for _ in range(per_kind):
            at = Atoms("O" * n, positions=rng.random((n, 3)) * 5, cell=[5, 5, 5], pbc=True)
            at.info.update(config_type=kind, REF_energy=float(rng.normal() * n))
            at.arrays["REF_forces"] = rng.normal(size=(n, 3))
            out.append(at)
    return out


def _pred(frames, de_meV: list[float], df: float = 0.0) -> dict:
    """Predictions off by de_meV[i] meV/atom in energy and by +df eV/Å on every force component."""
    return {"energy": [a.info["REF_energy"] + d * 1e-3 * len(a) for a, d in zip(frames, de_meV)],
            "forces": [a.arrays["REF_forces"] + df for a in frames]}


def test_constant_offset_per_type_is_recovered_and_carries_all_the_error():
    rng = np.random.default_rng(0)
    frames = _frames(rng)
    offset = {"bulk": 40.0, "bilayer": -10.0, "twisted_path": -80.0}  # like the kpt 1.0 labels (docs/stages/mlip.md)
    pred = _pred(frames, [offset[a.info["config_type"]] for a in frames], df=0.05)
    cat = category_errors(frames, pred)
    assert list(cat) == ["bilayer", "bulk", "twisted_path"]
    for k, v in cat.items():
        assert v["energy_mean_signed_meV_per_atom"] == pytest.approx(offset[k])
        assert v["energy_mae_meV_per_atom"] == pytest.approx(abs(offset[k]))
        assert v["forces_mae_meV_per_A"] == pytest.approx(50.0)
        assert v["n_frames"] == 6 and v["n_atoms"] == 6 * dict(KINDS)[k]
    share, spread = offset_share(frames, pred)
    assert share == pytest.approx(1.0) and spread == pytest.approx(120.0)


def test_unbiased_noise_has_a_small_offset_share():
    rng = np.random.default_rng(1)
    frames = _frames(rng, per_kind=40)
    pred = _pred(frames, list(rng.normal(0.0, 20.0, len(frames))))
    share, spread = offset_share(frames, pred)
    assert share < 0.1  # expected ~ n_types / n_frames = 0.025
    assert spread < 20.0


def test_sign_is_prediction_minus_label():
    rng = np.random.default_rng(2)
    frames = _frames(rng, per_kind=1)
    cat = category_errors(frames, _pred(frames, [5.0, 5.0, 5.0]))
    assert all(v["energy_mean_signed_meV_per_atom"] == pytest.approx(5.0) for v in cat.values())


def test_block_warns_only_when_offsets_dominate(caplog):
    rng = np.random.default_rng(3)
    frames = _frames(rng)
    log = logging.getLogger("twistox.test_offsets")
    biased = _pred(frames, [{"bulk": 30.0, "bilayer": 0.0, "twisted_path": -30.0}[a.info["config_type"]]
                            + d for a, d in zip(frames, rng.normal(0.0, 2.0, len(frames)))])
    with caplog.at_level(logging.INFO, logger=log.name):
        b = by_config_type(frames, biased, frames[:3], _pred(frames[:3], [0.0] * 3), log=log)
    assert b["offsets_dominate"] and b["train_offset_share"] > 0.9
    assert b["train_offset_spread_meV_per_atom"] == pytest.approx(60.0, abs=3.0)
    assert any(r.levelno == logging.WARNING and "offset per config_type" in r.message for r in caplog.records)
    assert json.loads(json.dumps(b, allow_nan=False)) == b

    caplog.clear()
    small = _pred(frames, [{"bulk": 3.0, "bilayer": 0.0, "twisted_path": -3.0}[a.info["config_type"]] for a in frames])
    with caplog.at_level(logging.INFO, logger=log.name):
        b = by_config_type(frames, small, [], {"energy": [], "forces": []}, log=log)
    assert not b["offsets_dominate"] and b["test"] == {}  # share 1 but 6 meV/atom apart: below the spread floor
    assert not any(r.levelno == logging.WARNING for r in caplog.records)

    exact = by_config_type(frames, _pred(frames, [0.0] * len(frames)), [], {})
    assert exact["train_offset_share"] is None and not exact["offsets_dominate"]


def test_parity_figure_draws_the_offsets_of_both_splits():
    from twistox.mlip.figures import parity_figure

    rng = np.random.default_rng(4)
    frames = _frames(rng, per_kind=2)
    offset = {"bulk": 40.0, "bilayer": -10.0, "twisted_path": -80.0}
    pred = _pred(frames, [offset[a.info["config_type"]] for a in frames])
    fig = parity_figure(frames, pred, "t", by_config_type(frames, pred, frames[:2], _pred(frames[:2], [5.0, 5.0])))
    ax = fig.axes[2]
    heights = [p.get_height() for p in ax.patches]
    # train bars in sorted type order (bilayer, bulk, twisted_path), then test (bulk only: the others are NaN)
    assert heights[:3] == pytest.approx([-10.0, 40.0, -80.0])
    assert heights[4] == pytest.approx(5.0) and np.isnan(heights[3]) and np.isnan(heights[5])
    assert len(parity_figure(frames, pred).axes) == 2
