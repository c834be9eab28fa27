"""From images back to structure: GPA, twist angle, and a learned registry (slip) map (issue 16).

Public API: ``gpa(image, sampling, g_vectors=None, sigma=None)`` → xr.Dataset and
``twist_angle(image, sampling, a=...)`` → dict. Conventions: image[y, x], y = row × sampling (Å),
rotations counter-clockwise positive in (x, y).
"""

from twistox.imaging.gpa import gpa
from twistox.imaging.twist import twist_angle

__all__ = ["gpa", "twist_angle"]
