"""MACE interatomic potential: committee training, evaluation, active learning and loading."""
