"""Atomistic fields of a relaxed stack (strain, rotation, B-site off-centring) and their Fourier fit."""
