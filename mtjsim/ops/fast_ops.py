"""read and write on the fast engine: the same inputs and the same result types as ngspice.

Reads: mtjsim.engines.fast (exact DC solve of the same network; batches share one
factorization). Writes: mtjsim.engines.fast_write (quasi-static: solve, advance every
device's switching progress, flip, re-solve). No netlist, no waveforms of line RC.
"""

from __future__ import annotations

import time

import numpy as np

from mtjsim.engines import fast
from mtjsim.ops.read import ReadResult, as_input_batch, reference_current_a


def fast_read(xbar, inputs_v, *, settings, i_ref_a=None) -> ReadResult:
    t0 = time.perf_counter()
    v_in = as_input_batch(inputs_v, xbar.spec.rows)
    batch = len(v_in)
    i_ref = reference_current_a(xbar, v_in) if i_ref_a is None else \
        np.broadcast_to(np.asarray(i_ref_a, dtype=float), (batch,)).copy()
    res = fast.fast_read(xbar, v_in)
    v_cell = res.v_cell_v[0]
    return ReadResult(
        i_out_a=res.i_out_a, v_in_v=v_in,
        r_cell_ohm=1.0 / xbar.cells.conductance_s(v_cell, xbar.states), v_cell_v=v_cell,
        decision=(res.i_out_a > i_ref[:, None]).astype(np.int8), i_ref_a=i_ref,
        states=xbar.states.copy(), netlist_path=None,
        timings_s={"fast_s": time.perf_counter() - t0, **res.timings_s})


def fast_write(xbar, program, seed, *, update_states=False):
    return quasi_static_write(xbar, program, seed, update_states=update_states)


# --- quasi-static writes -------------------------------------------------------------------
RAMP_STEPS = 4          # sub-steps per rise/fall edge (midpoint rule on the ramp)


def _rates(i_cell_a, states, cells, th):
    """Switching-progress rates (1/s) of every cell toward the other state: the same
    equations as models/mtj_stt.lib (Neel-Brown below I_c0, Sun above; i = current pushing
    toward the other state over that direction's I_c0)."""
    to_ap = states == 0
    i = np.where(to_ap, i_cell_a / cells.i_c0_p2ap_a, -i_cell_a / cells.i_c0_ap2p_a)
    e = np.where(to_ap, th["ethp"], th["ethap"])
    lnth = np.where(to_ap, th["lnthp"], th["lnthap"])
    with np.errstate(over="ignore"):
        thermal = np.exp(-cells.delta * (1 - np.minimum(i, 1))) / (cells.tau0_s * e)
    precess = np.maximum(i - 1, 0) / (cells.tau_d_s * lnth)
    return np.where(i < 1, thermal, precess)


def _line_rc_warning(spec, program):
    import warnings
    n = max(spec.rows, spec.cols)
    tau = (spec.r_driver_ohm + n * spec.r_wire_ohm) * n * spec.c_wire_f
    shortest = min(program.widths())
    if tau > 0 and shortest < 10 * tau:
        warnings.warn(f"fast engine: pulse width {shortest:.3g} s is not much longer than the "
                      f"line RC time constant (about {tau:.3g} s); the quasi-static write "
                      f"neglects line RC: use engine='ngspice' for this pulse", stacklevel=3)


def quasi_static_write(xbar, program, seed, *, update_states=False):
    """Quasi-static write: for each pulse segment solve the DC network, advance every
    device's progress at its current's rate, flip the first device that reaches 1, re-solve,
    go on. Same thresholds as the ngspice netlist for the same seed (cell_thresholds)."""
    from mtjsim.energy.accounting import Energies
    from mtjsim.energy.report import update_report
    from mtjsim.engines.fast_network import WriteNetwork
    from mtjsim.ops.write import WriteResult, cell_thresholds, dynamic_cells, line_levels

    t_start = time.perf_counter()
    spec, cells = xbar.spec, xbar.cells
    if program.targets.shape != spec.shape:
        raise ValueError(f"targets shape {program.targets.shape}: must be {spec.shape}")
    _line_rc_warning(spec, program)
    th = cell_thresholds(xbar, seed)
    dyn = dynamic_cells(xbar, program)
    net = WriteNetwork(xbar)
    states = xbar.states.copy()
    before = states.copy()
    progress = np.zeros(spec.shape)
    peak = np.zeros(spec.shape)
    charge = np.zeros(spec.shape)              # integral |I| dt
    energy = {"delivered": 0.0, "array": 0.0, "wires": 0.0, "access": 0.0, "periphery": 0.0}
    times, currents, state_trace = [0.0], [np.zeros(spec.shape)], [states.copy()]
    x = None
    t_now = program.gap_s
    for (sel_r, sel_c), width, (w0, w1) in zip(program.pulses(), program.widths(),
                                               program.windows_s()):
        row_v, col_v, gate_v = line_levels(program, spec.kind, sel_r, sel_c)
        edge_r = program.rise_s / RAMP_STEPS
        edge_f = program.fall_s / RAMP_STEPS
        # (fraction of the levels, duration) segments: rise midpoints, flat top, fall midpoints
        segments = ([((k + 0.5) / RAMP_STEPS, edge_r) for k in range(RAMP_STEPS)]
                    + [(1.0, width)]
                    + [(1 - (k + 0.5) / RAMP_STEPS, edge_f) for k in range(RAMP_STEPS)])
        t_now = w0
        for frac, duration in segments:
            left = duration
            while left > 0:
                # gates ramp with the other lines, as in the netlist's PWL sources
                sol = net.solve(states, frac * row_v, frac * col_v,
                                None if gate_v is None else frac * gate_v, x)
                x = sol.x
                i = sol.i_cell_a
                rate = np.where(dyn, _rates(i, states, cells, th), 0.0)
                with np.errstate(divide="ignore"):
                    t_cross = np.where(rate > 0, (1 - progress) / rate, np.inf)
                dt = min(left, float(t_cross.min()))
                progress += rate * dt
                np.maximum(peak, np.abs(i), out=peak)
                charge += np.abs(i) * dt
                for k in energy:
                    energy[k] += sol.power_w[k] * dt
                t_now += dt
                left -= dt
                flip = progress >= 1 - 1e-12
                if flip.any():
                    states = np.where(flip, 1 - states, states).astype(np.int8)
                    progress[flip] = 0.0
                times.append(t_now)
                currents.append(i.copy())
                state_trace.append(states.copy())
        t_now = w1
    pulse_time = sum(b - a for a, b in program.windows_s())
    switched = (states != before).astype(np.int8)
    e = Energies(0.0, program.duration_s, energy["delivered"],
                 {"array": energy["array"], "wires": energy["wires"], "access": energy["access"],
                  "periphery": energy["periphery"]}, 0.0)
    report = update_report(e, int(program.targets.sum()),
                           {f"{i}_{j}" for i, j in np.argwhere(switched)},
                           {**spec.record(), "engine": "fast", "scheme": program.scheme.value,
                            "direction": program.direction.value,
                            "v_write_v": program.v_write_v,
                            "pulse_width_s": program.pulse_width_s,
                            "n_pulses": len(program.pulses())},
                           latency_s=program.duration_s)
    if update_states:
        xbar.states = states.copy()
    return WriteResult(
        switched=switched, states_before=before, states_after=states.copy(),
        targets=program.targets.copy(), target_state=program.direction.target_state,
        i_cell_peak_a=peak, i_cell_mean_a=charge / pulse_time, thresholds=th, dynamic=dyn,
        netlist_path=None, timings_s={"fast_s": time.perf_counter() - t_start},
        waveforms={"time_s": np.array(times), "i_cell_a": np.stack(currents, -1),
                   "state": np.stack(state_trace, -1).astype(np.float32)},
        energy=report)
