"""Quasi-static writes on the fast engine: for each pulse segment solve the DC write network
(``mtjsim.engines.fast_network``), advance every device's switching progress at its
current's rate, flip the devices that reach 1, re-solve, go on.

The progress equation, thresholds, regime blend, thermal rate cap and progress drain are
those of ``models/mtj_stt.lib`` (same seed -> same per-cell thresholds as the netlist, via
``mtjsim.ops.write.cell_thresholds``). Line RC is neglected (a warning says when a pulse is
not much longer than the line time constant); see docs/fast_engine.md.

Cost control, none of which changes the answer beyond the solver tolerance:

* solutions are kept per (line-voltage fraction) until a device flips, so a pulse's fall
  reuses its rise when nothing switched, and every ramp segment starts from the last one;
* the fine time grid of the edges (exponential rates integrated through I_c0) runs only for
  devices whose progress can change by more than 1e-9 within the segment; the others advance
  by the exact constant-rate step at the segment's mean rates (a change below 1e-9 either
  way);
* the recurrence over the grid is evaluated in closed form (cumulative sums), not stepwise.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from mtjsim.engines.fast_network import FastSolveError, WriteNetwork

RAMP_SOLVES = 4            # network solves per rise/fall edge
RAMP_GRID = 48             # points per solve interval on which rates are integrated
THERMAL_CAP_PER_S = 1e12   # models/mtj_stt.lib caps the thermal rate (exp(6.9) per ns)
REGIME_SHARPNESS = 500.0   # its tanh blend of the two regimes around i = 1
DRAIN = 10.0               # opposite-direction current drains progress at 10x its own rate
NEGLIGIBLE_PROGRESS = 1e-9  # below this a segment's progress cannot change an outcome
POWER_KEYS = ("delivered", "array", "wires", "access", "periphery")   # a write's energy


def regime_weight(i):
    """Weight of Sun's precessional rate in the model's rate at i = I/I_c0 (the rest is
    Neel-Brown's): models/mtj_stt.lib's tanh blend around i = 1."""
    return 0.5 + 0.5 * np.tanh(REGIME_SHARPNESS * (i - 1))


def rate_terms(i, delta, tau0_s, tau_d_s, i_end=None, edge_thermal_scale=1.0):
    """(thermal, precessional) parts of one direction's rate before the thresholds (1/s),
    for i = current pushing that way / its I_c0: Neel-Brown ``exp(-delta (1 - i))/tau0``
    weighted by ``1 - regime_weight``, Sun's ``(i - 1)+/tau_D`` by ``regime_weight``.

    With ``i_end``: their means over a step in which the current goes linearly from ``i``
    to ``i_end`` (an edge between two solves). The thermal rate peaks at ~1/tau0 just below
    I_c0 and the blend cuts it off within 0.2 % of I_c0 above: a sample at the step's
    midpoint catches that peak whole or misses it, which moved an edge's thermal progress
    by up to ~20 % with 47 steps per solve interval (and the planner, with 48, disagreed
    with the engine by that much: 3 % of a requested P of 0.02). The means are exact for
    the regimes switched at I_c0 (the blend's share of the integral is below 1 %); a step
    with equal ends (a flat top) takes the point rates, blend included.
    ``edge_thermal_scale`` scales the thermal means of the steps (validation harness)."""
    if i_end is None:
        w = regime_weight(i)
        with np.errstate(over="ignore", under="ignore"):
            thermal = np.exp(-delta * (1 - np.minimum(i, 1))) / tau0_s
        return (1 - w) * thermal, w * np.maximum(i - 1, 0) / tau_d_s
    lo, hi = np.minimum(i, i_end), np.maximum(i, i_end)
    span = hi - lo
    step = span > 0
    safe = np.where(step, span, 1.0)
    # Neel-Brown below I_c0: exp(-delta (1 - b)) (1 - exp(-delta (b - a))) / (delta span),
    # a, b the step's ends capped at 1 (no overflow, no cancellation for short steps)
    a, b = np.minimum(lo, 1), np.minimum(hi, 1)
    with np.errstate(over="ignore", under="ignore"):
        thermal = (np.exp(-delta * (1 - b)) * -np.expm1(-delta * (b - a))
                   / (delta * safe * tau0_s))
    # Sun above it: the part of the step above 1 times its mean drive there
    above = np.clip((hi - 1) / safe, 0, 1)
    precess = above * 0.5 * (np.maximum(hi - 1, 0) + np.maximum(lo - 1, 0)) / tau_d_s
    th_pt, pr_pt = rate_terms(lo, delta, tau0_s, tau_d_s)
    return (np.where(step, thermal * edge_thermal_scale, th_pt),
            np.where(step, precess, pr_pt))


def _direction_rate(i, e, lnth, delta, tau0_s, tau_d_s, i_end=None, edge_thermal_scale=1.0):
    """Rate (1/s) of one direction for i = current pushing that way / its I_c0, as in
    models/mtj_stt.lib: Neel-Brown (capped) blended into Sun's precession around i = 1
    (``rate_terms``; with ``i_end`` the mean over a linear step from i to i_end)."""
    thermal, precess = rate_terms(i, delta, tau0_s, tau_d_s, i_end, edge_thermal_scale)
    return np.minimum(thermal / e, THERMAL_CAP_PER_S) + precess / lnth


class _Cells:
    """Per-cell switching parameters, flattened, so subsets are cheap to take."""

    def __init__(self, cells, th, states):
        f = {k: np.asarray(v, float).ravel() for k, v in (
            ("ic_ap", cells.i_c0_p2ap_a), ("ic_p", cells.i_c0_ap2p_a), ("delta", cells.delta),
            ("tau0", cells.tau0_s), ("tau_d", cells.tau_d_s), ("ethp", th["ethp"]),
            ("ethap", th["ethap"]), ("lnthp", th["lnthp"]), ("lnthap", th["lnthap"]))}
        self.__dict__.update(f)
        self.in_p = np.asarray(states).ravel() == 0
        self.edge_thermal_scale = 1.0       # validation harness: see quasi_static_write

    def rates(self, i_cell_a, idx, i_end_a=None):
        """(toward, away) for cells ``idx`` and currents (len(idx),) or (len(idx), grid):
        toward the other state, and of the direction that keeps the state (which drains
        progress). Current is t -> b, positive pushes toward AP. With ``i_end_a`` (same
        shape): the mean rates over steps in which the current goes linearly from
        ``i_cell_a`` to it."""
        def c(a):
            a = a[idx]
            return a[:, None] if np.ndim(i_cell_a) == 2 else a
        d, t0, td = c(self.delta), c(self.tau0), c(self.tau_d)
        ic_ap, ic_p = c(self.ic_ap), c(self.ic_p)
        end_ap = None if i_end_a is None else i_end_a / ic_ap
        end_p = None if i_end_a is None else -i_end_a / ic_p
        k = self.edge_thermal_scale
        r_ap = _direction_rate(i_cell_a / ic_ap, c(self.ethp), c(self.lnthp), d, t0, td,
                               end_ap, k)
        r_p = _direction_rate(-i_cell_a / ic_p, c(self.ethap), c(self.lnthap), d, t0, td,
                              end_p, k)
        in_p = c(self.in_p)
        return np.where(in_p, r_ap, r_p), np.where(in_p, r_p, r_ap)


def _evolve(p0, toward, away, dt):
    """Progress after dt under dp/dt = toward - DRAIN*away*p (constant rates): exact."""
    k = DRAIN * away
    kdt = k * dt
    small = kdt < 1e-9
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = np.where(small, 0.0, toward / np.where(small, 1.0, k))
        return np.where(small, p0 + toward * dt, a + (p0 - a) * np.exp(-kdt))


def _evolve_grid(p0, toward, away, dt):
    """Progress at every grid point (cells, grid) for rates constant on each grid step
    (cells, grid - 1) of lengths dt ((grid - 1,) or (cells, grid - 1)): the recurrence
    p' = p e^{-k dt} + a (1 - e^{-k dt}) (a = toward / k) in closed form,
    p_m = E_m (p0 + sum_{l<m} b_l / E_{l+1}) with E_m = exp(-sum_{l<m} k_l dt_l). Cells
    whose drain makes E underflow use the stepwise form."""
    dt = np.broadcast_to(dt, toward.shape)       # (grid - 1,) or one row per cell
    k = DRAIN * away
    kdt = k * dt
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        small = kdt < 1e-9
        b = np.where(small, toward * dt, toward / np.where(small, 1.0, k) * -np.expm1(-kdt))
    cum = np.concatenate([np.zeros((p0.size, 1)), np.cumsum(kdt, axis=1)], axis=1)
    ok = cum[:, -1] < 600
    out = np.empty((p0.size, toward.shape[1] + 1))
    if ok.any():
        c = cum[ok]
        inc = np.cumsum(b[ok] * np.exp(c[:, 1:]), axis=1)
        out[ok, 0] = p0[ok]
        out[ok, 1:] = np.exp(-c[:, 1:]) * (p0[ok, None] + inc)
    for n in np.flatnonzero(~ok):           # strong drain: a few cells, step by step
        out[n, 0] = p0[n]
        for m in range(toward.shape[1]):
            out[n, m + 1] = _evolve(out[n, m], toward[n, m], away[n, m], dt[n, m])
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


def line_rc_warning(spec, program):
    n = max(spec.rows, spec.cols)
    tau = (spec.r_driver_ohm + n * spec.r_wire_ohm) * n * spec.c_wire_f
    shortest = min(program.widths())
    if tau > 0 and shortest < 10 * tau:
        warnings.warn(f"fast engine: pulse width {shortest:.3g} s is not much longer than the "
                      f"line RC time constant (about {tau:.3g} s); the quasi-static write "
                      f"neglects line RC: use engine='ngspice' for this pulse", stacklevel=3)


@dataclass
class Assembled:
    """What a write did, for its WriteResult."""

    states: np.ndarray           # flat, after the program
    peak: np.ndarray             # flat, largest |I|
    charge: np.ndarray           # flat, integral |I| dt
    energy: dict                 # POWER_KEYS -> J
    trace_t: list
    trace_i: list                # flat float32 currents at each point
    trace_s: list                # flat states at each point (before its flips)


def _sequential(xbar, program, cells, dyn_idx, states, ramp_grid):
    """Pulse after pulse on the full write network (fast_network.WriteNetwork)."""
    from mtjsim.ops.write import line_levels
    spec = xbar.spec
    net = WriteNetwork(xbar)
    progress = np.zeros(states.size)
    peak = np.zeros(states.size)
    charge = np.zeros(states.size)             # integral |I| dt
    energy = dict.fromkeys(POWER_KEYS, 0.0)
    trace_t, trace_i, trace_s = [0.0], [np.zeros(states.size, np.float32)], [states.copy()]
    solved = {}                                # fraction -> solution, until a flip

    def solve(frac, levels):
        sol = solved.get(frac)
        if sol is None:
            row_v, col_v, gate_v = levels
            # gates ramp with the other lines, as the netlist's PWL sources do
            sol = net.solve(states, frac * row_v, frac * col_v,
                            None if gate_v is None else frac * gate_v)
            solved[frac] = sol
        return sol

    def account(sol0, sol1, dt, t_end):
        """Bookkeeping of a stretch between two solutions (linear in between)."""
        a0, a1 = np.abs(sol0.i_flat), np.abs(sol1.i_flat)
        np.maximum(peak, np.maximum(a0, a1), out=peak)
        charge[:] += 0.5 * (a0 + a1) * dt
        for k in energy:
            energy[k] += 0.5 * (sol0.power_w[k] + sol1.power_w[k]) * dt
        trace_t.append(t_end)
        trace_i.append(sol1.i_flat.astype(np.float32))
        trace_s.append(states.copy())

    def flip(idx):
        states[idx] = 1 - states[idx]
        cells.in_p[idx] = states[idx] == 0
        progress[idx] = 0.0
        solved.clear()

    def ramp(f0, f1, duration, t0, levels):
        """An edge: the line voltages go linearly from f0 to f1 of their levels. Between two
        solves the cell currents are taken linear in time and the (exponential) rates are
        integrated on a fine grid of their exact step means (``rate_terms``), so a current
        passing through I_c0 is not stepped over."""
        while duration > 0:
            sol0, sol1 = solve(f0, levels), solve(f1, levels)
            i0, i1 = sol0.i_flat[dyn_idx], sol1.i_flat[dyn_idx]
            # which cells can gain non-negligible progress here: rates are monotonic in the
            # current pushing each way, so the larger end bounds them
            tw0, aw0 = cells.rates(i0, dyn_idx)
            tw1, aw1 = cells.rates(i1, dyn_idx)
            p = progress[dyn_idx]
            fine = (np.maximum(tw0, tw1) * duration > NEGLIGIBLE_PROGRESS) | (
                (p > NEGLIGIBLE_PROGRESS)
                & (DRAIN * np.maximum(aw0, aw1) * duration > NEGLIGIBLE_PROGRESS))
            coarse = dyn_idx[~fine]
            fine_idx = dyn_idx[fine]
            tau = np.linspace(0.0, duration, ramp_grid)
            cum = None
            if fine_idx.size:
                a, b = i0[fine], i1[fine]
                cur = a[:, None] + np.multiply.outer(b - a, tau / duration)   # grid points
                toward, away = cells.rates(cur[:, :-1], fine_idx, cur[:, 1:])  # step means
                cum = _evolve_grid(progress[fine_idx], toward, away, np.diff(tau))
            if cum is None or not (cum >= 1).any():
                if cum is not None:
                    progress[fine_idx] = cum[:, -1]
                progress[coarse] = _evolve(progress[coarse], 0.5 * (tw0 + tw1)[~fine],
                                           0.5 * (aw0 + aw1)[~fine], duration)
                account(sol0, sol1, duration, t0 + duration)
                return
            crossed = cum >= 1
            m = int(np.argmax(crossed.any(axis=0)))          # first grid point with a crossing
            frac_m = f0 + (f1 - f0) * tau[m] / duration
            mid = solve(frac_m, levels)                      # before the flip
            progress[fine_idx] = cum[:, m]
            progress[coarse] = _evolve(progress[coarse], 0.5 * (tw0 + tw1)[~fine],
                                       0.5 * (aw0 + aw1)[~fine], tau[m])
            account(sol0, mid, tau[m], t0 + tau[m])
            flip(fine_idx[crossed[:, m]])
            f0, duration, t0 = frac_m, duration - tau[m], t0 + tau[m]

    def flat(duration, t0, levels):
        """The flat top: constant line voltages, so each rate is constant until a flip."""
        while duration > 0:
            sol = solve(1.0, levels)
            toward, away = cells.rates(sol.i_flat[dyn_idx], dyn_idx)
            p = progress[dyn_idx]
            dt = min(duration, float(_time_to_reach_one(p, toward, away).min(initial=np.inf)))
            progress[dyn_idx] = _evolve(p, toward, away, dt)
            account(sol, sol, dt, t0 + dt)
            duration, t0 = duration - dt, t0 + dt
            crossed = dyn_idx[progress[dyn_idx] >= 1 - 1e-12]
            if crossed.size:
                flip(crossed)

    for (sel_r, sel_c), width, (w0, w1) in zip(program.pulses(), program.widths(),
                                               program.windows_s()):
        levels = line_levels(program, spec.kind, sel_r, sel_c)
        solved.clear()
        for k in range(RAMP_SOLVES):
            ramp(k / RAMP_SOLVES, (k + 1) / RAMP_SOLVES, program.rise_s / RAMP_SOLVES,
                 w0 + k * program.rise_s / RAMP_SOLVES, levels)
        flat(width, w0 + program.rise_s, levels)
        for k in range(RAMP_SOLVES):
            ramp(1 - k / RAMP_SOLVES, 1 - (k + 1) / RAMP_SOLVES, program.fall_s / RAMP_SOLVES,
                 w1 - program.fall_s + k * program.fall_s / RAMP_SOLVES, levels)
    return (Assembled(states, peak, charge, energy, trace_t, trace_i, trace_s),
            {"factorizations": net.n_factorizations})


def quasi_static_write(xbar, program, seed, *, update_states=False, threshold_scale=1.0,
                       edge_thermal_scale=1.0, ramp_grid=RAMP_GRID, batched=True,
                       thresholds=None, waveforms=True):
    """Quasi-static write of ``program`` on ``xbar`` with the thresholds of ``seed``; returns
    ``mtjsim.ops.write.WriteResult`` (waveforms at the solve points, energy report).
    ``threshold_scale``, ``edge_thermal_scale`` (the thermal progress of the edges' steps,
    where the current sweeps through I_c0) and ``ramp_grid`` exist for the validation
    harness; ``thresholds`` (``ops.write.cell_thresholds``' dict) replaces the seed's, e.g.
    one seed per pulse (``train.backends.run_program``); ``waveforms=False`` skips them
    (they hold every cell at every solve point: ~100 MB for a 128-pulse program on
    128x128).

    1T1R column programs (one pulse per column, as training issues) run with all pulses
    advanced together on their hot-cell networks (``fast_write_columns``); ``batched=False``
    runs them pulse after pulse on the full network instead (the reference for tests)."""
    from mtjsim.energy.accounting import Energies
    from mtjsim.energy.report import update_report
    from mtjsim.circuit.crossbar import ArrayKind
    from mtjsim.engines import fast_write_columns as columns
    from mtjsim.engines.fast_hot import HotColumnNetwork
    from mtjsim.ops.write import WriteResult, cell_thresholds, dynamic_cells

    t_start = time.perf_counter()
    spec = xbar.spec
    shape = spec.shape
    if program.targets.shape != shape:
        raise ValueError(f"targets shape {program.targets.shape}: must be {shape}")
    line_rc_warning(spec, program)
    th = cell_thresholds(xbar, seed) if thresholds is None else thresholds
    if threshold_scale != 1.0:   # validation: which outcomes sit within a tolerance of threshold
        th = {k: v * threshold_scale for k, v in th.items()}
    dyn = dynamic_cells(xbar, program).ravel()
    dyn_idx = np.flatnonzero(dyn)
    states = xbar.states.ravel().copy()
    before = states.copy()
    cells = _Cells(xbar.cells, th, states)
    cells.edge_thermal_scale = edge_thermal_scale
    pulses = None
    if spec.kind is ArrayKind.ONE_T_ONE_R and batched:
        hot = HotColumnNetwork(xbar)
        pulses = columns.plan(xbar, program, hot)
    if pulses is not None:
        runner = columns.ColumnProgramWrite(spec, pulses, cells, hot, ramp_grid)
        try:
            done = columns.assemble(pulses, runner.run(before, waveforms), before, shape,
                                    waveforms)
            solver = {"hot_solves": runner.n_items, "passes": runner.passes}
        except FastSolveError:             # e.g. idle lines too resistive: the full network
            cells = _Cells(xbar.cells, th, states)
            pulses = None
    if pulses is None:
        done, solver = _sequential(xbar, program, cells, dyn_idx, states, ramp_grid)
    states, peak, charge, energy = done.states, done.peak, done.charge, done.energy
    trace_t, trace_i, trace_s = done.trace_t, done.trace_i, done.trace_s
    pulse_time = sum(b - a for a, b in program.windows_s())
    states2 = states.reshape(shape)
    switched = (states2 != xbar.states).astype(np.int8)
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
    before2 = before.reshape(shape)
    if update_states:
        xbar.states = states2.copy()
    return WriteResult(
        switched=switched, states_before=before2, states_after=states2.copy(),
        targets=program.targets.copy(), target_state=program.direction.target_state,
        i_cell_peak_a=peak.reshape(shape), i_cell_mean_a=(charge / pulse_time).reshape(shape),
        thresholds=th, dynamic=dyn.reshape(shape), netlist_path=None,
        timings_s={"fast_s": time.perf_counter() - t_start, **solver},
        waveforms=None if not waveforms else {
            "time_s": np.array(trace_t),
            "i_cell_a": np.stack(trace_i, -1).reshape(shape + (-1,)),
            "state": np.stack(trace_s, -1).reshape(shape + (-1,)).astype(np.float32)},
        energy=report)
