"""Example 1: sneak paths and IR drop in a passive MTJ crossbar read, solved by ngspice.

Reads one cell of a 16x16 passive array with growing wire resistance and prints how the
far-corner cell's current falls against the near corner's.
    .venv/bin/python examples/01_read_passive.py
"""

from __future__ import annotations

import numpy as np

from mtjsim.circuit.crossbar import ArraySpec, Crossbar
from mtjsim.devices import load_preset
from mtjsim.ops.read import read


def main(size: int = 16, r_wires_ohm=(0.0, 1.0, 5.0, 20.0)) -> list[float]:
    near = np.zeros(size)
    near[-1] = 0.1                      # last row: next to the bit-line sense at the bottom
    far = np.zeros(size)
    far[0] = 0.1                        # first row, read at the last column
    ratios = []
    print(f"{'r_wire (ohm)':>12} {'I near (uA)':>12} {'I far (uA)':>12} {'far/near':>9}")
    for r_w in r_wires_ohm:
        spec = ArraySpec(rows=size, cols=size, device=load_preset("pmtj_40nm"), r_wire_ohm=r_w)
        xbar = Crossbar(spec, np.zeros((size, size), dtype=int))   # all P
        res = read(xbar, np.vstack([near, far]))
        i_near, i_far = res.i_out_a[0, 0], res.i_out_a[1, -1]
        ratios.append(i_far / i_near)
        print(f"{r_w:12.1f} {i_near * 1e6:12.3f} {i_far * 1e6:12.3f} {i_far / i_near:9.4f}")
    return ratios


if __name__ == "__main__":
    main()
