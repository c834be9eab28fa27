"""Contact guard (relax.contact_guard): known distances, periodic images, the every-N rule, and a relaxation
that collapses (a Lennard-Jones stand-in with one σ for every pair pulls Sr pairs together) is stopped."""

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from twistox.core.config import with_schema_defaults
from twistox.relax.guard import ContactGuard, StructureCollapse, perovskite_contacts
from twistox.relax.md import langevin_md
from twistox.relax.evaluators import make_evaluator
from twistox.relax.stage import relax_bilayer
from twistox.supercell.builder import BilayerSpec, build_bilayer
from twistox.supercell.lattice import nearest_csl

A = 3.905


def bilayer():
    return build_bilayer(nearest_csl(36.87, 30), BilayerSpec(bottom_cells=1, top_cells=1))


def test_perovskite_contacts_and_schema_default():
    c = perovskite_contacts("Sr", "Ti", "O", A)
    assert c[frozenset({"Sr"})] == c[frozenset({"Ti"})] == A
    assert c[frozenset({"Sr", "Ti"})] == pytest.approx(A * np.sqrt(3) / 2)
    assert c[frozenset({"Ti", "O"})] == pytest.approx(A / 2)
    assert c[frozenset({"Sr", "O"})] == c[frozenset({"O"})] == pytest.approx(A / np.sqrt(2))
    d = with_schema_defaults("relax", {})["contact_guard"]
    g = ContactGuard.from_atoms(bilayer())
    assert (d["fraction"], d["every"], d["enabled"]) == (g.fraction, g.every, True)
    with pytest.raises(ValueError, match="fraction"):
        ContactGuard.from_atoms(bilayer(), fraction=1.2)


def test_rigid_interface_passes_and_a_squeezed_pair_is_named():
    at = bilayer()
    g = ContactGuard.from_atoms(at)
    assert g.violations(at.positions) == []        # rigid Σ5 interface: planes 1.95 Å apart
    g.check(at.positions, 0)
    sym = np.array(at.get_chemical_symbols())
    sr = np.flatnonzero(sym == "Sr")
    i = sr[0]
    j = min(sr[1:], key=lambda k: at.get_distance(i, k, mic=True))
    x = at.positions.copy()
    v = at.get_distance(i, j, mic=True, vector=True)
    x[j] = x[i] + v / np.linalg.norm(v) * 1.75     # the first network potential's Sr-Sr distance
    bad = g.violations(x)
    assert [(min(b[:2]), max(b[:2])) for b in bad] == [(min(i, j), max(i, j))]
    assert bad[0][2] == pytest.approx(1.75) and bad[0][3] == pytest.approx(0.5 * A)
    g.phase("md")(5, x)                            # not a check step (every 10)
    with pytest.raises(StructureCollapse, match=r"md step 10: 1 atom pair.*Sr\d+-Sr\d+ at 1\.75 Å \(limit 1\.95 Å\)"):
        g.phase("md")(10, x)
    # across the periodic boundary: i at x = 0.3 Å, j at x = L - 1.3 Å (same y, z): 1.6 Å apart through the image
    y = at.positions.copy()
    L = at.cell[0, 0]
    y[i, 0] = 0.3
    y[j] = y[i] + np.array([L - 1.6, 0.0, 0.0])
    assert any({b[0], b[1]} == {i, j} and b[2] == pytest.approx(1.6) for b in g.violations(y))
    # batched positions (B, N, 3): the structure is named
    with pytest.raises(StructureCollapse, match=r"structure 1"):
        g.check(np.stack([at.positions, x]), 20)


def test_collapsing_relaxation_is_stopped_and_md_calls_back_every_step():
    at = bilayer()
    lj = LennardJones(sigma=1.6, epsilon=0.02, rc=4.0, smooth=True)
    cfg = with_schema_defaults("relax", {"translation_grid": 1, "scan_max_steps": 200, "max_steps": 200,
                                         "md": {"enabled": False}, "committee_std": {"enabled": False},
                                         "checkpoint_interval_s": 0.0})
    with pytest.raises(StructureCollapse, match="Sr"):
        relax_bilayer(at, lj, cfg, np.random.default_rng(0))
    cfg["contact_guard"]["enabled"] = False
    out = relax_bilayer(at, lj, cfg, np.random.default_rng(0))
    # what the guard stopped: unguarded, the stand-in ends with Sr pairs at ~2.0 Å (3.9 Å in the crystal)
    assert ContactGuard.from_atoms(at, fraction=0.55).violations(out.positions_relaxed)
    steps = []
    langevin_md(make_evaluator(lj, at), at.positions, at.get_masses(), 300.0, 1.0, 7, 2,
                rng=np.random.default_rng(0), callback=lambda s, x: steps.append(s))
    assert steps == list(range(1, 8))
