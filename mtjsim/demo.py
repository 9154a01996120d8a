"""`mtjsim demo`: the default job on an embedded configuration (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.devices.mtj import load_preset
from mtjsim.ops.read import read
from mtjsim.ops.write import Direction, PulseProgram, WriteScheme, write
from mtjsim.cli import print_energy
from mtjsim.energy.report import write_energy_files
from mtjsim.report import write_read_run, write_write_run

# A 16x16 1T1R array of 40 nm pMTJs with realistic parasitics (about 1 ohm and 0.2 fF per
# cell segment for a tight-pitch metal line, 20 ohm drivers).
DEMO_SPEC = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=16, cols=16,
                      device=load_preset("pmtj_40nm"), r_wire_ohm=1.0, c_wire_f=0.2e-15,
                      r_driver_ohm=20.0)
V_READ_V = 0.1


def demo_inputs(rows: int, rng) -> tuple[np.ndarray, list[str]]:
    """One-hot reads of the first and last row (per-cell read margins) and two random
    binary activation vectors (a feedforward pass)."""
    first = np.zeros(rows)
    first[0] = V_READ_V
    last = np.zeros(rows)
    last[-1] = V_READ_V
    rand = V_READ_V * (rng.random((2, rows)) < 0.5)
    return np.vstack([first, last, rand]), ["row 0 only", f"row {rows - 1} only",
                                           "random x1", "random x2"]


def read_margin(i_cells_a: np.ndarray, states: np.ndarray) -> float:
    """Worst-case relative margin of one row: (min I_P - max I_AP) / min I_P."""
    i_p, i_ap = i_cells_a[states == 0], i_cells_a[states == 1]
    if len(i_p) == 0 or len(i_ap) == 0:
        return float("nan")
    return float((i_p.min() - i_ap.max()) / i_p.min())


def run_demo(out: Path = Path("runs/demo")) -> int:
    out = Path(out)
    rng = np.random.default_rng(2026)
    xbar = Crossbar.random(DEMO_SPEC, seed=7)
    inputs, labels = demo_inputs(DEMO_SPEC.rows, rng)
    d = DEMO_SPEC.device
    print(f"mtjsim demo: {DEMO_SPEC.kind.value} {DEMO_SPEC.rows}x{DEMO_SPEC.cols}, "
          f"{d.name} (d = {d.diameter_m * 1e9:.0f} nm, R_P = {d.r_p_ohm / 1e3:.2f} kohm, "
          f"R_AP = {d.r_ap0_ohm / 1e3:.2f} kohm), r_wire {DEMO_SPEC.r_wire_ohm:g} ohm and "
          f"c_wire {DEMO_SPEC.c_wire_f * 1e15:g} fF per segment")
    print("engine: ngspice (transient read, one input vector per 20 ns slot)")
    r = read(xbar, inputs, workdir=out, netlist_name="read.cir")
    write_read_run(out, xbar, r, prefix="read_")
    print(f"\n{'input':<14}{'I_out min (uA)':>16}{'I_out max (uA)':>16}{'decisions=1':>13}"
          f"{'margin':>9}")
    for b, label in enumerate(labels):
        row = 0 if b == 0 else DEMO_SPEC.rows - 1 if b == 1 else None
        margin = read_margin(r.i_out_a[b], xbar.states[row]) if row is not None else None
        m = f"{margin:9.1%}" if margin is not None else f"{'':>9}"
        print(f"{label:<14}{r.i_out_a[b].min() * 1e6:16.3f}{r.i_out_a[b].max() * 1e6:16.3f}"
              f"{int(r.decision[b].sum()):>13}{m}")
    print(f"\n(margin: worst-case (min I_P - max I_AP) / min I_P of the one-hot row read)")
    print(f"ngspice {r.timings_s['ngspice_s']:.2f} s; wrote {out}/read.cir, read_result.json, "
          f"read_waveforms.npz, read.png")

    print("\nwrite-update pulses (engine: ngspice, MTJs switch inside the circuit):")
    print(f"{'array / program':<44}{'targets':>8}{'switched':>9}{'errors':>7}{'disturbs':>9}"
          f"{'I_sel (uA)':>11}{'ngspice s':>10}")
    # 1T1R: set row 3 of the read array (the P cells among them are the update), 10 ns.
    t = np.zeros(DEMO_SPEC.shape, bool)
    t[3, :] = True
    prog = PulseProgram(WriteScheme.ONE_T_ONE_R, Direction.SET, t, v_write_v=1.2,
                        pulse_width_s=10e-9)
    up_1t1r = _report_write(out, "write_1t1r_", xbar, prog, "1T1R 16x16, row 3 set, 1.2 V 10 ns")
    # passive V/2: set one cell of an all-P 16x16 array; half-selected cells see 0.25 V
    # (0.91 I_c0: thermally activated disturb, a few percent per cell in 20 ns).
    pspec = DEMO_SPEC.replace(kind=ArrayKind.PASSIVE)
    pxbar = Crossbar(pspec, np.zeros(pspec.shape, dtype=np.int8))
    prog = PulseProgram.single(pspec.shape, 5, 9, WriteScheme.V_HALF, Direction.SET,
                               v_write_v=0.5, pulse_width_s=20e-9)
    up_v2 = _report_write(out, "write_v2_", pxbar, prog, "passive 16x16, V/2 set (5,9), 0.5 V 20 ns")
    print(f"\nwrote {out}/write_1t1r_*, write_v2_* (netlist, result.json, waveforms, plot)")

    print("\nenergy per operation, from the ngspice waveforms (feedforward: 2*rows*cols ops per "
          "vector; update: one op per target cell):")
    print_energy([r.energy, up_1t1r, up_v2])
    write_energy_files(out, [r.energy, up_1t1r, up_v2])
    print(f"wrote {out}/energy.json, energy.csv, energy.png")
    return 0


def _report_write(out: Path, prefix: str, xbar: Crossbar, prog: PulseProgram, label: str,
                  seed: int = 1):
    w = write(xbar, prog, seed, workdir=out, netlist_name=f"{prefix}netlist.cir")
    write_write_run(out, xbar, prog, seed, w, prefix=prefix)
    i_sel = w.i_cell_peak_a[prog.targets].mean() * 1e6
    print(f"{label:<44}{int(prog.targets.sum()):>8}{int(w.switched.sum()):>9}"
          f"{int(w.write_errors.sum()):>7}{int(w.disturbed.sum()):>9}{i_sel:>11.1f}"
          f"{w.timings_s['ngspice_s']:>10.2f}")
    return w.energy
