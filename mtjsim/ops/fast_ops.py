"""read and write on the fast engine: the same inputs and the same result types as ngspice.

Reads: mtjsim.engines.fast (exact DC solve of the same network; batches share one
factorization). Writes: mtjsim.engines.fast_write (quasi-static: solve, advance every
device's switching progress, flip, re-solve). No netlist, no waveforms of line RC.
"""

from __future__ import annotations

import time

import numpy as np

from mtjsim.engines import fast
from mtjsim.ops.read import ReadResult, as_input_batch, resolve_reference


def fast_read(xbar, inputs_v, *, settings, i_ref_a=None) -> ReadResult:
    t0 = time.perf_counter()
    v_in = as_input_batch(inputs_v, xbar.spec.rows)
    i_ref = resolve_reference(xbar, v_in, i_ref_a)
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
RAMP_SOLVES = 4         # network solves per rise/fall edge
RAMP_GRID = 48          # points per solve interval on which rates are integrated


THERMAL_CAP_PER_S = 1e12   # models/mtj_stt.lib caps the thermal rate (exp(6.9) per ns)
REGIME_SHARPNESS = 500.0   # its tanh blend of the two regimes around i = 1
DRAIN = 10.0               # opposite-direction current drains progress at 10x its own rate


def _direction_rate(i, e, lnth, cells, c):
    """Rate (1/s) of one direction for i = current pushing that way / its I_c0, as in
    models/mtj_stt.lib: Neel-Brown (capped) blended into Sun's precession around i = 1."""
    with np.errstate(over="ignore"):
        thermal = np.minimum(np.exp(-c(cells.delta) * (1 - np.minimum(i, 1)))
                             / (c(cells.tau0_s) * e), THERMAL_CAP_PER_S)
    precess = np.maximum(i - 1, 0) / (c(cells.tau_d_s) * lnth)
    w = 0.5 + 0.5 * np.tanh(REGIME_SHARPNESS * (i - 1))
    return thermal + (precess - thermal) * w


def _rates(i_cell_a, states, cells, th):
    """(toward, away): progress rates of every cell toward the other state, and of the
    direction that keeps its state (which drains progress), for currents i_cell_a (t -> b),
    shaped like the array or with a trailing time axis."""
    def c(a):
        return a[..., None] if np.ndim(i_cell_a) == 3 else a
    i_ap = i_cell_a / c(cells.i_c0_p2ap_a)          # pushing toward AP
    i_p = -i_cell_a / c(cells.i_c0_ap2p_a)          # pushing toward P
    r_to_ap = _direction_rate(i_ap, c(th["ethp"]), c(th["lnthp"]), cells, c)
    r_to_p = _direction_rate(i_p, c(th["ethap"]), c(th["lnthap"]), cells, c)
    in_p = c(states == 0)
    return np.where(in_p, r_to_ap, r_to_p), np.where(in_p, r_to_p, r_to_ap)


def _evolve(p0, toward, away, dt):
    """Progress after dt under dp/dt = toward - DRAIN*away*p (constant rates): exact."""
    k = DRAIN * away
    kdt = k * dt
    small = kdt < 1e-9
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        decay = np.exp(-kdt)
        a = np.where(small, 0.0, toward / np.where(small, 1.0, k))
        out = np.where(small, p0 + toward * dt, a + (p0 - a) * decay)
    return out


def _time_to_reach_one(p0, toward, away):
    """Time for progress to reach 1 under constant rates (inf if it never does)."""
    k = DRAIN * away
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        linear = np.where(toward > 0, (1 - p0) / toward, np.inf)
        a = toward / np.where(k > 0, k, 1.0)
        ratio = (a - p0) / (a - 1)
        expo = np.where((a > 1) & (k > 0), np.log(np.where(ratio > 0, ratio, 1.0)) / np.where(
            k > 0, k, 1.0), np.inf)
        # when drain is negligible over the crossing time, the linear answer is exact enough
        use_linear = k * linear < 1e-6
    return np.where(use_linear, linear, expo)


def _line_rc_warning(spec, program):
    import warnings
    n = max(spec.rows, spec.cols)
    tau = (spec.r_driver_ohm + n * spec.r_wire_ohm) * n * spec.c_wire_f
    shortest = min(program.widths())
    if tau > 0 and shortest < 10 * tau:
        warnings.warn(f"fast engine: pulse width {shortest:.3g} s is not much longer than the "
                      f"line RC time constant (about {tau:.3g} s); the quasi-static write "
                      f"neglects line RC: use engine='ngspice' for this pulse", stacklevel=3)


def quasi_static_write(xbar, program, seed, *, update_states=False, threshold_scale=1.0,
                       ramp_grid=RAMP_GRID):
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
    if threshold_scale != 1.0:   # validation: which outcomes sit within a tolerance of threshold
        th = {"ethp": th["ethp"] * threshold_scale, "ethap": th["ethap"] * threshold_scale,
              "lnthp": th["lnthp"] * threshold_scale, "lnthap": th["lnthap"] * threshold_scale}
    dyn = dynamic_cells(xbar, program)
    net = WriteNetwork(xbar)
    states = xbar.states.copy()
    before = states.copy()
    progress = np.zeros(spec.shape)
    peak = np.zeros(spec.shape)
    charge = np.zeros(spec.shape)              # integral |I| dt
    energy = dict.fromkeys(("delivered", "array", "wires", "access", "periphery"), 0.0)
    trace = {"t": [0.0], "i": [np.zeros(spec.shape)], "s": [states.copy()]}
    x = None

    def solve(frac, levels):
        nonlocal x
        row_v, col_v, gate_v = levels
        # gates ramp with the other lines, as the netlist's PWL sources do
        sol = net.solve(states, frac * row_v, frac * col_v,
                        None if gate_v is None else frac * gate_v, x)
        x = sol.x
        return sol

    def account(sol0, sol1, dt, t_end):
        """Bookkeeping of a stretch between two solutions (linear in between)."""
        np.maximum(peak, np.maximum(np.abs(sol0.i_cell_a), np.abs(sol1.i_cell_a)), out=peak)
        charge[:] += 0.5 * (np.abs(sol0.i_cell_a) + np.abs(sol1.i_cell_a)) * dt
        for k in energy:
            energy[k] += 0.5 * (sol0.power_w[k] + sol1.power_w[k]) * dt
        trace["t"].append(t_end)
        trace["i"].append(sol1.i_cell_a.copy())
        trace["s"].append(states.copy())

    def flip(mask):
        nonlocal states
        states = np.where(mask, 1 - states, states).astype(np.int8)
        progress[mask] = 0.0

    def ramp(f0, f1, duration, t0, levels):
        """An edge: the line voltages go linearly from f0 to f1 of their levels. Between two
        solves the cell currents are taken linear in time and the (exponential) rates are
        integrated on a fine grid, so a current passing through I_c0 is not stepped over."""
        sol0 = solve(f0, levels)
        while duration > 0:
            sol1 = solve(f1, levels)
            tau = np.linspace(0.0, duration, ramp_grid)
            cur = sol0.i_cell_a[..., None] + np.multiply.outer(
                sol1.i_cell_a - sol0.i_cell_a, tau / duration)
            mid = 0.5 * (cur[..., 1:] + cur[..., :-1])           # midpoint of each grid step
            toward, away = _rates(mid, states, cells, th)
            toward = np.where(dyn[..., None], toward, 0.0)
            cum = np.empty(spec.shape + (ramp_grid,))
            cum[..., 0] = progress
            for m in range(ramp_grid - 1):
                cum[..., m + 1] = _evolve(cum[..., m], toward[..., m], away[..., m],
                                          tau[m + 1] - tau[m])
            crossed = cum >= 1
            if not crossed.any():
                progress[:] = cum[..., -1]
                account(sol0, sol1, duration, t0 + duration)
                return
            k = int(np.argmax(crossed.any(axis=(0, 1))))    # first grid point with a crossing
            frac_k = f0 + (f1 - f0) * tau[k] / duration
            mid = solve(frac_k, levels)                     # before the flip
            progress[:] = cum[..., k]
            account(sol0, mid, tau[k], t0 + tau[k])
            flip(crossed[..., k])
            f0, duration, t0 = frac_k, duration - tau[k], t0 + tau[k]
            sol0 = solve(f0, levels)

    def flat(duration, t0, levels):
        """The flat top: constant line voltages, so each rate is constant until a flip."""
        while duration > 0:
            sol = solve(1.0, levels)
            toward, away = _rates(sol.i_cell_a, states, cells, th)
            toward = np.where(dyn, toward, 0.0)
            dt = min(duration, float(_time_to_reach_one(progress, toward, away).min()))
            progress[:] = _evolve(progress, toward, away, dt)
            account(sol, sol, dt, t0 + dt)
            duration, t0 = duration - dt, t0 + dt
            crossed = progress >= 1 - 1e-12
            if crossed.any():
                flip(crossed)

    for (sel_r, sel_c), width, (w0, w1) in zip(program.pulses(), program.widths(),
                                               program.windows_s()):
        levels = line_levels(program, spec.kind, sel_r, sel_c)
        for k in range(RAMP_SOLVES):
            ramp(k / RAMP_SOLVES, (k + 1) / RAMP_SOLVES, program.rise_s / RAMP_SOLVES,
                 w0 + k * program.rise_s / RAMP_SOLVES, levels)
        flat(width, w0 + program.rise_s, levels)
        for k in range(RAMP_SOLVES):
            ramp(1 - k / RAMP_SOLVES, 1 - (k + 1) / RAMP_SOLVES, program.fall_s / RAMP_SOLVES,
                 w1 - program.fall_s + k * program.fall_s / RAMP_SOLVES, levels)
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
        waveforms={"time_s": np.array(trace["t"]), "i_cell_a": np.stack(trace["i"], -1),
                   "state": np.stack(trace["s"], -1).astype(np.float32)},
        energy=report)
