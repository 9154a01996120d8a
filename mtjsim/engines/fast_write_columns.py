"""Quasi-static writes of 1T1R column programs with all pulses advanced together.

The programs training issues on 1T1R tiles are one pulse per column, each with the
column's target rows gated (``mtjsim.train.programs``). Every pulse is a column pulse of
``fast_hot.HotColumnNetwork``, and every cell that can switch (a gated cell of the driven
column) belongs to exactly one pulse. The sequential engine (``fast_write``) handles such a
program pulse after pulse, ~10 solves each. Here:

* each round solves the next stretch of every unfinished pulse at once: the hot-cell
  networks of all (pulse, ramp fraction) pairs in one batched Newton (pulses padded to the
  most gated rows);
* the switching progress of all hot cells is integrated in one array over every pulse's
  remaining timeline: rise and fall edges on the same fine grid as ``fast_write``, the flat
  top exactly (the crossing time in closed form);
* a pulse whose cell reaches its threshold stops there: the cell flips, and the next round
  re-solves that pulse from the flip on, as the sequential engine does.

A pulse sees the cells that earlier pulses flipped in its gated rows (its idle cells, as
linear shunts). The first pass takes the program's starting states for them; each further
pass re-runs only the pulses whose gated rows then hold different states than they were
solved with. The first pulse with a stale input becomes exact in each pass, so this ends,
and its fixed point is the sequential answer (usually after two passes).

Differences from ``fast_write`` below its solver tolerance: progress of cells away from
their pulse (microamps: thermal rates ~1e-10/s) is not integrated, and every hot cell
runs on the fine grid (``fast_write`` advances cells whose progress cannot change by 1e-9
with the segment's mean rates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtjsim.engines.fast_hot import HotColumnNetwork, Items
from mtjsim.engines.fast_network import FastSolveError
from mtjsim.engines.fast_write import (POWER_KEYS, RAMP_SOLVES, Assembled, _evolve,
                                       _evolve_grid, _time_to_reach_one)


@dataclass
class _Pulse:
    """One column pulse: where it acts and its timeline (knots of the piecewise-linear
    line voltages: rise in RAMP_SOLVES steps, flat top, fall)."""

    j: int
    lv: float
    hv: float
    rows: np.ndarray             # gated rows
    v_gate: np.ndarray           # their gate levels
    floor: float
    knot_t: np.ndarray           # (2 RAMP_SOLVES + 2,) s
    knot_f: np.ndarray           # fraction of the levels at each knot
    cells: np.ndarray            # flat indices of the hot cells (rows, j)


@dataclass
class _Outcome:
    """What one pulse did: its solve points (time, gated rows' currents, power) and the
    cells that flipped at each point (after it)."""

    t: list
    i_rows: list                 # (k, C) MTJ currents of the gated rows arriving at the point
    power: list                  # (5,) watts, POWER_KEYS order
    flips: list                  # flat cell indices flipped right after the point
    i_next: list                 # currents and power leaving the point: after a flip, the
    p_next: list                 # network with the new states


def pulse_currents(xbar, program) -> np.ndarray | None:
    """MTJ currents (t -> b) of every pulse of a column program at its full levels with the
    array's present states, (n_pulses, rows, cols), NaN outside each pulse's gated rows;
    None when the program is not one (``plan``) or its solve fails (the caller has its own
    estimate then). The training planner's estimate."""
    hot = HotColumnNetwork(xbar)
    pulses = plan(xbar, program, hot)
    if pulses is None:
        return None
    start = xbar.states.ravel()
    runner = ColumnProgramWrite(xbar, pulses, None, hot, ramp_grid=2)
    try:
        solved = runner._solve([(p, 1.0, start[q.cells]) for p, q in enumerate(pulses)],
                               [start] * len(pulses))
    except FastSolveError:
        return None
    out = np.full((len(pulses),) + xbar.spec.shape, np.nan)
    for p, (q, (i_rows, _, _)) in enumerate(zip(pulses, solved)):
        out[p, q.rows] = i_rows
    return out


def plan(xbar, program, hot: HotColumnNetwork) -> list[_Pulse] | None:
    """The program's pulses as column pulses, or None when it is not a column program of
    this kind (the caller then runs the sequential engine)."""
    from mtjsim.ops.write import line_levels
    spec = xbar.spec
    C = spec.cols
    n = RAMP_SOLVES
    pulses, owner = [], np.full(spec.rows * C, -1)
    for (sel_r, sel_c), (w0, w1) in zip(program.pulses(), program.windows_s()):
        v_row, v_col, v_gate = line_levels(program, spec.kind, sel_r, sel_c)
        cp = hot.column_pulse(v_row, v_col, v_gate)
        if cp is None:
            return None
        j, lv, hv, rows = cp
        rise, fall = program.rise_s, program.fall_s
        knot_t = np.concatenate([w0 + rise * np.arange(n + 1) / n,
                                 w1 - fall + fall * np.arange(n + 1) / n])
        knot_f = np.concatenate([np.arange(n + 1) / n, 1 - np.arange(n + 1) / n])
        p = _Pulse(j, lv, hv, rows, np.asarray(v_gate, float)[rows],
                   min(0.0, float(v_row.min()), float(v_col.min())), knot_t, knot_f,
                   rows * C + j)
        if (owner[p.cells] >= 0).any():
            return None                    # a cell driven by two pulses: sequential engine
        owner[p.cells] = len(pulses)
        pulses.append(p)
    return pulses


class ColumnProgramWrite:
    """Runs a planned column program; ``cells`` is fast_write._Cells (thresholds, rates)."""

    def __init__(self, xbar, pulses: list[_Pulse], cells, hot: HotColumnNetwork,
                 ramp_grid: int):
        self.spec = xbar.spec
        self.pulses = pulses
        self.cells = cells
        self.hot = hot
        self.grid = ramp_grid - 1          # steps per segment
        self.n_items = 0
        self.passes = 0
        self._idle: dict = {}           # (pulse, fraction) -> its idle lines in this pass
        self._w_warm: dict = {}         # (pulse, fraction) -> idle bit-line voltages
        # per pulse, padded at the front to the most gated rows K (see _solve)
        self.K = max(q.rows.size for q in pulses)
        self._pad = np.array([self.K - q.rows.size for q in pulses])
        self._rows = np.stack([np.concatenate([np.full(n, q.rows[0]), q.rows])
                               for n, q in zip(self._pad, pulses)])
        self._v_gate = np.stack([np.concatenate([np.zeros(n), q.v_gate])
                                 for n, q in zip(self._pad, pulses)])
        self._j, self._lv, self._hv, self._floor = (
            np.array([getattr(q, a) for q in pulses]) for a in ("j", "lv", "hv", "floor"))

    def run(self, start: np.ndarray) -> list[_Outcome]:
        """Outcomes of every pulse, consistent with the flips of the pulses before it."""
        P = len(self.pulses)
        outcomes: list = [None] * P
        ctx = [start] * P
        todo = list(range(P))
        while todo:
            self.passes += 1
            outcomes_new = self._simulate(todo, ctx, start)
            for p in todo:
                outcomes[p] = outcomes_new[p]
            states = start.copy()
            new_ctx, stale = [], []
            for p, pulse in enumerate(self.pulses):
                if np.array_equal(states.reshape(self.spec.shape)[pulse.rows],
                                  ctx[p].reshape(self.spec.shape)[pulse.rows]):
                    new_ctx.append(ctx[p])
                else:
                    stale.append(p)
                    new_ctx.append(states.copy())
                for f in outcomes[p].flips:
                    states[f] = 1 - states[f]
            ctx, todo = new_ctx, stale
        return outcomes

    # --- one pass over the pulses in ``todo`` ---------------------------------------------
    def _simulate(self, todo, ctx, start) -> dict:
        C = self.spec.cols
        self._idle = {}                 # (pulse, fraction) -> its idle lines in this pass
        out = {}
        for p in todo:
            out[p] = _Outcome([], [], [], [], [], [])
            self._point(out[p], self.pulses[p].knot_t[0],
                        np.zeros((self.pulses[p].rows.size, C)), np.zeros(len(POWER_KEYS)))
        # cursor: segment index, time and fraction where the pulse stands
        seg = {p: 0 for p in todo}
        at = {p: (self.pulses[p].knot_t[0], 0.0) for p in todo}
        hot_state = {p: start[self.pulses[p].cells].copy() for p in todo}
        for p in todo:                     # an earlier pass may have flipped them
            self.cells.in_p[self.pulses[p].cells] = hot_state[p] == 0
        progress = {p: np.zeros(self.pulses[p].cells.size) for p in todo}
        active = list(todo)
        before_flip: dict = {}          # pulse -> (fraction, hot states) of its last event
        while active:
            knots = {p: self._knots(p, seg[p], at[p]) for p in active}
            requests = [(p, f, hot_state[p]) for p in active for f in np.unique(knots[p][1])]
            # an event on an edge: the point's currents are those of the network at that
            # fraction before the flip (the integration took them linear within the step)
            requests += [(p, f, st) for p, (f, st) in before_flip.items()]
            solved = self._solve(requests, ctx)
            sols = {p: {} for p in active}
            for (p, f, st), res in zip(requests, solved):
                if st is hot_state[p]:
                    sols[p][f] = res
                else:
                    out[p].i_rows[-1], out[p].power[-1] = res[:2]
            before_flip = {}
            events = self._integrate(active, knots, sols, progress)
            still = []
            for p in active:
                kt, kf = knots[p]
                out[p].i_next[-1], out[p].p_next[-1] = sols[p][kf[0]][:2]
                ev = events.get(p)
                last = len(kt) - 1 if ev is None else ev["seg"]
                for m in range(1, last + 1):           # knots passed whole
                    self._point(out[p], kt[m], *sols[p][kf[m]][:2])
                if ev is None:
                    continue
                # the event point: currents linear in time within the segment
                s, a = ev["seg"], ev["alpha"]
                i0, p0, _ = sols[p][kf[s]]
                i1, p1, _ = sols[p][kf[s + 1]]
                self._point(out[p], ev["t"], i0 + (i1 - i0) * a, p0 + (p1 - p0) * a)
                cells = self.pulses[p].cells
                out[p].flips[-1] = cells[ev["flip"]]
                if ev["f"] != 1.0:
                    before_flip[p] = (ev["f"], hot_state[p].copy())
                hot_state[p] = hot_state[p].copy()
                hot_state[p][ev["flip"]] = 1 - hot_state[p][ev["flip"]]
                self.cells.in_p[cells] = hot_state[p] == 0
                progress[p] = ev["progress"]
                progress[p][ev["flip"]] = 0.0
                # the cursor: which standard segment the event lies in
                seg[p] = int(np.searchsorted(self.pulses[p].knot_t, ev["t"], side="right")) - 1
                seg[p] = min(seg[p], len(self.pulses[p].knot_t) - 2)
                at[p] = (ev["t"], ev["f"])
                still.append(p)
            active = still
        return out

    def _knots(self, p, s, at):
        """Remaining knots from the cursor: (times, fractions)."""
        pulse = self.pulses[p]
        return (np.concatenate([[at[0]], pulse.knot_t[s + 1:]]),
                np.concatenate([[at[1]], pulse.knot_f[s + 1:]]))

    @staticmethod
    def _point(o: _Outcome, t, i_rows, power):
        o.t.append(t)
        o.i_rows.append(i_rows)
        o.power.append(power)
        o.flips.append(np.empty(0, int))
        o.i_next.append(i_rows)
        o.p_next.append(power)

    def _solve(self, requests, ctx) -> list:
        """(gated rows' currents (k, C), power (5,), hot cells' currents (k,)) for each
        request (pulse, fraction, states of its hot cells), from one batched solve.

        Pulses gate different numbers of rows: each is padded at the front to the largest
        count with copies of its first gated row whose gates stay off (a zero-length bit
        line segment to a cell without current), and the copies are dropped after."""
        R, C = self.spec.shape
        K = self.K
        out: list = [None] * len(requests)
        pid = np.array([p for p, _, _ in requests])
        frac = np.array([f for _, f, _ in requests])
        # a request whose gates are all off at its fraction: nothing flows
        on = ((frac[:, None] * self._v_gate[pid] - self.hot.tr.vto_v)
              > (frac * self._floor[pid])[:, None]).any(axis=1)
        for r in np.flatnonzero(~on):
            k = self.pulses[pid[r]].rows.size
            out[r] = (np.zeros((k, C)), np.zeros(len(POWER_KEYS)), np.zeros(k))
        members = np.flatnonzero(on)
        if not members.size:
            return out
        pulses = [self.pulses[p] for p in pid[members]]
        pad = self._pad[pid[members]]
        hot = np.zeros((members.size, K))
        for n, r in enumerate(members):
            hot[n, pad[n]:] = requests[r][2]
        m = pid[members]
        items = Items(rows=self._rows[m], j=self._j[m], lv=self._lv[m], hv=self._hv[m],
                      frac=frac[members], v_gate=self._v_gate[m], floor=self._floor[m],
                      states=None, hot=hot)
        keys = [(requests[r][0], requests[r][1]) for r in members]
        missing = [n for n, key in enumerate(keys) if key not in self._idle]
        by_k: dict = {}                  # idle lines unpadded: grouped by gated-row count
        for n in missing:
            by_k.setdefault(K - pad[n], []).append(n)
        for k, group in by_k.items():
            # the idle cells' states: the gated rows as this pass takes them
            st = np.stack([ctx[keys[n][0]].reshape(R, C)[pulses[n].rows]
                           for n in group]).astype(float)
            sub = Items(*(a[group][:, K - k:] if a.ndim > 1 else a[group] for a in (
                items.rows, items.j, items.lv, items.hv, items.frac, items.v_gate,
                items.floor)), states=st)
            w0 = np.zeros(sub.states.shape)          # last pass's bit-line voltages
            for q, n in enumerate(group):
                if keys[n] in self._w_warm:
                    w0[q] = self._w_warm[keys[n]]
            new = self.hot.idle_lines(sub, w0)
            for q, n in enumerate(group):
                self._idle[keys[n]] = {name: a[q] for name, a in new.items()}
                self._w_warm[keys[n]] = self._idle[keys[n]]["w"]
        idle = {}
        for name, fill in (("u", 0.0), ("i_sh", 0.0), ("g_m", 1.0), ("g_ch", 0.0),
                           ("z_ohm", 1.0)):
            # padding rows: no shunts, a 1-ohm tie for their source nodes (no current)
            first = self._idle[keys[0]][name]
            arr = np.full((len(keys), K) + first.shape[1:], fill)
            for n, key in enumerate(keys):
                arr[n, pad[n]:] = self._idle[key][name]
            idle[name] = arr
        solved = self.hot.solve_items(items, idle)
        self.n_items += len(members)
        power = np.stack([solved.power[key] for key in POWER_KEYS], axis=1)
        for n, (r, q) in enumerate(zip(members, pulses)):
            i_rows = solved.i_rows[n, pad[n]:]
            out[r] = (i_rows, power[n], i_rows[:, q.j])
        return out

    def _integrate(self, active, knots, sols, progress) -> dict:
        """Advance every hot cell of the active pulses over its pulse's remaining knots;
        returns {pulse: event} for the pulses in which a cell reaches its threshold."""
        G = self.grid
        A = len(active)
        n_kn = max(len(knots[p][0]) for p in active)
        sizes = np.array([self.pulses[p].cells.size for p in active])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        N = int(sizes.sum())
        i_kn = np.empty((N, n_kn))               # hot currents at the knots
        t_kn = np.empty((A, n_kn))
        idx, p0 = np.empty(N, int), np.empty(N)
        for n, p in enumerate(active):
            kt, kf = knots[p]
            lo, hi = starts[n], starts[n] + sizes[n]
            i_kn[lo:hi, :kt.size] = np.stack([sols[p][f][2] for f in kf], axis=1)
            i_kn[lo:hi, kt.size:] = i_kn[lo:hi, kt.size - 1:kt.size]
            t_kn[n, :kt.size] = kt                # repeat the last knot: zero length
            t_kn[n, kt.size:] = kt[-1]
            idx[lo:hi] = self.pulses[p].cells
            p0[lo:hi] = progress[p]
        owner = np.repeat(np.arange(A), sizes)
        mid = (np.arange(G) + 0.5) / G
        i0, i1 = i_kn[:, :-1, None], i_kn[:, 1:, None]
        cur = (i0 + (i1 - i0) * mid).reshape(N, -1)                        # (N, S)
        dts = np.repeat(np.diff(t_kn, axis=1) / G, G, axis=1)[owner]      # (N, S)
        toward, away = self.cells.rates(cur, idx)
        cum = _evolve_grid(p0, toward, away, dts)                           # (N, S + 1)
        any_pt = np.logical_or.reduceat(cum >= 1, starts, axis=0)         # (A, S + 1)
        events = {}
        for n, p in enumerate(active):
            lo, hi = starts[n], starts[n] + sizes[n]
            if not any_pt[n].any():
                progress[p] = cum[lo:hi, -1]
                continue
            m = int(np.argmax(any_pt[n]))             # first grid point with a crossing
            s, g = divmod(m - 1, G)                   # its step: segment s, step g
            kt, kf = knots[p]
            t_step = kt[s] + (kt[s + 1] - kt[s]) * g / G
            if kf[s] == 1.0 and kf[s + 1] == 1.0:     # flat top: the exact crossing time
                st = m - 1
                pc = cum[lo:hi, st]
                tw, aw = toward[lo:hi, st], away[lo:hi, st]
                dt = float(_time_to_reach_one(pc, tw, aw).min())
                prog = _evolve(pc, tw, aw, dt)
                flip = np.flatnonzero(prog >= 1 - 1e-12)
                t_ev, alpha, f_ev = t_step + dt, 0.0, 1.0
            else:                                     # an edge: at the grid point
                prog = cum[lo:hi, m]
                flip = np.flatnonzero(prog >= 1)
                alpha = (g + 1) / G
                t_ev = kt[s] + (kt[s + 1] - kt[s]) * alpha
                f_ev = kf[s] + (kf[s + 1] - kf[s]) * alpha
            events[p] = {"seg": s, "alpha": alpha, "t": t_ev, "f": f_ev, "flip": flip,
                         "progress": prog.copy()}
        return events


def assemble(pulses, outcomes, start, shape, waveforms=True) -> Assembled:
    """Peak and mean currents, energy and (if asked) waveforms, pulse after pulse in time
    order."""
    R, C = shape
    states = start.copy()
    peak, charge = np.zeros(R * C), np.zeros(R * C)
    energy = np.zeros(len(POWER_KEYS))
    trace_t, trace_i, trace_s = [0.0], [np.zeros(R * C, np.float32)], [states.copy()]
    for pulse, o in zip(pulses, outcomes):
        where = (pulse.rows[:, None] * C + np.arange(C)[None, :]).ravel()
        t = np.asarray(o.t)
        a = np.abs(np.stack(o.i_rows)).reshape(t.size, -1)               # (M, k C)
        a_next = np.abs(np.stack(o.i_next)).reshape(t.size, -1)
        dt = np.diff(t)
        np.maximum.at(peak, where, np.maximum(a, a_next).max(axis=0))
        np.add.at(charge, where, (0.5 * (a[1:] + a_next[:-1]) * dt[:, None]).sum(axis=0))
        energy += (0.5 * (np.stack(o.power)[1:] + np.stack(o.p_next)[:-1])
                   * dt[:, None]).sum(axis=0)
        if not waveforms:
            for f in o.flips:
                states[f] = 1 - states[f]
            continue
        cur = np.zeros((t.size - 1, R * C), np.float32)
        cur[:, where] = np.stack(o.i_rows)[1:].reshape(t.size - 1, -1)
        snap = np.repeat(states[None, :], t.size - 1, axis=0)
        for m in range(1, t.size):                 # flips after point m: later points
            if o.flips[m].size:
                states[o.flips[m]] = 1 - states[o.flips[m]]
                snap[m:, o.flips[m]] = states[o.flips[m]]
        trace_t.extend(t[1:].tolist())
        trace_i.extend(cur)
        trace_s.extend(snap)
    return Assembled(states, peak, charge, dict(zip(POWER_KEYS, energy.tolist())),
                     trace_t, trace_i, trace_s)
