"""Network sites from the interlayer-twist map (issue 13 item 11) and the continuum-claims measures."""

import numpy as np
import pytest
import xarray as xr

from twistox.analysis import claims as cl
from twistox.analysis.nodes import find_sites, twist_sites
from twistox.analysis.periodicity import field_maxima

A = 3.905
KW = (1.0, 1e-3)          # node_harmonics, twist_flat_deg (schema defaults)


def _supercell(m: int, n: int) -> xr.Dataset:
    """A minimal supercell.zarr-like dataset: the two B-site lattices of a Σ(m, n) CSL in the square cell."""
    theta = 2 * np.degrees(np.arctan(n / m))
    sigma = (m * m + n * n) // (2 if (m % 2 and n % 2) else 1)
    L = A * np.sqrt(sigma)
    frame = 45.0 if (m % 2 and n % 2) else 0.0
    lam = A / (2 * np.sin(np.radians(theta) / 2))
    pos = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 4.0]])
    return xr.Dataset({"positions": (("atom", "xyz"), pos), "numbers": ("atom", [22, 22]), "layer": ("atom", [0, 1])},
                      attrs={"supercell_length": L, "a": A, "moire_period": lam, "theta_deg": theta,
                             "layer_angles_deg": [frame - theta / 2, frame + theta / 2], "sigma": sigma})


def _network_twist(L: float, n: int = 64, sharp: float = 2.0, noise: float = 0.05, seed: int = 0):
    """Twist map of a relaxed square network in a 45°-turned cell: ≈0.2° in the domains, peaks of ~20° at the
    nodes (0,0), (L/2,L/2) (moiré G = 2π/L (±1, 1)), plus noise."""
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    k = 2 * np.pi / L
    f = 0.2 + 20.0 * np.exp(sharp * (np.cos(k * (X + Y)) + np.cos(k * (Y - X)) - 2))
    return x, f + noise * np.random.default_rng(seed).standard_normal(f.shape)


def test_sigma145_network_sites_from_twist_map():
    """Σ145 (θ = 6.73°, m, n odd): exactly 2 nodes, 4 wall midpoints, 2 AA domains per cell at the right places.
    The old `nodes: auto` took maxima of a wall-localised |ε_xy| instead: many spurious 'nodes' (checked here)."""
    sc = _supercell(17, 1)
    L = sc.attrs["supercell_length"]
    x, tw = _network_twist(L)
    st = xr.Dataset({"interlayer_twist": (("y", "x"), tw, {"units": "deg"})}, coords={"x": x, "y": x})
    s = find_sites(sc, st, "auto", 22, *KW)
    assert s.source == "interlayer_twist" and s.counts() == {"node": 2, "wall_midpoint": 4, "domain": 2}
    h = L / 2

    def near(p, q):
        d = (np.asarray(p) - np.asarray(q) + h) % L - h
        return np.hypot(*d) < 0.02 * L

    assert all(any(near(p, q) for p in s.node) for q in [(0, 0), (h, h)])
    assert all(any(near(p, q) for p in s.domain) for q in [(0, h), (h, 0)])
    assert all(any(near(p, q) for p in s.wall_midpoint) for q in [(L / 4, L / 4), (3 * L / 4, L / 4),
                                                                    (L / 4, 3 * L / 4), (3 * L / 4, 3 * L / 4)])
    # the geometric fallback puts the nodes at registry (1/2, 1/2): 2 per cell as well
    g = find_sites(sc, None, "auto", 22, *KW)
    assert g.source == "coincidence geometry" and g.counts() == {"node": 2, "wall_midpoint": 4, "domain": 2}
    # old method: maxima of a shear localised on the walls (gradient magnitude of the twist) -> many "nodes"
    gy, gx = np.gradient(tw)
    assert len(field_maxima(np.hypot(gx, gy), x, x)) > 2


def test_flat_twist_map_falls_back_to_geometry():
    sc = _supercell(17, 1)
    L = sc.attrs["supercell_length"]
    x = (np.arange(32) + 0.5) * L / 32
    st = xr.Dataset({"interlayer_twist": (("y", "x"), np.full((32, 32), 6.73) + 1e-9)}, coords={"x": x, "y": x})
    s = find_sites(sc, st, "auto", 22, *KW)
    assert s.source == "coincidence geometry" and "flat" in s.note
    with pytest.raises(ValueError, match="'twist' needs"):
        find_sites(sc, st, "twist", 22, *KW)
    sites, _, _ = twist_sites(np.full((32, 32), np.nan), x, x, L, sc.attrs["moire_period"], *KW)
    assert sites is None


def test_decay_length_of_exponential_profile():
    z = np.arange(12) * 2.0 + 1.0
    zi = 12.0
    p = 0.02 * np.exp(-np.abs(z - zi) / 7.0)
    below, above = cl.decay_length(z, p, zi)
    assert below == pytest.approx(7.0, rel=1e-9) and above == pytest.approx(7.0, rel=1e-9)
    assert np.isnan(cl.decay_length(z, np.ones_like(z), zi)[0])       # never decays: NaN, not a number


@pytest.mark.parametrize("flip, alt_field, alternate, reverse", [(True, True, 1.0, 1.0), (False, True, 1.0, 0.0),
                                                                  (True, False, 0.0, 1.0)])
def test_phasefield_node_vortices_alternate_and_reverse(flip, alt_field, alternate, reverse):
    """P = s(z) e^{-|z - zi|/ℓ} R(90°)∇f: f = cos kx + cos ky has its maximum at (0,0) and minimum at (L/2,L/2),
    so the node vortices there turn CW and CCW (alternate); s = sign(z - zi) reverses them across the
    interface. f = cos k(x+y) + cos k(y-x) has maxima at both nodes: same sense, no alternation."""
    L, n, ell = 40.0, 40, 6.0
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    k = 2 * np.pi / L
    if alt_field:
        gx, gy = -k * np.sin(k * X), -k * np.sin(k * Y)
    else:
        gx = -k * (np.sin(k * (X + Y)) - np.sin(k * (Y - X)))
        gy = -k * (np.sin(k * (X + Y)) + np.sin(k * (Y - X)))
    z = np.arange(10) * 2.0 + 1.0
    zi = 10.0
    amp = 0.01 * np.exp(-np.abs(z - zi) / ell) * (np.sign(z - zi) if flip else 1.0)
    P = np.zeros((3, z.size, n, n))
    P[0] = amp[:, None, None] * (-gy)[None]          # R(90°) (gx, gy) = (-gy, gx)
    P[1] = amp[:, None, None] * gx[None]
    pf = xr.Dataset({"P": (("component", "z", "y", "x"), P)},
                    coords={"component": ["x", "y", "z"], "z": z, "y": x, "x": x}, attrs={"interface_z": zi})
    nodes = np.array([[0.0, 0.0], [L / 2, L / 2]])
    summ, ds = cl.phasefield_claims(pf, nodes, L, 0.25 * L / np.sqrt(2), 1e-6, 3.0)
    assert summ["pf_P_node_winding_mean"] == 1.0 and summ["pf_P_node_vortex_fraction"] == 1.0
    assert summ["pf_P_node_curl_fraction"] == pytest.approx(1.0, abs=0.01)          # pure curl: R(90°)∇f
    assert summ["pf_alternate_fraction"] == alternate and summ["pf_reverse_fraction"] == reverse
    assert summ["pf_P_decay_length_A"] == pytest.approx(ell, rel=1e-6)
    assert summ["pf_max_P_C_m2"] == pytest.approx(np.sqrt((P**2).sum(0)).max(), rel=1e-12)
    c = ds["pf_node_circulation"].values
    assert np.all(np.sign(c[z < zi]) == -np.sign(c[z > zi])) == flip


def test_site_registry_measures_domain_and_node_offsets_from_the_rigid_moire():
    """Known answers: a network whose nodes sit on the anti-coincidence sites has its domains on the AA
    (coincidence) sites (distance ~0) with the domain / node twist of the map; the same network shifted
    by (L/2, 0) puts every domain on a node site (distance L/2 = λ/√2 for Σ145's 45° cell)."""
    sc = _supercell(17, 1)
    L, lam = sc.attrs["supercell_length"], sc.attrs["moire_period"]
    geo = find_sites(sc, None, "geometry", 22, *KW)
    x0, y0 = geo.anticoincidence[0]
    n = 64
    x = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(x, x)
    k = 2 * np.pi / L

    def network(dx: float) -> xr.Dataset:
        u, v = X - x0 - dx, Y - y0
        f = 0.2 + 20.0 * np.exp(2.0 * (np.cos(k * (u + v)) + np.cos(k * (v - u)) - 2))
        return xr.Dataset({"interlayer_twist": (("y", "x"), f)}, coords={"x": x, "y": x})

    reg = find_sites(sc, network(0.0), "auto", 22, *KW).registry()
    assert reg["source"] == "interlayer_twist" and len(reg["domain_to_coincidence_A"]) == 2
    assert max(reg["domain_to_coincidence_A"]) < 0.5 and max(reg["node_to_anticoincidence_A"]) < 0.5
    assert np.allclose(reg["twist_at_domain_deg"], 0.2, atol=0.05)
    assert np.allclose(reg["twist_at_node_deg"], 20.2, atol=1.0)
    off = find_sites(sc, network(L / 2), "auto", 22, *KW).registry()
    assert np.allclose(off["domain_to_coincidence_A"], L / 2, atol=0.5)
    assert off["domain_to_coincidence_max_over_lambda"] == pytest.approx(L / 2 / lam, abs=0.02)
    assert np.isclose(L / 2 / lam, 1 / np.sqrt(2), atol=0.01)
    # the geometric fallback is its own reference
    assert max(geo.registry()["domain_to_coincidence_A"]) < 1e-9
