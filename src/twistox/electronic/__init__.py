"""Stage electronic (issue 18): GPAW LCAO +U electronic structure of the relaxed interface by network region."""
