"""Commensurate (CSL) twisted perovskite bilayers: lattice geometry and the atomistic builder."""
