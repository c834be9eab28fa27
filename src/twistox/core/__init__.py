"""Plumbing shared by every stage: artifact I/O and provenance, config validation, runtime (logging, threads, devices), plot style."""
