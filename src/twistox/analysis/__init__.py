"""DPC and topology: vector-field sources, winding numbers, defects, network periodicity, experiment readers."""
