"""twistox: twisted oxide membranes, from commensurate supercells to simulated STEM."""

__version__ = "0.1.0"
