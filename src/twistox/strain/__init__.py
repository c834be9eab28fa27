"""The strain stage: atomistic fields of a relaxed stack and their Fourier fit.

Modules: ``deformation`` (per-atom F, polar decomposition, crystal frames, interlayer twist), ``cages``
(B-site cages of the rigid lattice, off-centring, changed cages, coordination, P), ``gridding``
(periodic Gaussian gridding), ``fourier`` (truncated series, order in moiré harmonics, periods),
``fields`` (strain.zarr assembly), ``stage`` (``run``, ``check_settings``), ``figures``.
"""
