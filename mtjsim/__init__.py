"""mtjsim: circuit-level simulation of MTJ crossbar arrays, solved by ngspice.

Layers (each imports only the ones above it):
devices -> circuit -> engines -> ops -> cli
"""

__version__ = "0.1.0"
