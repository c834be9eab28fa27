"""Analytic eigenstrain of a square screw-dislocation network (twist boundary), in Fourier form.

Crystal frame of the interface (s, t) = R(-phi) (x, y), phi = ``frame_angle_deg`` (mean of the two
layer angles; 0 or 45 deg for a CSL supercell). The twist theta (top layer CCW) relaxes into coherent
domains separated by screw dislocations: lines along t at s_i = (i + 1/2) lambda and lines along s
at t_j = (j + 1/2) lambda, Burgers vector b = a (the relative displacement across a wall), half of
it taken up by each layer. Relative to its rigidly rotated lattice the top layer's in-plane
displacement is a staircase u_t(s) with steps eta b/2 and u_s(t) with steps -eta b/2 (eta =
``coherence``: 1 = fully coherent domains, where the layer locally untwists by -theta/2), so

    eps_st(s, t) = eta b/4 [ sum_i g_w(s - s_i) - sum_j g_w(t - t_j) ],   eps_ss = eps_tt = 0,

with g_w a unit-area Gaussian of standard deviation w (``wall_width_A``); zero mean; the rotation
eta b/4 [sum g_w(s - s_i) + sum g_w(t - t_j)] - theta/2 averages to 0 when b / lambda = theta. The
bottom layer carries -eps_st. Fourier form: sum_i g_w(s - s_i) = (1/lambda) sum_m (-1)^m
exp(-2 pi^2 m^2 w^2 / lambda^2) exp(2 pi i m s / lambda), |m| <= ``fourier_order`` (moiré harmonics),
and exp(2 pi i m s / lambda) is the supercell harmonic (h, k) = m p (cos phi, sin phi) with
p = L cos phi / lambda lines per supercell projection (an integer on a CSL: 1 at Sigma265, 3 at Sigma149).
Global frame: eps_xx = -eps_st sin 2phi, eps_yy = eps_st sin 2phi, eps_xy = eps_st cos 2phi.
"""

from __future__ import annotations

import math

import numpy as np


def line_counts(L: float, period: float, frame_angle_deg: float) -> tuple[int, int]:
    """Integer (p_x, p_y) = L (cos phi, sin phi) / lambda; ValueError if the network is not periodic in L.

    The functions below then use the exactly commensurate period L / |p| (within 2 % of the one given)."""
    phi = math.radians(frame_angle_deg)
    p = np.array([L * math.cos(phi), L * math.sin(phi)]) / period
    pr = np.round(p)
    if np.abs(p - pr).max() > 0.02 or not pr.any():
        raise ValueError(f"phasefield.eigenstrain.network: period {period:.4g} Å at frame angle {frame_angle_deg} deg "
                         f"is not commensurate with the supercell L = {L:.4g} Å (L cos, L sin / lambda = {p.round(3)})")
    return int(pr[0]), int(pr[1])


def network_coefficients(L: float, period: float, frame_angle_deg: float, wall_width: float, burgers: float,
                         coherence: float = 1.0, order: int = 6) -> np.ndarray:
    """Fourier coefficients c[comp (xx, yy, xy), h, k] (global frame) of the top layer's eps at the interface.

    Lengths in Å. The bottom layer's are the negative."""
    px, py = line_counts(L, period, frame_angle_deg)
    period = L / math.hypot(px, py)  # the commensurate period closest to the one asked for
    N = order * max(abs(px), abs(py))
    c_st = np.zeros((2 * N + 1, 2 * N + 1), complex)
    amp = coherence * burgers / 4.0 / period
    for m in range(-order, order + 1):
        if m == 0:
            continue  # lines along t minus lines along s: the means cancel
        g = amp * (-1) ** m * math.exp(-2 * math.pi ** 2 * m ** 2 * wall_width ** 2 / period ** 2)
        # lines along t (functions of s): s = x cos + y sin -> (h, k) = m (p_x, p_y)
        c_st[N + m * px, N + m * py] += g
        # lines along s (functions of t): t = -x sin + y cos -> (h, k) = m (-p_y, p_x), sign -
        c_st[N - m * py, N + m * px] -= g
    phi2 = math.radians(2 * frame_angle_deg)
    return np.stack([-math.sin(phi2) * c_st, math.sin(phi2) * c_st, math.cos(phi2) * c_st])


def network_nodes(L: float, period: float, frame_angle_deg: float) -> dict[str, np.ndarray]:
    """Positions (k, 2) in Å, wrapped into [0, L): 'nodes' (line crossings), 'aa' (domain centres) and
    'midpoints' (middle of each wall segment between two nodes, two per network cell)."""
    px, py = line_counts(L, period, frame_angle_deg)
    period = L / math.hypot(px, py)
    phi = math.radians(frame_angle_deg)
    R = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    n_cells = px * px + py * py  # network cells per supercell
    m = 2 * (abs(px) + abs(py)) + 2
    out = {}
    for name, offs in (("nodes", [(0.5, 0.5)]), ("aa", [(0.0, 0.0)]), ("midpoints", [(0.5, 0.0), (0.0, 0.5)])):
        pts = set()
        for i in range(-m, m + 1):
            for j in range(-m, m + 1):
                for oi, oj in offs:
                    xy = R @ (np.array([i + oi, j + oj]) * period)
                    w = np.mod(xy, L)
                    w[np.isclose(w, L, atol=1e-6)] = 0.0
                    pts.add((round(float(w[0]), 6), round(float(w[1]), 6)))
        arr = np.array(sorted(pts))
        if len(arr) != n_cells * len(offs):
            raise ValueError(f"network_nodes: found {len(arr)} {name}, expected {n_cells * len(offs)}")
        out[name] = arr
    return out
