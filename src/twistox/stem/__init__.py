"""STEM / 4D-STEM image simulation with abTEM: samples, plan view, cross sections, centre of mass."""
