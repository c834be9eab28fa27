"""Densities of states from eigenvalues and Mulliken weights; band edges and characters (issue 18).

DOS(E) = 2 Σ_k w_k Σ_n g_σ(E − ε_kn) (spin-paired: 2 electrons per state, Σ_k w_k = 1; g_σ a normalised
Gaussian of width σ [eV]) in states/eV per cell, so ∫_{−∞}^{E_midgap} DOS dE = number of valence electrons.
PDOS on a group/channel c: the same sum weighted by the Mulliken weight of each state on c; the groups
partition the atoms, so Σ_c PDOS_c = DOS. Energies are relative to the VBM (E − E_v).
"""

from __future__ import annotations

import numpy as np


def gaussian_dos(eps: np.ndarray, k_weights: np.ndarray, energy: np.ndarray, sigma: float,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """DOS on ``energy`` (eV) from ε[k, n] (eV); ``weights`` [k, n, c] gives one PDOS per c ([c, E])."""
    g = np.exp(-0.5 * ((energy[None, None, :] - eps[..., None]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    wk = 2.0 * np.asarray(k_weights)[:, None]
    if weights is None:
        return np.einsum("kn,kne->e", np.broadcast_to(wk, eps.shape), g)
    return np.einsum("kn,knc,kne->ce", np.broadcast_to(wk, eps.shape), weights, g)


def integrated_states(dos: np.ndarray, energy: np.ndarray, upto: float) -> float:
    """∫ DOS dE (trapezoid) from the lowest energy to ``upto`` (eV): electrons per cell."""
    m = energy <= upto
    return float(np.trapezoid(dos[m], energy[m]))


def electrons_below(eps: np.ndarray, k_weights: np.ndarray, upto: float, sigma: float) -> float:
    """∫_{−∞}^{upto} DOS dE of the Gaussian-broadened DOS over every state (not just a plotted range):
    2 Σ_k w_k Σ_n Φ((upto − ε_kn)/σ)."""
    from scipy.special import ndtr

    return float(2.0 * np.sum(np.asarray(k_weights)[:, None] * ndtr((upto - eps) / sigma)))


def band_edges(eps: np.ndarray, n_electrons: float) -> dict[str, float]:
    """VBM, CBM (eV) and gap of a spin-paired insulator with ``n_electrons``; gap ≤ 0 means a metal."""
    n_occ = int(round(n_electrons / 2))
    vbm, cbm = float(eps[:, n_occ - 1].max()), float(eps[:, n_occ].min())
    return {"vbm": vbm, "cbm": cbm, "gap": cbm - vbm, "n_occupied": n_occ}


def edge_character(eps: np.ndarray, k_weights: np.ndarray, weights: np.ndarray, edge: float,
                   tol: float = 0.01) -> np.ndarray:
    """Mulliken character [c] (sums to 1) of the states within ``tol`` (eV) of a band edge (degenerate
    partners and equivalent k-points averaged with their k weights)."""
    sel = np.abs(eps - edge) <= tol
    w = (np.asarray(k_weights)[:, None] * sel)[..., None] * weights
    tot = w.sum(axis=(0, 1))
    return tot / tot.sum()


def window_fraction(eps: np.ndarray, k_weights: np.ndarray, weights: np.ndarray, vbm: float,
                    window: float) -> np.ndarray:
    """Share [c] of the window states [vbm − window, vbm] on each group/channel (Mulliken)."""
    sel = (eps >= vbm - window - 1e-9) & (eps <= vbm + 1e-6)
    w = (np.asarray(k_weights)[:, None] * sel)[..., None] * weights
    tot = w.sum(axis=(0, 1))
    return tot / tot.sum()


def to_grid(ldos: np.ndarray, x_src: np.ndarray, y_src: np.ndarray, x: np.ndarray, y: np.ndarray,
            L: tuple[float, float]) -> np.ndarray:
    """Periodic linear interpolation of a map [y, x] on the grid x_src = i·h_x, y_src = j·h_y (Å) onto the
    grid x, y (Å, e.g. strain.zarr's cell-centred (i + ½)L/n); L = (L_x, L_y) cell lengths (Å)."""
    from scipy.ndimage import map_coordinates

    hx, hy = L[0] / len(x_src), L[1] / len(y_src)
    X, Y = np.meshgrid(np.asarray(x) / hx, np.asarray(y) / hy)
    return map_coordinates(np.asarray(ldos, float), [Y, X], order=1, mode="grid-wrap")
