"""Simulation engines behind the same calls: ngspice (the reference, ngspice.py) and the fast
nodal engine (fast.py). Nothing else runs SPICE."""

import enum


class Engine(enum.Enum):
    NGSPICE = "ngspice"
    FAST = "fast"
