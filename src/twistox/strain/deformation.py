"""Per-atom in-plane deformation gradient, polar decomposition and the layer (crystal) frame.

- F (2x2) of every atom from its same-plane neighbour vectors d against the ideal vectors d0 of
  its own layer's lattice, rotated by ``layer_angles_deg[layer]``: least squares d ~ F d0 (OVITO's
  atomic-strain analysis with the ideal lattice as reference).
- Polar decomposition F = R U: strain eps = U - I (dimensionless, tensor shear eps_xy), local
  rotation = angle of R (rad, counter-clockwise about +z, on top of the layer's own angle).
- Frames: F and eps come out in the global (supercell) frame. ``to_layer_frame`` turns a tensor
  into the crystal frame of a layer (x along that layer's [100], which makes the angle
  ``layer_angles_deg[layer]`` with global x): eps_c = R(phi)^T eps_g R(phi). In a 45-degree
  supercell frame (m, n both odd) a crystal shear eps_xy shows up globally as eps_xx = -eps_yy.

All in-plane perovskite vectors (A-X, B-X, X-X, A-A, B-B) are multiples of a/2 along the layer's
cube axes, so an observed vector is matched to its ideal one by rounding in the layer frame; this
holds while local distortions stay below a/4 (~1 Å).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list


@dataclass
class StrainResult:
    """Per-atom in-plane fields (global frame); NaN where an atom had < 2 independent neighbours."""

    F: np.ndarray  # (N, 2, 2) deformation gradient
    eps: np.ndarray  # (N, 2, 2) strain U - I
    rotation: np.ndarray  # (N,) rad, CCW about +z
    n_neighbours: np.ndarray  # (N,)


def rotation_matrix(angle_rad) -> np.ndarray:
    """(..., 2, 2) counter-clockwise rotation by ``angle_rad`` about +z."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def ideal_vectors(d: np.ndarray, angle_deg: np.ndarray, a: float) -> np.ndarray:
    """Nearest ideal in-plane lattice vectors (multiples of a/2 in the layer frame), Å."""
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    # rotate into the layer frame, round to the a/2 grid, rotate back
    u = c * d[:, 0] + s * d[:, 1]
    w = -s * d[:, 0] + c * d[:, 1]
    h = a / 2.0
    u, w = np.round(u / h) * h, np.round(w / h) * h
    return np.stack([c * u - s * w, s * u + c * w], axis=1)


def deformation_gradient(atoms: Atoms, layer_angles_deg, a: float, cutoff: float) -> StrainResult:
    """Per-atom 2x2 F, strain and local rotation from same-plane neighbours within ``cutoff`` Å.

    ``atoms`` needs arrays ``layer`` and ``plane``; pbc in x and y. Global frame.
    """
    if not np.isfinite(atoms.positions).all():
        raise ValueError(f"deformation_gradient: {int((~np.isfinite(atoms.positions)).any(1).sum())} atoms have "
                         "non-finite positions")
    i, j, D = neighbor_list("ijD", atoms, cutoff)
    plane = atoms.arrays["plane"]
    layer = atoms.arrays["layer"]
    keep = plane[i] == plane[j]
    i, j, D = i[keep], j[keep], D[keep]
    d = D[:, :2]
    d0 = ideal_vectors(d, np.asarray(layer_angles_deg, float)[layer[i]], a)
    n = len(atoms)
    A = np.zeros((n, 2, 2))  # sum d d0^T
    M = np.zeros((n, 2, 2))  # sum d0 d0^T
    np.add.at(A, i, d[:, :, None] * d0[:, None, :])
    np.add.at(M, i, d0[:, :, None] * d0[:, None, :])
    nn = np.bincount(i, minlength=n)
    det = np.linalg.det(M)
    ok = det > 1e-8 * a**4
    F = np.full((n, 2, 2), np.nan)
    F[ok] = A[ok] @ np.linalg.inv(M[ok])
    rot, U = polar_2d(F)
    eps = U - np.eye(2)
    return StrainResult(F=F, eps=eps, rotation=rot, n_neighbours=nn)


def polar_2d(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polar decomposition F = R(phi) U of 2x2 matrices (..., 2, 2): returns phi (rad, CCW) and U."""
    phi = np.arctan2(F[..., 1, 0] - F[..., 0, 1], F[..., 0, 0] + F[..., 1, 1])
    U = np.swapaxes(rotation_matrix(phi), -1, -2) @ F
    return phi, 0.5 * (U + np.swapaxes(U, -1, -2))


def to_layer_frame(tensor: np.ndarray, angle_deg) -> np.ndarray:
    """Global-frame 2x2 tensors (..., 2, 2) in the crystal frame of a layer at ``angle_deg`` (deg, CCW
    from global x to the layer's [100]): T_c = R^T T_g R. ``angle_deg`` broadcasts over the leading dims."""
    R = rotation_matrix(np.radians(np.asarray(angle_deg, float)))
    return np.swapaxes(R, -1, -2) @ tensor @ R


def components(tensor: np.ndarray) -> np.ndarray:
    """(..., 2, 2) symmetric tensor -> (3, ...) components [xx, yy, xy] (tensor shear)."""
    return np.stack([tensor[..., 0, 0], tensor[..., 1, 1], tensor[..., 0, 1]])


def interlayer_twist_deg(theta_deg: float, rotation_top_rad, rotation_bottom_rad) -> np.ndarray:
    """Local interlayer twist (deg): theta + omega_top - omega_bottom (omega: local rotation, CCW).

    The bottom layer sits at frame - theta/2 + omega_bottom, the top at frame + theta/2 + omega_top;
    the difference is the local twist: ~0 where the layers lock into AA domains, piled up at nodes."""
    return float(theta_deg) + np.degrees(np.asarray(rotation_top_rad) - np.asarray(rotation_bottom_rad))
