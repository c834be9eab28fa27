"""DFT labels: training configurations and a resumable, frame-by-frame ASE-calculator labeller."""
