"""The analysis stage on synthetic upstream artifacts with known defects (tests/synthetic_artifacts.py),
as a library and as Snakemake rules (analysis + report) with an experiment file."""

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from synthetic_artifacts import write_sample
from twistox.analysis import stage as an
from twistox.core.config import _check, _schema
from twistox.analysis.sources import VectorField, atomistic_fields, dpc_field, phasefield_field
from twistox.core.io import read_dataset

SAMPLE = "theta36.87_m3n1"
KW = (1.0, 1e-3)          # node_harmonics, twist_flat_deg (schema defaults)


@pytest.fixture(scope="module")
def toy_config():
    from conftest import TOY_CONFIG

    # only the keys the synthetic artifacts need: other stages' sections are not this test's business
    cfg = yaml.safe_load(open(TOY_CONFIG))
    cfg = {k: cfg[k] for k in ("seed", "systems", "twist")}
    _check(cfg, _schema("config"), ())         # top-level schema only: fills the system defaults
    return cfg


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, toy_config):
    d = tmp_path_factory.mktemp("syn") / "results" / "STO" / SAMPLE
    info = write_sample(d, SAMPLE, toy_config, cross_period=12.0)
    return d, info


def _kinds_at(res, L):
    return {(round(dd.x % L, 3) % round(L, 3), round(dd.y % L, 3) % round(L, 3)): dd.kind for dd in res.defects}


def test_sources_defects_and_sites(synthetic):
    d, info = synthetic
    L = info["L"]
    sc, stem, pf, st = (read_dataset(d / f"{n}.zarr") for n in ("supercell", "stem", "phasefield", "strain"))
    s = an.settings({})
    sites = an.find_sites(sc, st, "auto", 22, *KW)
    assert sites.source == "interlayer_twist"
    # twist = θ + cos kx + cos ky: node (max) (0,0), domain (min) (L/2,L/2), wall midpoints (saddles)
    np.testing.assert_allclose(sites.node, [[0, 0]], atol=1e-6)
    np.testing.assert_allclose(sites.domain, [[L / 2, L / 2]], atol=1e-6)
    assert sorted(map(tuple, np.round(sites.wall_midpoint, 6))) == [(0.0, round(L / 2, 6)), (round(L / 2, 6), 0.0)]
    # the toy Σ5 coincidence sites are (0,0) and (L/2,L/2) - the synthetic lattices are built on them
    assert sorted(map(tuple, np.round(sites.coincidence, 6))) == [(0.0, 0.0), (round(L / 2, 6), round(L / 2, 6))]
    fields = [dpc_field(stem, L, 300e3), phasefield_field(pf, L, 300e3)] + atomistic_fields(st, L)
    assert [f.name for f in fields] == ["dpc", "phasefield", f"atomistic_p{info['interface_planes'][1]}"]
    # dpc: E_proj recovered from the COM (sign!) = 40 V x R(90°)(sin kx, sin ky)
    x = fields[0].x
    np.testing.assert_allclose(fields[0].vy[0], 40 * np.sin(2 * np.pi * x / L), rtol=1e-9)
    h = L / 2
    expect = {
        "dpc": {(0.0, 0.0): "ccw", (h, h): "cw", (h, 0.0): "antivortex", (0.0, h): "antivortex"},
        "phasefield": {(0.0, 0.0): "antivortex", (h, h): "antivortex", (h, 0.0): "sink", (0.0, h): "source"},
        "atomistic": {(0.0, 0.0): "cw", (h, h): "ccw", (h, 0.0): "antivortex", (0.0, h): "antivortex"},
    }
    site_of = {(0.0, 0.0): "node", (h, h): "domain", (h, 0.0): "wall_midpoint", (0.0, h): "wall_midpoint"}
    node_winding = {"dpc": 1, "phasefield": -1, "atomistic": 1}
    for f in fields:
        r = an.analyse_field(f, s)
        an.match_sites(r, sites, s)
        got = _kinds_at(r, L)
        want = {(round(a, 3), round(b, 3)): k for (a, b), k in expect[f.source].items()}
        assert got == want, f.name
        assert {_kinds_key(dd, L): c for dd, c in zip(r.defects, r.site)} == \
            {(round(a, 3), round(b, 3)): c for (a, b), c in site_of.items()}
        summ = r.summary(s["match_radius_frac"] * sites.moire_period)
        assert summ["total_winding"] == 0 and summ["n_vortices"] == summ["n_antivortices"] == 2
        assert summ["fraction_node"] == 0.25 and summ["fraction_wall_midpoint"] == 0.5
        assert summ["n_insignificant"] == 0 and summ["masked_area_A2"] == 0
        # the winding on a loop around the node: +1 for dpc / atomistic, −1 for the phase field's E_proj
        assert summ["node_winding_mean"] == node_winding[f.source]
        at_node = [dd for dd, nd in zip(r.defects, r.node_d) if nd < 1e-6]
        assert len(at_node) == 1 and at_node[0].winding == node_winding[f.source]
    # without the twist map: the CSL geometry (node = registry (1/2, 1/2))
    geo = an.find_sites(sc, st.drop_vars("interlayer_twist"), "auto", 22, *KW)
    assert geo.source == "coincidence geometry" and "without interlayer_twist" in geo.note
    np.testing.assert_allclose(sorted(map(tuple, geo.node)), sorted(map(tuple, geo.anticoincidence)))
    with pytest.raises(ValueError, match="'twist' needs"):
        an.find_sites(sc, None, "twist", 22, *KW)


def test_relaxed_frame_fields_stay_periodic_and_keep_their_sites(tmp_path, toy_config):
    """Relax rescales the rigid supercell to the potential's own a0 (here 3 % smaller, as the toy potential's
    3.79 Å against 3.905 Å): strain, phase field and STEM artifacts record the smaller side. Every field must
    still be recognised as one periodic cell (windings sum to 0: Stokes on a torus) and the sites must move
    with the cell; with supercell.zarr's side the fields were read as non-periodic and a seam vortex was lost."""
    from synthetic_artifacts import write_phasefield, write_stem, write_strain, write_supercell

    d = tmp_path / "results" / "STO" / SAMPLE
    d.mkdir(parents=True)
    sc = write_supercell(d, SAMPLE, toy_config)
    L = float(sc.attrs["supercell_length"])
    k = 0.97
    write_stem(d, k * L)
    write_phasefield(d, k * L)
    write_strain(d, k * L, list(sc.attrs["interface_planes"]))
    stem, pf, st = (read_dataset(d / f"{n}.zarr") for n in ("stem", "phasefield", "strain"))
    for ds in (stem, pf, st):
        assert an.cell_side(ds, L) == pytest.approx(k * L)
    assert an.cell_side(None, L) == L
    out = an.run(sc, stem=stem, phasefield=pf, strain=st, cfg={}, sample=SAMPLE, b_number=22, energy_eV=300e3)
    t = out.table
    assert set(t["field"]) == {"dpc", "phasefield", f"atomistic_p{sc.attrs['interface_planes'][1]}"}
    for name, rows in t.groupby("field"):
        assert rows["winding"].sum() == 0, name
        assert len(rows) == 4, name                       # node, domain, two wall midpoints: none lost at the seam
    at = t[t["source"] == "atomistic"]
    h = k * L / 2
    node = at[(np.hypot(at["x"] % (k * L), at["y"] % (k * L)) < 1e-6) | (np.hypot(at["x"], at["y"]) < 1e-6)]
    assert list(node["site"]) == ["node"]
    dom = at[np.hypot(at["x"] - h, at["y"] - h) < 1e-6]
    assert list(dom["site"]) == ["domain"] and dom["d_site"].iloc[0] < 1e-6
    # the frame helpers: sites and the supercell scale with the side
    frame = an.rescaled_supercell(sc, k * L)
    assert frame.attrs["supercell_length"] == pytest.approx(k * L)
    assert frame.attrs["moire_period"] == pytest.approx(k * float(sc.attrs["moire_period"]))
    np.testing.assert_allclose(frame["positions"].values[:, :2], k * sc["positions"].values[:, :2])
    geo = an.find_sites(sc, None, "geometry", 22, *KW)
    geo_k = an.find_sites(frame, None, "geometry", 22, *KW)
    np.testing.assert_allclose(geo.scaled(k * L).node, geo_k.node, atol=1e-9)
    assert geo.scaled(L) is geo


def test_library_defaults_agree_with_schema():
    """find_defects' keyword defaults (public API) must equal the schema's; find_sites has none."""
    import inspect

    from twistox.analysis.defects import find_defects

    s = an.settings({})
    p = inspect.signature(find_defects).parameters
    assert p["min_strength"].default == s["min_strength"] and p["min_snr"].default == s["min_snr"]
    assert s["node_harmonics"] == KW[0] and s["twist_flat_deg"] == KW[1]
    assert all(v.default is inspect.Parameter.empty for k, v in inspect.signature(an.find_sites).parameters.items())


def _kinds_key(dd, L):
    return (round(dd.x % L, 3) % round(L, 3), round(dd.y % L, 3) % round(L, 3))


def test_nonfinite_points_are_masked_and_recorded(synthetic):
    """NaN/inf points: their plaquettes are masked (never zero-filled), count and area recorded; 'error' stops."""
    d, info = synthetic
    L = info["L"]
    f = dpc_field(read_dataset(d / "stem.zarr"), L, 300e3)
    f.vx = f.vx.copy()
    f.vx[10, 20] = np.nan
    f.vx[3, 3] = np.inf
    r = an.analyse_field(f, an.settings({}))
    q = r.summary(1.0)
    dx = f.x[1] - f.x[0]
    assert q["n_nonfinite"] == 2 and q["masked_plaquettes"] == 8
    assert q["masked_area_A2"] == pytest.approx(8 * dx * dx)
    assert q["n_vortices"] == q["n_antivortices"] == 2        # the defects away from the holes survive
    with pytest.raises(an.DataError, match="analysis.nonfinite"):
        an.analyse_field(f, an.settings({"nonfinite": "error"}))


def test_rigid_near_zero_field_gives_no_significant_defects(synthetic):
    """A rigid structure's off-centring (|P| ~ 1e-8 C/m², relative texture as in a relaxed one) is far
    below the absolute floor: its windings exist but none is significant (old code: 2 + 2 vortices)."""
    d, info = synthetic
    L = info["L"]
    f = atomistic_fields(read_dataset(d / "strain.zarr"), L)[0]
    tiny = VectorField(f.name, f.source, f.vx * 1e-6, f.vy * 1e-6, f.x, f.y, f.units, True, 1.0, plane=f.plane)
    s = an.settings({})
    r = an.analyse_field(tiny, s)
    q = r.summary(1.0)
    assert q["n_vortices"] == q["n_antivortices"] == 0 and q["n_insignificant"] == 4
    assert q["noise_sigma"] == pytest.approx(3e-4) and q["total_winding"] == 0
    # the same texture at 0.01 C/m² is significant
    assert an.analyse_field(f, s).summary(1.0)["n_vortices"] == 2


def test_network_period_spacings_and_skyrmion(synthetic):
    d, info = synthetic
    stem, pf, st = (read_dataset(d / f"{n}.zarr") for n in ("stem", "phasefield", "strain"))
    per, src = an.network_period(st, [])
    assert src == "strain interlayer_twist" and per.value == pytest.approx(info["L"])   # cos kx + cos ky: period L
    per, src = an.network_period(st.drop_vars("interlayer_twist"), [])
    assert src == "strain eps_xy" and per.value == pytest.approx(info["L"])
    sp = an.cross_section_spacings(stem, 8.0)
    assert sp["100"].mean == pytest.approx(12.0, rel=0.02) and sp["100"].n == 4
    q = an.phasefield_skyrmion(pf, 1e-6)
    # P = (0.01 sin kx, -0.01 sin ky, 0.005): two antimerons (core +z) and a source + sink with core +z:
    # Q = 2(-1/2) + 2(+1/2) = 0 on the periodic cell
    np.testing.assert_allclose(q.values, 0.0, atol=1e-9)


@pytest.mark.slow
def test_rules_on_synthetic_artifacts_with_experiment(tmp_path, toy_config):
    """snakemake analysis + report on a sample with synthetic stem/phasefield/strain artifacts plus a measured
    COM file: vortices.csv and summary.csv as promised. (Only that sample: with every stage included, the
    other toy sample's analysis would ask the real upstream rules for its inputs.)"""
    from conftest import run_snakemake

    info = write_sample(tmp_path / "results" / "STO" / SAMPLE, SAMPLE, toy_config, cross_period=12.0)
    com = read_dataset(tmp_path / "results" / "STO" / SAMPLE / "stem.zarr")["com"].values
    np.save(tmp_path / "expt_com.npy", np.tile(com, (1, 2, 2)))               # 2 x 2 supercells, open grid
    extra = {"analysis": {"experiment": [{"path": str(tmp_path / "expt_com.npy"), "sample": SAMPLE,
                                          "pixel_size": info["L"] / 32, "background": "none"}]}}
    cfg = copy.deepcopy(yaml.safe_load(open(__import__("conftest").TOY_CONFIG)))
    cfg["analysis"] = {**cfg.get("analysis", {}), **extra["analysis"]}
    cfg["twist"]["angles_deg"] = [36.87]  # SAMPLE only
    cfg["image_inference"] = {"enabled": False}  # the report would wait for an image_inference.zarr it may not make
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    # the target goes before --allowed-rules, whose list would otherwise swallow it
    run_snakemake("results/report/summary.csv", "--cores", "1", "--configfile", tmp_path / "cfg.yaml",
                  "--allowed-rules", "supercell", "analysis", "report", workdir=tmp_path, timeout=600)
    v = pd.read_csv(tmp_path / "results" / "STO" / SAMPLE / "vortices.csv")
    assert list(v.columns[:6]) == ["source", "x", "y", "winding", "helicity", "circulation"]
    assert set(v["source"]) == {"dpc", "phasefield", "atomistic", "experiment"}
    assert set(v["circulation"]) <= {"cw", "ccw", "none"}
    ex = v[v.source == "experiment"]
    assert (ex.winding == 1).sum() >= 2 and ex["node_distance"].isna().all()
    s = pd.read_csv(tmp_path / "results" / "report" / "summary.csv")
    assert len(s) == 1
    r = s.set_index("sample").loc[SAMPLE]
    assert r["dpc_vortices_per_cell"] == pytest.approx(2.0) and r["phasefield_mean_winding"] == pytest.approx(0.0)
    assert r["max_P_atomistic"] == pytest.approx(0.01 * np.sqrt(2), rel=0.05)
    # a sample whose later stages have not run: its columns are NaN, never invented
    from twistox.report.stage import sample_row

    other = "theta22.62_m5n1"
    only = tmp_path / "only_supercell" / other
    only.mkdir(parents=True)
    import shutil

    shutil.copytree(tmp_path / "results" / "STO" / SAMPLE / "supercell.zarr", only / "supercell.zarr")
    row = sample_row("STO", other, only)
    assert np.isnan(row["dpc_vortices_per_cell"]) and np.isnan(row["max_P_phasefield"])
    for f in ("analysis_vortices.png", "analysis_periodicity.png"):
        assert (tmp_path / "results" / "STO" / SAMPLE / "figures" / f).stat().st_size > 10_000
    assert (tmp_path / "results" / "STO" / SAMPLE / "vortices.zarr").is_dir()
    assert set(v["site"].dropna()) <= {"node", "wall_midpoint", "domain", "other"}
    assert r["sites_source"] == "interlayer_twist" and r["pf_Eproj_node_winding"] == pytest.approx(-1)
    assert r["pf_Eproj_node_site_winding"] == pytest.approx(-1) and r["dpc_node_winding"] == pytest.approx(1)
    assert r["atomistic_node_winding"] == pytest.approx(1) and r["atomistic_node_cw_fraction"] == pytest.approx(1)
    assert np.isnan(row["pf_P_decay_length_A"]) and np.isnan(row["atomistic_node_winding"])
    # the legacy artifact name is still read (one release)
    legacy = tmp_path / "legacy" / SAMPLE
    shutil.copytree(tmp_path / "results" / "STO" / SAMPLE / "supercell.zarr", legacy / "supercell.zarr")
    shutil.copytree(tmp_path / "results" / "STO" / SAMPLE / "vortices.zarr", legacy / "dpc.zarr")
    assert sample_row("STO", SAMPLE, legacy)["dpc_vortices_per_cell"] == pytest.approx(2.0)


@pytest.mark.parametrize("section, msg", [
    ({"sources": ["dpc", "holography"]}, r"config key 'analysis.sources\[1\]'.*allowed: 'dpc', 'phasefield', 'atomistic'"),
    ({"nodes": "strain"}, r"config key 'analysis.nodes'.*allowed: 'auto', 'twist', 'geometry'"),
    ({"noise_floor": {"atomistic_C_m2": -1}}, r"config key 'analysis.noise_floor.atomistic_C_m2'.*>= 0"),
    ({"nonfinite": "zero"}, r"config key 'analysis.nonfinite'.*allowed: 'mask', 'error'"),
    ({"smoothing_A": -1}, r"config key 'analysis.smoothing_A'.*>= 0"),
    ({"experimnet": []}, r"config key 'analysis'.*unknown key.*allowed keys"),
])
def test_bad_analysis_config_names_key(section, msg):
    from twistox.core.config import ConfigError, validate_config

    cfg = {"systems": {"STO": {}}, "twist": {"angles_deg": [36.87]}, "analysis": section}
    with pytest.raises(ConfigError, match=msg):
        validate_config(cfg)
