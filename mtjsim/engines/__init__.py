"""Simulation engines. ngspice (the reference) lives in ngspice.py; nothing else runs SPICE."""
