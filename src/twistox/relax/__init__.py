"""Relaxation of twisted bilayers: translation scan, batched FIRE, Langevin MD averaging."""
