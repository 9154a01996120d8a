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

The state of every pulse (cursor, hot-cell states, progress) lives in arrays over the
pulses, so a round costs a fixed number of array operations whatever the number of pulses.

A pulse sees the cells that earlier pulses flipped in its gated rows (its idle cells, as
linear shunts). The first round runs every pulse with the program's starting states for
them and integrates every pulse's whole timeline: the cells that reach their threshold
anywhere in it are the predicted flips, and the pulses whose idle cells those change start
again, in the next round, with the predicted states. After the pass, any pulse whose gated
rows then hold different states than it was solved with (a wrong prediction) runs again in
a further pass (rows whose channels stay off carry no shunt, so their states do not count).
The first pulse with a stale input becomes exact in each pass, so this ends, and its fixed
point is the sequential answer: one pass for the 64x64 update steps measured, where the
start states alone took two.

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

# Every pulse has the same knots (rise in RAMP_SOLVES steps, flat top, fall): the fraction
# of the levels at each, the distinct fractions (the solves a pulse needs, "slots"), and
# which slot each knot takes. A cursor between knots (an event on an edge) takes slot EXTRA.
KNOT_F = np.concatenate([np.arange(RAMP_SOLVES + 1),
                         RAMP_SOLVES - np.arange(RAMP_SOLVES + 1)]) / RAMP_SOLVES
KNOT_SLOT = np.concatenate([np.arange(RAMP_SOLVES + 1), RAMP_SOLVES - np.arange(RAMP_SOLVES + 1)])
FRACS = np.arange(RAMP_SOLVES + 1) / RAMP_SOLVES
NK = KNOT_F.size
EXTRA = FRACS.size

# idle-line fields the hot solve takes: their value on padding rows (no shunts, no idle
# power, a 1-ohm tie for their source nodes: no current) and how many axes index gated rows
IDLE_PAD = {"i_sh": (0.0, 1), "g_m": (1.0, 1), "z_ohm": (1.0, 1), "p_row": (0.0, 1),
            "p_pair": (0.0, 2)}


@dataclass
class _Pulse:
    """One column pulse: where it acts and its knot times (see KNOT_F)."""

    j: int
    lv: float
    hv: float
    rows: np.ndarray             # gated rows
    v_gate: np.ndarray           # their gate levels
    floor: float
    knot_t: np.ndarray           # (NK,) s
    cells: np.ndarray            # flat indices of the hot cells (rows, j)


@dataclass
class _Points:
    """Solve points of pulses, the pulses in order and each pulse's in time order: the
    network arriving at each point, and where it leaves with other currents (after a flip)
    the leaving currents; the cells that flip right after a point. Gated rows are padded at
    the front as in ColumnProgramWrite."""

    pid: np.ndarray              # (M,) pulse
    t: np.ndarray                # (M,) s
    i_rows: np.ndarray           # (M, K, C) MTJ currents of the gated rows, arriving
    power: np.ndarray            # (M, 5) W, POWER_KEYS order, arriving
    p_next: np.ndarray           # (M, 5) W, leaving
    leave_at: np.ndarray         # (L,) points the network leaves with other currents
    leave_rows: np.ndarray       # (L, K, C) those currents
    flip_at: np.ndarray          # (F,) point of each flip, in time order
    flip_cell: np.ndarray        # (F,) flat index of the flipped cell

    def take(self, idx) -> "_Points":
        """The points ``idx``, in that order, with their flips and leaving currents."""
        new = np.full(self.t.size, -1)
        new[idx] = np.arange(idx.size)
        lk, fk = new[self.leave_at] >= 0, new[self.flip_at] >= 0
        return _Points(self.pid[idx], self.t[idx], self.i_rows[idx], self.power[idx],
                       self.p_next[idx], new[self.leave_at[lk]], self.leave_rows[lk],
                       new[self.flip_at[fk]], self.flip_cell[fk])

    def replace(self, other: "_Points") -> "_Points":
        """These points with those of the pulses in ``other`` replaced by ``other``'s."""
        old = self.take(np.flatnonzero(~np.isin(self.pid, other.pid)))
        n = old.t.size
        both = _Points(*(np.concatenate([a, b]) for a, b in (
            (old.pid, other.pid), (old.t, other.t), (old.i_rows, other.i_rows),
            (old.power, other.power), (old.p_next, other.p_next),
            (old.leave_at, other.leave_at + n), (old.leave_rows, other.leave_rows),
            (old.flip_at, other.flip_at + n), (old.flip_cell, other.flip_cell))))
        return both.take(np.argsort(both.pid, kind="stable"))

    def flips(self, n_pulses) -> list:
        """Each pulse's flipped cells, in time order."""
        owner = self.pid[self.flip_at]
        return [self.flip_cell[owner == p] for p in range(n_pulses)]


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
    P = len(pulses)
    runner._new_pass(np.arange(P), [start] * P, slots=[])
    try:
        i_rows = runner._solve(np.arange(P), np.ones(P), np.full(P, EXTRA),
                               np.where(runner._real, start[runner._cell], 0.0))[1]
    except FastSolveError:
        return None
    out = np.full((P,) + xbar.spec.shape, np.nan)
    for p, q in enumerate(pulses):
        out[p, q.rows] = i_rows[p, runner._pad[p]:]
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
        p = _Pulse(j, lv, hv, rows, np.asarray(v_gate, float)[rows],
                   min(0.0, float(v_row.min()), float(v_col.min())), knot_t, rows * C + j)
        if (owner[p.cells] >= 0).any():
            return None                    # a cell driven by two pulses: sequential engine
        owner[p.cells] = len(pulses)
        pulses.append(p)
    return pulses


class ColumnProgramWrite:
    """Runs a planned column program; ``cells`` is fast_write._Cells (thresholds, rates).

    Pulses gate different numbers of rows: each is padded at the front to the largest count
    K with copies of its first gated row whose gates stay off (a zero-length bit line
    segment to a cell without current); ``_real`` marks the gated rows."""

    predict = True        # first pass: contexts from the first round's crossings (_simulate)

    def __init__(self, xbar, pulses: list[_Pulse], cells, hot: HotColumnNetwork,
                 ramp_grid: int):
        self.spec = xbar.spec
        R, C = self.spec.shape
        self.pulses = pulses
        self.cells = cells
        self.hot = hot
        self.grid = ramp_grid - 1          # steps per segment
        self.n_items = 0
        self.passes = 0
        P = len(pulses)
        self.K = K = max(q.rows.size for q in pulses)
        self._pad = np.array([K - q.rows.size for q in pulses])
        self._real = np.arange(K)[None, :] >= self._pad[:, None]                  # (P, K)
        self._rows = np.stack([np.concatenate([np.full(n, q.rows[0]), q.rows])
                               for n, q in zip(self._pad, pulses)])
        self._v_gate = np.stack([np.concatenate([np.zeros(n), q.v_gate])
                                 for n, q in zip(self._pad, pulses)])
        self._j, self._lv, self._hv, self._floor = (
            np.array([getattr(q, a) for q in pulses]) for a in ("j", "lv", "hv", "floor"))
        self._cell = self._rows * C + self._j[:, None]                           # (P, K)
        self._knot_t = np.stack([q.knot_t for q in pulses])                      # (P, NK)
        self._on = self._gates_on(np.arange(P)[:, None], FRACS[None, :])        # (P, slots)
        # idle cells that can carry a shunt: a channel conducting at some fraction of the
        # levels (the overdrive is affine in the fraction: positive somewhere in [0, 1]
        # when it is at 0 or at 1)
        tr = hot.tr
        live = self._real & ((self._v_gate - self._lv[:, None] - tr.vto_v > 0) | (-tr.vto_v > 0))
        self._live = [(q_rows[:, None] * C + np.arange(C)).ravel()
                      for q_rows in (self._rows[p][live[p]] for p in range(P))]
        self._w_std = np.zeros((P, FRACS.size, K, C))   # last pass's idle bit-line voltages
        self._w_extra: dict = {}

    def _gates_on(self, pid, frac):
        """Whether any gate of pulse ``pid`` conducts at fraction ``frac`` (broadcast)."""
        frac = np.asarray(frac, float)
        return ((frac[..., None] * self._v_gate[pid] - self.hot.tr.vto_v)
                > (frac * self._floor[pid])[..., None]).any(axis=-1)

    def run(self, start: np.ndarray) -> _Points:
        """The points of every pulse, consistent with the flips of the pulses before it."""
        P = len(self.pulses)
        ctx = [start] * P
        todo = np.arange(P)
        points = None
        while todo.size:
            self.passes += 1
            new = self._simulate(todo, ctx, start, self.predict and self.passes == 1)
            points = new if points is None else points.replace(new)
            todo = self._stale(start, points.flips(P), ctx)
        return points

    def _stale(self, start, flips, ctx) -> np.ndarray:
        """The pulses whose live idle cells hold other states, after the flips (``flips``:
        each pulse's flipped cells) of the pulses before them, than ``ctx`` gave them;
        their ``ctx`` becomes those states."""
        states = start.copy()
        stale = []
        for p, live in enumerate(self._live):
            if not np.array_equal(states[live], ctx[p][live]):
                stale.append(p)
                ctx[p] = states.copy()
            _toggle(states, flips[p])
        return np.array(stale, int)

    # --- one pass over the pulses in ``todo`` ---------------------------------------------
    def _new_pass(self, todo, ctx, slots=None) -> None:
        """A pass over the pulses ``todo`` with their idle cells' states from ``ctx``."""
        self._ctx = ctx
        self._idle_extra: dict = {}          # (pulse, fraction) -> idle lines
        self._idle_std: dict = {}            # idle lines at the standard fractions
        self._at_std = np.full((len(self.pulses), FRACS.size), -1)   # row in _idle_std
        self._add_idle(todo, slots)

    def _add_idle(self, todo, slots=None) -> None:
        """Idle lines of the pulses ``todo`` at the standard fractions ``slots`` (default:
        all at which a gate conducts) with the pass's context, replacing any they had;
        other fractions are solved when asked (``_solve``)."""
        gone = set(todo.tolist())
        self._idle_extra = {key: v for key, v in self._idle_extra.items() if key[0] not in gone}
        slots = range(FRACS.size) if slots is None else slots
        pid, fi = (a.ravel() for a in np.meshgrid(todo, np.asarray(slots, int), indexing="ij"))
        keep = self._on[pid, fi]
        pid, fi = pid[keep], fi[keep]
        if not pid.size:
            return
        new, w = self._idle_lines(pid, FRACS[fi], self._w_std[pid, fi])
        self._w_std[pid, fi] = w
        base = len(self._idle_std["z_ohm"]) if self._idle_std else 0
        self._idle_std = {name: np.concatenate([self._idle_std[name], a]) if self._idle_std
                          else a for name, a in new.items()}
        self._at_std[pid, fi] = base + np.arange(pid.size)

    def _simulate(self, todo, ctx, start, predict=False) -> _Points:
        """One pass over the pulses ``todo`` (each with its idle cells' states ``ctx[p]``).
        ``predict``: after the first round, which saw every pulse's whole timeline with
        these states, each cell that reached its threshold anywhere in it is taken to flip
        (later flips' effect on the currents aside: it was right for every cell of the 64x64
        steps measured), and the pulses whose context that changes start again with it."""
        C = self.spec.cols
        K = self.K
        P = len(self.pulses)
        self._new_pass(todo, ctx)
        real = self._real
        hot = np.where(real, start[self._cell], 0.0)          # hot cells' states (P, K)
        cells = self._cell[todo][real[todo]]
        self.cells.in_p[cells] = start[cells] == 0        # an earlier pass may have flipped them
        self._progress = np.zeros((P, K))
        seg = np.zeros(P, int)                           # cursor: knot, time and fraction
        t_at = self._knot_t[:, 0].copy()
        f_at = np.zeros(P)
        log = _Log(P, K, C)
        cur_id = np.zeros(P, int)                        # each pulse's point at its cursor
        cur_id[todo] = log.add(todo, t_at[todo], np.zeros((todo.size, K, C)),
                               np.zeros((todo.size, len(POWER_KEYS))))
        # edge events of the last round: (pulses, fractions, hot-cell states before the flip,
        # event points), whose currents arriving at the point are those before the flip
        before_flip = (np.empty(0, int), np.empty(0), np.empty((0, K)), np.empty(0, int))
        active = todo
        ar_nk = np.arange(NK)
        while active.size:
            A = active.size
            ar = np.arange(A)
            ahead = ar_nk[None, :] > seg[active][:, None]        # knots after the cursor
            t_kn = np.where(ahead, self._knot_t[active], t_at[active][:, None])
            f_kn = np.where(ahead, KNOT_F, f_at[active][:, None])
            c_slot = _slot_of(f_at[active])
            slot_kn = np.where(ahead, KNOT_SLOT, c_slot[:, None])
            need = np.zeros((A, EXTRA + 1), bool)
            need[ar[:, None], slot_kn] = True
            r_a, r_s = np.nonzero(need)
            bf_pid, bf_f, bf_hot, bf_ids = before_flip
            i_hot, i_rows, power = self._solve(
                np.concatenate([active[r_a], bf_pid]),
                np.concatenate([np.where(r_s == EXTRA, f_at[active[r_a]],
                                         FRACS[np.minimum(r_s, EXTRA - 1)]), bf_f]),
                np.concatenate([r_s, _slot_of(bf_f)]),
                np.concatenate([hot[active[r_a]], bf_hot]))
            n = r_a.size
            s_hot = np.zeros((A, EXTRA + 1, K))
            s_rows = np.zeros((A, EXTRA + 1, K, C))
            s_pow = np.zeros((A, EXTRA + 1, len(POWER_KEYS)))
            s_hot[r_a, r_s], s_rows[r_a, r_s], s_pow[r_a, r_s] = i_hot[:n], i_rows[:n], power[:n]
            log.arrive(bf_ids, i_rows[n:], power[n:])
            log.leave(cur_id[active], s_rows[ar, c_slot], s_pow[ar, c_slot])
            ev, s, alpha, t_ev, f_ev, prog, flip, crossing = self._integrate(
                active, seg[active], t_kn, f_kn, slot_kn, s_hot)
            # points: the knots passed whole, then the event
            last = np.where(ev, s, NK - 1)
            pa, pm = np.nonzero(ahead & (ar_nk[None, :] <= last[:, None]))
            sl = slot_kn[pa, pm]
            log.add(active[pa], t_kn[pa, pm], s_rows[pa, sl], s_pow[pa, sl])
            e = np.flatnonzero(ev)
            ep = active[e]
            s0, s1 = slot_kn[e, s[e]], slot_kn[e, s[e] + 1]
            a = alpha[e]
            i0, p0 = s_rows[e, s0], s_pow[e, s0]
            ids = log.add(ep, t_ev[e], i0 + (s_rows[e, s1] - i0) * a[:, None, None],
                          p0 + (s_pow[e, s1] - p0) * a[:, None])
            fe, fr = np.nonzero(flip[e])
            log.flips(ids[fe], self._cell[ep[fe], fr])
            on_edge = f_ev[e] != 1.0
            before_flip = (ep[on_edge], f_ev[e][on_edge], hot[ep[on_edge]], ids[on_edge])
            # the flips, and the cursor: which standard segment the event lies in
            prog[flip] = 0.0
            self._progress[active] = prog
            hot[ep] = np.where(flip[e], 1.0 - hot[ep], hot[ep])
            flipped = self._cell[ep][flip[e]]
            self.cells.in_p[flipped] = hot[ep][flip[e]] == 0
            seg[ep] = np.minimum((self._knot_t[ep] <= t_ev[e][:, None]).sum(axis=1) - 1, NK - 2)
            t_at[ep], f_at[ep] = t_ev[e], f_ev[e]
            cur_id[ep] = ids
            active = ep
            if predict:
                predict = False
                flips = [np.empty(0, int)] * P
                for n, p in enumerate(todo):
                    flips[p] = self._cell[p][crossing[n]]
                again = self._stale(start, flips, ctx)
                if again.size:
                    self._add_idle(again)
                    hot[again] = np.where(real[again], start[self._cell[again]], 0.0)
                    cells = self._cell[again][real[again]]
                    self.cells.in_p[cells] = start[cells] == 0
                    self._progress[again] = 0.0
                    seg[again], t_at[again], f_at[again] = 0, self._knot_t[again, 0], 0.0
                    log.drop(again)
                    cur_id[again] = log.add(again, t_at[again], np.zeros((again.size, K, C)),
                                            np.zeros((again.size, len(POWER_KEYS))))
                    keep = ~np.isin(before_flip[0], again)
                    before_flip = tuple(a[keep] for a in before_flip)
                    active = np.union1d(active, again)
        return log.points()

    def _solve(self, pid, frac, slot, hot):
        """Hot-cell currents (n, K), gated rows' currents (n, K, C) and power (n, 5) of the
        requests (pulse, fraction, its slot, hot-cell states (n, K)), from one batched
        solve; zero where every gate is off."""
        C = self.spec.cols
        K = self.K
        n = pid.size
        i_hot, i_rows = np.zeros((n, K)), np.zeros((n, K, C))
        power = np.zeros((n, len(POWER_KEYS)))
        mem = np.flatnonzero(self._gates_on(pid, frac))
        if not mem.size:
            return i_hot, i_rows, power
        m, f, std = pid[mem], frac[mem], slot[mem] < EXTRA
        extra = list(dict.fromkeys(zip(m[~std].tolist(), f[~std].tolist())))
        missing = [key for key in extra if key not in self._idle_extra]
        if missing:
            mp, mf = np.array([p for p, _ in missing]), np.array([x for _, x in missing])
            w0 = np.stack([self._w_extra.get(key, np.zeros((K, C))) for key in missing])
            new, w = self._idle_lines(mp, mf, w0)
            for q, key in enumerate(missing):
                self._w_extra[key] = w[q]
                self._idle_extra[key] = {name: a[q] for name, a in new.items()}
        at = self._at_std[m[std], slot[mem][std]]
        keys = list(zip(m[~std].tolist(), f[~std].tolist()))
        idle = {}
        for name in IDLE_PAD:
            a = np.empty((mem.size,) + (self._idle_std[name].shape[1:] if std.any() else
                                        self._idle_extra[keys[0]][name].shape))
            if at.size:
                a[std] = self._idle_std[name][at]
            if keys:
                a[~std] = np.stack([self._idle_extra[key][name] for key in keys])
            idle[name] = a
        items = Items(rows=self._rows[m], j=self._j[m], lv=self._lv[m], hv=self._hv[m],
                      frac=f, v_gate=self._v_gate[m], floor=self._floor[m], states=None,
                      hot=hot[mem])
        solved = self.hot.solve_items(items, idle)
        self.n_items += mem.size
        i_rows[mem] = solved.i_rows
        i_hot[mem] = solved.i_rows[np.arange(mem.size), :, self._j[m]]
        power[mem] = np.stack([solved.power[key] for key in POWER_KEYS], axis=1)
        return i_hot, i_rows, power

    def _idle_lines(self, pid, frac, w0):
        """Idle lines of the (pulse, fraction) pairs with this pass's idle-cell states,
        unpadded (grouped by gated-row count), returned padded, with the bit-line voltages
        (padded) that warm-start the next pass."""
        R, C = self.spec.shape
        K = self.K
        n = pid.size
        out, w = {}, np.zeros((n, K, C))
        ks = K - self._pad[pid]
        for k in np.unique(ks):
            g = np.flatnonzero(ks == k)
            p = pid[g]
            rows = self._rows[p, K - k:]
            sub = Items(rows=rows, j=self._j[p], lv=self._lv[p], hv=self._hv[p],
                        frac=frac[g], v_gate=self._v_gate[p, K - k:], floor=self._floor[p],
                        states=np.stack([self._ctx[q].reshape(R, C)[r]
                                         for q, r in zip(p, rows)]).astype(float))
            new = self.hot.idle_lines(sub, w0[g, K - k:])
            w[g, K - k:] = new["w"]
            for name, (fill, axes) in IDLE_PAD.items():
                if name not in out:
                    out[name] = np.full((n,) + (K,) * axes + new[name].shape[1 + axes:], fill)
                out[name][(g,) + (slice(K - k, None),) * axes] = new[name]
        return out, w

    def _integrate(self, active, seg, t_kn, f_kn, slot_kn, s_hot):
        """Advance every hot cell of the active pulses from its cursor over the remaining
        knots (t_kn, f_kn: the cursor repeated before it, zero-length); per pulse: whether
        a cell reaches its threshold (ev), where (knot segment s, fraction alpha of it, time,
        level fraction), the progress there (or at the end) and which cells flip; per cell:
        whether it reaches its threshold anywhere on the timeline, flips aside."""
        G = self.grid
        A = active.size
        real = self._real[active]
        owner, r = np.nonzero(real)
        sizes = real.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        m0 = int(seg.min())                  # knots before every cursor: none to integrate
        i_kn = s_hot[owner[:, None], slot_kn[owner, m0:], r[:, None]]        # (N, knots)
        # a segment whose currents are the same at both ends for every cell (the flat top,
        # the zero-length stretch before a cursor, gates off) has constant rates: one step
        # integrates it exactly; an edge takes G steps
        const = (i_kn[:, 1:] == i_kn[:, :-1]).all(axis=0)                  # (segments,)
        steps = np.where(const, 1, G)
        col_seg = np.repeat(np.arange(const.size), steps)                   # (S,)
        col_g = np.arange(col_seg.size) - (np.cumsum(steps) - steps)[col_seg]
        i0, i1 = i_kn[:, col_seg], i_kn[:, col_seg + 1]
        cur = i0 + (i1 - i0) * ((col_g + 0.5) / steps[col_seg])              # (N, S)
        dts = (np.diff(t_kn[:, m0:], axis=1) / steps)[:, col_seg][owner]     # (N, S)
        toward, away = self.cells.rates(cur, self._cell[active][real])
        cum = _evolve_grid(self._progress[active][real], toward, away, dts)   # (N, S + 1)
        any_pt = np.logical_or.reduceat(cum >= 1, starts, axis=0)            # (A, S + 1)
        ev = any_pt.any(axis=1)
        m = np.argmax(any_pt, axis=1)                    # first grid point with a crossing
        col = np.maximum(m - 1, 0)                       # its step: segment s, step g
        s, g = np.where(ev, col_seg[col], 0) + m0, col_g[col]
        flat = const[s - m0]
        ar = np.arange(A)
        kt0, kt1, kf0, kf1 = t_kn[ar, s], t_kn[ar, s + 1], f_kn[ar, s], f_kn[ar, s + 1]
        # constant rates: the exact crossing time from the step's start
        st = col[owner]
        n_ = np.arange(owner.size)
        pc, tw, aw = cum[n_, st], toward[n_, st], away[n_, st]
        with np.errstate(invalid="ignore"):
            dt = np.minimum.reduceat(_time_to_reach_one(pc, tw, aw), starts)
        dt = np.where(ev & flat, dt, 0.0)
        prog_flat = _evolve(pc, tw, aw, dt[owner])
        # an edge: at the grid point
        alpha = np.where(flat, 0.0, (g + 1) / G)
        prog = np.where(ev[owner], np.where(flat[owner], prog_flat, cum[n_, m[owner]]),
                        cum[:, -1])
        flip = np.where(flat[owner], prog >= 1 - 1e-12, prog >= 1) & ev[owner]
        with np.errstate(invalid="ignore", divide="ignore"):
            t_ev = np.where(flat, kt0 + dt, kt0 + (kt1 - kt0) * alpha)
            f_ev = kf0 + (kf1 - kf0) * np.where(flat, dt / (kt1 - kt0), alpha)
        prog_ak = np.zeros(real.shape)
        prog_ak[real] = prog
        flip_ak = np.zeros(real.shape, bool)
        flip_ak[real] = flip
        crossing = np.zeros(real.shape, bool)           # anywhere on the timeline
        crossing[real] = cum.max(axis=1) >= 1
        return ev, s, alpha, t_ev, f_ev, prog_ak, flip_ak, crossing


def _slot_of(f: np.ndarray) -> np.ndarray:
    """The slots of level fractions: a standard one, else EXTRA."""
    exact = f[:, None] == FRACS
    return np.where(exact.any(axis=1), np.argmax(exact, axis=1), EXTRA)


class _Log:
    """The points of one pass, in the order they are found (each pulse's in time order)."""

    def __init__(self, n_pulses, K, C):
        self.first = np.zeros(n_pulses, int)     # each pulse's first point id that counts
        self.pid, self.t, self.rows, self.pow = [], [], [], []
        # (point ids, currents, power) leaving a cursor; arriving at an edge event
        self.leaving = [(np.empty(0, int), np.empty((0, K, C)),
                         np.empty((0, len(POWER_KEYS))))]
        self.arriving: list = []
        self.flip_ids, self.flip_cells = [np.empty(0, int)], [np.empty(0, int)]
        self.n = 0

    def add(self, pid, t, rows, power) -> np.ndarray:
        ids = self.n + np.arange(pid.size)
        self.n += pid.size
        for lst, a in zip((self.pid, self.t, self.rows, self.pow), (pid, t, rows, power)):
            lst.append(a)
        return ids

    def drop(self, pids):
        """The pulses ``pids`` start again: their points so far do not count."""
        self.first[pids] = self.n

    def leave(self, ids, rows, power):
        self.leaving.append((ids, rows, power))

    def arrive(self, ids, rows, power):
        self.arriving.append((ids, rows, power))

    def flips(self, ids, cells):
        self.flip_ids.append(ids)
        self.flip_cells.append(cells)

    def points(self) -> _Points:
        pid, t = np.concatenate(self.pid), np.concatenate(self.t)
        rows, power = np.concatenate(self.rows), np.concatenate(self.pow)
        p_next = power.copy()
        for ids, r, p in self.arriving:
            rows[ids], power[ids] = r, p
        for ids, _, p in self.leaving:
            p_next[ids] = p
        counts = np.flatnonzero(np.arange(pid.size) >= self.first[pid])
        return _Points(pid, t, rows, power, p_next,
                       np.concatenate([ids for ids, _, _ in self.leaving]),
                       np.concatenate([r for _, r, _ in self.leaving]),
                       np.concatenate(self.flip_ids), np.concatenate(self.flip_cells)).take(
            counts[np.argsort(pid[counts], kind="stable")])


def _toggle(states, cells) -> None:
    """Flip ``cells`` of ``states`` one after the other (a cell listed twice flips back)."""
    c, n = np.unique(cells, return_counts=True)
    c = c[n % 2 == 1]
    states[c] = 1 - states[c]


def assemble(pulses, pts: _Points, start, shape, waveforms=True) -> Assembled:
    """Peak and mean currents, energy and (if asked) waveforms, pulse after pulse in time
    order."""
    R, C = shape
    P = len(pulses)
    K = pts.i_rows.shape[1]
    first = np.searchsorted(pts.pid, np.arange(P))              # each pulse's first point
    grow = np.stack([np.concatenate([np.full(K - q.rows.size, -1), q.rows]) for q in pulses])
    real = grow >= 0                                                         # (P, K)
    cell = grow[:, :, None] * C + np.arange(C)                               # (P, K, C)
    a = np.abs(pts.i_rows)                                                   # (M, K, C)
    a_leave = np.abs(pts.leave_rows)
    at, lp = pts.leave_at, pts.pid[pts.leave_at]
    peak, charge = np.zeros(R * C), np.zeros(R * C)
    np.maximum.at(peak, cell[real], np.maximum.reduceat(a, first, axis=0)[real])
    np.maximum.at(peak, cell[lp][real[lp]], a_leave[real[lp]])
    # stretches between consecutive points of a pulse: trapezoids of the currents leaving
    # one point and arriving at the next
    dt = np.where(pts.pid[1:] == pts.pid[:-1], np.diff(pts.t), 0.0)
    np.add.at(charge, cell[real], np.add.reduceat(
        0.5 * (a[1:] + a[:-1]) * dt[:, None, None], first, axis=0)[real])
    np.add.at(charge, cell[lp][real[lp]],
              (0.5 * (a_leave - a[at]) * dt[at][:, None, None])[real[lp]])
    energy = (0.5 * (pts.power[1:] + pts.p_next[:-1]) * dt[:, None]).sum(axis=0)
    states = start.copy()
    _toggle(states, pts.flip_cell)
    energy = dict(zip(POWER_KEYS, energy.tolist()))
    if not waveforms:
        return Assembled(states, peak, charge, energy, [0.0], [np.zeros(R * C, np.float32)],
                         [start.copy()])
    # every point but each pulse's first (its start, where the previous one ended)
    keep = np.ones(pts.t.size, bool)
    keep[first] = False
    kp = np.flatnonzero(keep)
    cur = np.zeros((kp.size + 1, R * C), np.float32)
    q, r = np.nonzero(real[pts.pid[kp]])
    cur[1 + q[:, None], cell[pts.pid[kp]][q, r]] = pts.i_rows[kp][q, r]
    # states at a point: before its own flips
    count = np.zeros((pts.t.size + 1, R * C), np.int32)
    np.add.at(count, (pts.flip_at + 1, pts.flip_cell), 1)
    snap = np.concatenate([start[None, :], start[None, :] ^ (
        np.cumsum(count, axis=0)[kp] & 1).astype(start.dtype)])
    return Assembled(states, peak, charge, energy, [0.0] + pts.t[kp].tolist(), cur, snap)
