"""Fine-tuning from a foundation MACE model (twistox.mlip.foundation), tested with a model this
pipeline trains: the fine-tuned members take the foundation's architecture and start from its weights."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.io import write

from twistox.core.config import ConfigError, with_schema_defaults
from twistox.dft.trainset import bulk_cell, rattle
from twistox.mlip.foundation import foundation_args
from twistox.mlip.training import TrainSettings, mace_args, train_committee
from twistox.supercell.builder import Perovskite


def _frames(n, rng):
    out = []
    for _ in range(n):
        at = rattle(bulk_cell(Perovskite(), (2, 1, 1)), rng, 0.06)
        at.calc = LennardJones(sigma=2.0, epsilon=0.05, rc=5.0, smooth=True)  # stands in for DFT labels
        at.info.update(REF_energy=at.get_potential_energy(), config_type="bulk")
        at.arrays["REF_forces"] = at.get_forces()
        at.calc = None
        out.append(at)
    return out


def test_foundation_args_and_schema(tmp_path):
    assert foundation_args(None) == [] and with_schema_defaults("mlip", {})["foundation_model"] is None
    with pytest.raises(ConfigError, match="mlip.foundation_model.*code"):
        foundation_args(tmp_path / "missing.model")
    f = tmp_path / "f.model"
    f.write_bytes(b"x")
    args = mace_args(TrainSettings(foundation_model=str(f)), "m", tmp_path / "t.xyz", tmp_path, 0, "cpu", 2, False)
    i = args.index("--foundation_model")
    assert args[i + 1] == str(f.resolve()) and args[args.index("--multiheads_finetuning") + 1] == "False"


def test_fine_tune_from_a_model_this_pipeline_trained(tmp_path):
    pytest.importorskip("mace")
    import torch

    rng = np.random.default_rng(0)
    frames = _frames(12, rng)
    write(tmp_path / "train.extxyz", frames, format="extxyz")
    base = TrainSettings(committee_size=1, num_channels=8, num_interactions=1, correlation=2, r_max=4.0,
                         max_epochs=3, batch_size=4, valid_fraction=0.2)
    (found,) = train_committee(tmp_path / "train.extxyz", tmp_path / "found", base, seed=1)
    # fine-tune: settings ask for another architecture and a negligible learning rate; the result must
    # carry the foundation's architecture and (lr ~ 0) reproduce its forces
    ft = TrainSettings(committee_size=1, num_channels=16, num_interactions=2, correlation=2, r_max=3.0, max_epochs=1,
                       batch_size=4, valid_fraction=0.2, lr=1e-12, ema_decay=0.0, foundation_model=str(found))
    (tuned,) = train_committee(tmp_path / "train.extxyz", tmp_path / "ft", ft, seed=2)
    m0 = torch.load(found, map_location="cpu", weights_only=False)  # our own file: a pickled MACE module
    m1 = torch.load(tuned, map_location="cpu", weights_only=False)
    assert float(m1.r_max) == pytest.approx(float(m0.r_max)) == pytest.approx(4.0)
    assert len(m1.interactions) == len(m0.interactions) == 1

    from twistox.mlip.calculator import load_calculator

    test = _frames(2, np.random.default_rng(5))
    f = []
    for path in (found, tuned):
        at = test[0].copy()
        at.calc = load_calculator([path], mode="first", device="cpu")
        f.append(at.get_forces())
    assert np.all(np.isfinite(f[1]))
    np.testing.assert_allclose(f[1], f[0], atol=1e-5)
