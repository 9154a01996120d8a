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
  top (any stretch whose currents do not change) in one exact step, the crossing time in
  closed form;
* a pulse whose cell reaches its threshold stops there: the cell flips, and the next round
  re-solves that pulse from the flip on, as the sequential engine does.

The state of every pulse (cursor, hot-cell states, progress) lives in arrays over the
pulses, so a round costs a fixed number of array operations whatever the number of pulses.
The pulses may come from the programs of several tiles (``ColumnBatch``: independent
circuits, cells indexed tile by tile), which is how training writes its small tiles; each
pulse's solves and integration do not depend on the other pulses of the batch.
Peak and mean currents and energy are summed as the rounds go; the solve points themselves
(currents of every cell of the gated rows) are kept only when waveforms are asked.

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
their pulse (microamps: thermal rates ~1e-10/s) is not integrated, and a stretch of an edge
in which no hot cell's progress can change by 1e-9 is one step of its mean rates
(``fast_write`` advances such cells with the mean of its ends' rates), every other stretch
of an edge runs on the fine grid for every hot cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from mtjsim.engines.fast_hot import HotColumnNetwork, Items
from mtjsim.engines.fast_network import FastSolveError
from mtjsim.engines.fast_write import (DRAIN, NEGLIGIBLE_PROGRESS, POWER_KEYS, RAMP_GRID,
                                       RAMP_SOLVES, Assembled, _Cells, _evolve, _evolve_grid,
                                       _time_to_reach_one)

# Every pulse has the same knots (rise in RAMP_SOLVES steps, flat top, fall): the fraction
# of the levels at each, the distinct fractions (the solves a pulse needs, "slots"), and
# which slot each knot takes. A cursor between knots (an event on an edge) takes slot EXTRA.
KNOT_F = np.concatenate([np.arange(RAMP_SOLVES + 1),
                         RAMP_SOLVES - np.arange(RAMP_SOLVES + 1)]) / RAMP_SOLVES
KNOT_SLOT = np.concatenate([np.arange(RAMP_SOLVES + 1),
                            RAMP_SOLVES - np.arange(RAMP_SOLVES + 1)])
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
    cells: np.ndarray            # flat indices of the hot cells (tile, rows, j)
    tile: int = 0                # whose program (several tiles' programs run as one batch)


@dataclass
class _Trace:
    """Waveform points of pulses, the pulses in order and each pulse's in time order: the
    currents of the gated rows arriving at each point (padded at the front as in
    ColumnProgramWrite) and the cells that flip right after a point."""

    pid: np.ndarray              # (M,) pulse
    t: np.ndarray                # (M,) s
    i_rows: np.ndarray           # (M, K, C) A, MTJ current t -> b
    flip_at: np.ndarray          # (F,) point of each flip, in time order
    flip_cell: np.ndarray        # (F,) flat index of the flipped cell

    def take(self, idx) -> "_Trace":
        """The points ``idx``, in that order, with their flips."""
        new = np.full(self.t.size, -1)
        new[idx] = np.arange(idx.size)
        keep = new[self.flip_at] >= 0
        return _Trace(self.pid[idx], self.t[idx], self.i_rows[idx], new[self.flip_at[keep]],
                      self.flip_cell[keep])

    def replace(self, other: "_Trace") -> "_Trace":
        """These points with those of the pulses in ``other`` replaced by ``other``'s."""
        old = self.take(np.flatnonzero(~np.isin(self.pid, other.pid)))
        both = _Trace(*(np.concatenate([a, b]) for a, b in (
            (old.pid, other.pid), (old.t, other.t), (old.i_rows, other.i_rows),
            (old.flip_at, other.flip_at + old.t.size), (old.flip_cell, other.flip_cell))))
        return both.take(np.argsort(both.pid, kind="stable"))


@dataclass
class _Result:
    """What each pulse did (gated rows padded at the front as in ColumnProgramWrite)."""

    peak: np.ndarray             # (P, K, C) largest |I| of the gated rows' cells, A
    charge: np.ndarray           # (P, K, C) integral of |I| dt, C
    energy: np.ndarray           # (P, 5) J, POWER_KEYS order
    flips: list                  # each pulse's flipped cells, in time order
    trace: _Trace | None         # its points, when waveforms are asked


class ColumnBatch:
    """1T1R column programs of several tiles of one spec (one program per tile, one
    direction; independent circuits) as one batch. For the training planner, the MTJ
    current (t -> b) of every target at each standard ramp fraction ``FRACS`` of its
    pulse's levels (the last is the full level), with the arrays' present states for
    everything else (``at_knots``, ``at_full``; the planner integrates the edges from them
    as ``_integrate`` does); then the write itself (``write``), once the planner has set the
    widths: the same pulses on the same states, so it starts from the idle lines the
    estimate solved. ``make`` returns None when a program is not a column program
    (``plan``) or none has a pulse; the estimates return None when a solve fails (the
    caller has its own estimate then)."""

    def __init__(self, xbars, programs, pulses, hot):
        self.xbars = xbars
        self.spec, self.direction = xbars[0].spec, programs[0].direction
        self.n_tiles = len(xbars)
        self.pulses = pulses
        self.start = np.concatenate([x.states.ravel() for x in xbars])
        self.runner = ColumnProgramWrite(self.spec, pulses, None, hot, ramp_grid=2)
        self.hot0 = np.where(self.runner._real, self.start[self.runner._cell], 0.0)  # (P, K)
        self._idle = False
        self._knots = None               # at_knots' solves: (i_hot, inj, power) (P, F, ...)

    @classmethod
    def make(cls, xbars, programs) -> "ColumnBatch | None":
        """For ``programs[t]`` on ``xbars[t]`` (or a Crossbar and a program: one tile)."""
        if not isinstance(xbars, (list, tuple)):
            xbars, programs = [xbars], [programs]
        hot = HotColumnNetwork(xbars)
        pulses = plan_many(xbars[0].spec, programs, hot)
        return cls(xbars, programs, pulses, hot) if pulses else None

    def at_knots(self) -> np.ndarray | None:
        """(FRACS.size, tiles, rows, cols), NaN at the cells that are not targets."""
        P, F = len(self.pulses), FRACS.size
        slot = np.tile(np.arange(F), P)
        solved = self._solve(np.repeat(np.arange(P), F), slot,
                             np.repeat(self.hot0, F, axis=0), full=True)
        if solved is None:
            return None
        # what the write's first round asks again (the same items: ColumnProgramWrite
        # .start_solves), and at_full's lone targets
        self._knots = tuple(a.reshape((P, F) + a.shape[1:]) for a in solved[:3])
        return self._scatter(self._knots[0])

    def at_full(self, switched) -> np.ndarray | None:
        """The mean-field estimate at the full level, (tiles, rows, cols), ``switched`` of
        that shape: each target's current with its own start state but the other targets
        of its pulse (they share its bit line) at ``start + (target - start) * switched``,
        the fraction of the pulse they spend switched. One solve per (pulse, target)."""
        runner, hot0 = self.runner, self.hot0
        P, K = hot0.shape
        tgt = float(self.direction.target_state)
        q = np.nan_to_num(np.asarray(switched, float).ravel()[runner._cell])
        shifted = np.where(runner._real, hot0 + (tgt - hot0) * q, 0.0)
        # a pulse's lone target has nothing to share its line with: its current is the
        # full-level one of at_knots (the same solve); the others, one variant per target
        # with that target at its start
        own = np.full((P, K), np.nan)
        lone = runner._real.sum(axis=1) == 1
        if self._knots is not None:
            own[lone] = self._knots[0][lone, -1]
        else:
            lone[:] = False
        pp, mm = np.nonzero(runner._real & ~lone[:, None])
        if pp.size:
            states = shifted[pp]
            states[np.arange(pp.size), mm] = hot0[pp, mm]
            i_hot = self._solve(pp, np.full(pp.size, FRACS.size - 1), states)
            if i_hot is None:
                return None
            own[pp, mm] = i_hot[np.arange(pp.size), mm]
        return self._scatter(own[:, None, :])[0]

    def write(self, programs, thresholds, ramp_grid: int = RAMP_GRID) -> "TilesWritten | None":
        """Write ``programs`` (the batch's, with their final widths: the same targets) with
        ``thresholds[t]`` (``ops.write.cell_thresholds``' dict) for tile t: what
        ``quasi_static_write`` gives each program on its own (the solves of a pulse do not
        depend on the others in the batch), with the per-call cost paid once. None when a
        solve fails: the caller writes them one by one then. Once per batch."""
        T, (R, C) = self.n_tiles, self.spec.shape
        runner = self.runner
        knot_t = [_knot_times(p) for p in programs if p.pulses()]
        if sum(len(k) for k in knot_t) != len(self.pulses):
            raise ValueError("programs: must be the batch's (the same targets)")
        runner._knot_t = np.concatenate(knot_t)
        names = ("i_c0_p2ap_a", "i_c0_ap2p_a", "delta", "tau0_s", "tau_d_s")   # _Cells'
        stacked = SimpleNamespace(**{n: np.stack([np.broadcast_to(getattr(x.cells, n), (R, C))
                                                  for x in self.xbars]) for n in names})
        th = {k: np.stack([np.asarray(th[k]) for th in thresholds]) for k in thresholds[0]}
        runner.cells = _Cells(stacked, th, self.start)
        runner.grid = ramp_grid - 1
        runner.idle_solved = self._idle          # the estimate's: the first pass's contexts
        if self._idle and self._knots is not None:   # and its solves at the knots
            runner.start_solves = self._knots
            runner.hot_start = self.hot0
        try:
            res = runner.run(self.start, waveforms=False)
        except FastSolveError:
            return None
        states = self.start.copy()
        _toggle(states, np.concatenate(res.flips))
        energy_j = np.zeros(T)
        np.add.at(energy_j, runner._tile, res.energy[:, POWER_KEYS.index("delivered")])
        return TilesWritten(states.reshape(T, R, C), energy_j)

    def _solve(self, pid, slot, hot_states, full=False):
        """The runner's solves of (pulse, standard slot, hot states): the hot-cell currents,
        or with ``full`` all it returns; None when a solve fails."""
        try:
            if not self._idle:
                P = len(self.pulses)
                self.runner._new_pass(np.arange(P), self.runner.row_states(self.start))
                self._idle = True
            out = self.runner._solve(pid, FRACS[slot], slot, hot_states)
        except FastSolveError:
            return None
        return out if full else out[0]

    def _scatter(self, i_hot):
        """(P, n, K) hot-cell values -> (n, tiles, rows, cols), NaN off the targets."""
        real, cell = self.runner._real, self.runner._cell
        out = np.full((i_hot.shape[1], self.n_tiles) + self.spec.shape, np.nan)
        flat = out.reshape(i_hot.shape[1], -1)
        for f in range(i_hot.shape[1]):
            flat[f, cell[real]] = i_hot[:, f, :][real]
        return out


@dataclass
class TilesWritten:
    """What a ``ColumnBatch`` write did to each tile."""

    states: np.ndarray           # (tiles, rows, cols) int8, after the programs
    energy_j: np.ndarray         # (tiles,) delivered by the drivers, J


def _knot_times(program) -> np.ndarray:
    """(pulses, NK): the times of each pulse's knots (KNOT_F), s."""
    n = RAMP_SOLVES
    w0, w1 = np.array(program.windows_s()).T
    return np.concatenate([w0[:, None] + program.rise_s * np.arange(n + 1) / n,
                           w1[:, None] - program.fall_s
                           + program.fall_s * np.arange(n + 1) / n], axis=1)


def plan(xbar, program, hot: HotColumnNetwork) -> list[_Pulse] | None:
    """The program's pulses as column pulses, or None when it is not a column program of
    this kind (the caller then runs the sequential engine)."""
    return plan_many(xbar.spec, [program], hot)


def plan_many(spec, programs, hot: HotColumnNetwork) -> list[_Pulse] | None:
    """``plan`` of ``programs[t]`` on tile t of ``hot``, the pulses of all in one list (in
    program order), or None when any is not a column program."""
    pulses = []
    for t, program in enumerate(programs):
        more = _plan_one(spec, program, hot, t)
        if more is None:
            return None
        pulses += more
    return pulses


def _plan_one(spec, program, hot: HotColumnNetwork, tile: int) -> list[_Pulse] | None:
    from mtjsim.ops.write import line_levels
    R, C = spec.shape
    sel = program.pulses()
    if not sel:
        return []
    # the levels of all pulses at once (line_levels works elementwise on the masks)
    v_row, v_col, v_gate = (np.asarray(a, float) for a in line_levels(
        program, spec.kind, np.stack([r for r, _ in sel]), np.stack([c for _, c in sel])))
    cps = hot.column_pulses(v_row, v_col, v_gate)
    if any(cp is None for cp in cps):
        return None
    floor = np.minimum(0.0, np.minimum(v_row.min(axis=1), v_col.min(axis=1)))
    knot_t = _knot_times(program)
    pulses = [_Pulse(j, lv, hv, rows, v_gate[p, rows], float(floor[p]), knot_t[p],
                     tile * R * C + rows * C + j, tile) for p, (j, lv, hv, rows) in enumerate(cps)]
    cells = np.concatenate([q.cells for q in pulses])
    if np.unique(cells).size < cells.size:
        return None                        # a cell driven by two pulses: sequential engine
    return pulses


class ColumnProgramWrite:
    """Runs a planned column program, or several tiles' programs as one batch (their pulses
    in one list, ``plan_many``; independent circuits, so a pulse only ever sees its own
    tile's cells); ``cells`` is fast_write._Cells (thresholds, rates) of all the tiles'
    cells, flat (tile, row, column), as are states and the pulses' cells.

    Pulses gate different numbers of rows: each is padded at the front to the largest count
    K with copies of its first gated row whose gates stay off (a zero-length bit line
    segment to a cell without current); ``_real`` marks the gated rows."""

    predict = True        # first pass: contexts from the first round's crossings (_simulate)
    # the first pass's idle lines (every pulse, the start states) are solved already
    # (ColumnBatch: the planner's estimate solved them for the same pulses and states)
    idle_solved = False
    # ... and so are its solves at the standard fractions with the hot cells at their
    # start states, hot_start (P, K): (i_hot, inj, power), (P, FRACS.size, ...) each; valid
    # for a pulse while its idle lines are those (_start_ok)
    start_solves: tuple | None = None
    hot_start: np.ndarray | None = None

    def __init__(self, spec, pulses: list[_Pulse], cells, hot: HotColumnNetwork,
                 ramp_grid: int):
        self.spec = spec
        R, C = spec.shape
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
        self._j, self._lv, self._hv, self._floor, self._tile = (
            np.array([getattr(q, a) for q in pulses]) for a in ("j", "lv", "hv", "floor",
                                                                 "tile"))
        # pulses of different tiles share no cell: the k-th pulses of all tiles' programs
        # (which plan_many lists tile after tile) are one step of the program order
        rank = np.arange(P) - np.searchsorted(self._tile, self._tile)
        self._by_rank = [np.flatnonzero(rank == k) for k in range(rank.max(initial=-1) + 1)]
        base = self._tile[:, None] * (R * C) + self._rows * C                    # (P, K)
        self._cell = base + self._j[:, None]                                     # (P, K)
        self._row_cells = base[:, :, None] + np.arange(C)                       # (P, K, C)
        self._knot_t = np.stack([q.knot_t for q in pulses])                      # (P, NK)
        self._on = self._gates_on(np.arange(P)[:, None], FRACS[None, :])        # (P, slots)
        self._w_std = np.zeros((P, FRACS.size, K, C))   # last pass's idle bit-line voltages
        self._w_extra: dict = {}

    def _gates_on(self, pid, frac):
        """Whether any gate of pulse ``pid`` conducts at fraction ``frac`` (broadcast)."""
        frac = np.asarray(frac, float)
        return ((frac[..., None] * self._v_gate[pid] - self.hot.tr.vto_v)
                > (frac * self._floor[pid])[..., None]).any(axis=-1)

    def run(self, start: np.ndarray, waveforms: bool = True) -> _Result:
        """What every pulse did, consistent with the flips of the pulses before it; with
        ``waveforms``, its solve points too."""
        P = len(self.pulses)
        K, C = self.K, self.spec.cols
        # idle cells that can carry a shunt: a channel conducting at some fraction of the
        # levels (the overdrive is affine in the fraction: positive somewhere in [0, 1]
        # when it is at 0 or at 1)
        vto = self.hot.tr.vto_v
        self._live = self._real & ((self._v_gate - self._lv[:, None] - vto > 0) | (-vto > 0))
        res = _Result(np.zeros((P, K, C)), np.zeros((P, K, C)),
                      np.zeros((P, len(POWER_KEYS))), [np.empty(0, int)] * P, None)
        ctx = self.row_states(start)
        todo = np.arange(P)
        while todo.size:
            self.passes += 1
            trace = self._simulate(todo, ctx, start, res, self.predict and self.passes == 1,
                                   waveforms)
            if waveforms:
                res.trace = trace if res.trace is None else res.trace.replace(trace)
            todo = self._stale(start, res.flips, ctx)
        return res

    def row_states(self, states) -> np.ndarray:
        """(P, K, C): the states of each pulse's (padded) gated rows, from flat ``states``:
        the context its idle lines are solved with."""
        return states[self._row_cells]

    def _stale(self, start, flips, ctx) -> np.ndarray:
        """The pulses whose live idle cells (``_live``: the gated rows whose channels can
        conduct) hold other states, after the flips (``flips``: each pulse's flipped cells)
        of the pulses before them, than ``ctx`` (``row_states``) gave them; their ``ctx``
        becomes those states."""
        states = start.copy()
        stale = [np.empty(0, int)]
        for ps in self._by_rank:
            now = states[self._row_cells[ps]]                                  # (n, K, C)
            differs = ((now != ctx[ps]) & self._live[ps][:, :, None]).any(axis=(1, 2))
            ctx[ps[differs]] = now[differs]
            stale.append(ps[differs])
            _toggle(states, np.concatenate([flips[p] for p in ps]))
        return np.sort(np.concatenate(stale))

    # --- one pass over the pulses in ``todo`` ---------------------------------------------
    def _new_pass(self, todo, ctx, slots=None) -> None:
        """A pass over the pulses ``todo`` with their idle cells' states from ``ctx``."""
        self._ctx = ctx
        self._idle_extra: dict = {}          # (pulse, fraction) -> idle lines
        if self.idle_solved:                 # this pass's idle lines are there already
            self.idle_solved = False
            self._start_ok = np.full(len(self.pulses), self.start_solves is not None)
            return
        self._start_ok = np.zeros(len(self.pulses), bool)
        self._idle_std: dict = {}            # idle lines at the standard fractions
        self._at_std = np.full((len(self.pulses), FRACS.size), -1)   # row in _idle_std
        self._add_idle(todo, slots)

    def _add_idle(self, todo, slots=None) -> None:
        """Idle lines of the pulses ``todo`` at the standard fractions ``slots`` (default:
        all at which a gate conducts) with the pass's context, replacing any they had;
        other fractions are solved when asked (``_solve``)."""
        gone = set(todo.tolist())
        self._idle_extra = {key: v for key, v in self._idle_extra.items()
                            if key[0] not in gone}
        self._start_ok[todo] = False          # new idle lines: start_solves no longer theirs
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

    def _simulate(self, todo, ctx, start, res: _Result, predict=False, waveforms=True):
        """One pass over the pulses ``todo`` (each with its idle cells' states ``ctx[p]``),
        their entries of ``res`` replaced; returns their points (``_Trace``) with
        ``waveforms``. ``predict``: after the first round, which saw every pulse's whole
        timeline with these states, each cell that reached its threshold anywhere in it is
        taken to flip (later flips' effect on the currents aside: it was right for every
        cell of the 64x64 steps measured), and the pulses whose context that changes start
        again with it."""
        C = self.spec.cols
        K = self.K
        P = len(self.pulses)
        self._new_pass(todo, ctx)
        real = self._real
        hot = np.where(real, start[self._cell], 0.0)          # hot cells' states (P, K)
        self._progress = np.zeros((P, K))
        seg = np.zeros(P, int)                           # cursor: knot, time and fraction
        t_at = self._knot_t[:, 0].copy()
        f_at = np.zeros(P)
        log = _TraceLog(P) if waveforms else None
        flip_pid, flip_cell = [], []

        acc = self._acc = {name: np.zeros((P,) + shape) for name, shape in (
            ("q_hot", (K,)), ("pk_hot", (K,)), ("energy", (len(POWER_KEYS),)),
            ("q_inj", (EXTRA, K)), ("pk_inj", (EXTRA, K)), ("q_extra", (K, C)),
            ("pk_extra", (K, C)))}

        def begin(pids):                          # pulses starting (again) from their start
            cells = self._cell[pids][real[pids]]
            self.cells.in_p[cells] = start[cells] == 0    # an earlier pass may have flipped
            for a in (*acc.values(), self._progress):
                a[pids] = 0.0
            if log is not None:
                log.drop(pids)
                log.add(pids, t_at[pids], np.zeros((pids.size, K, C)))

        begin(todo)
        # edge events of the last round: (pulses, fractions, hot-cell states before the flip,
        # weights of the currents arriving at the event point, its point id): those
        # currents are the network's before the flip, solved in the next round
        before_flip = (np.empty(0, int), np.empty(0), np.empty((0, K)), np.empty(0),
                       np.empty(0, int))
        active = todo
        ar_nk = np.arange(NK)
        while active.size:
            A = active.size
            ar = np.arange(A)
            ahead = ar_nk[None, :] > seg[active][:, None]        # knots after the cursor
            t_kn = np.where(ahead, self._knot_t[active], t_at[active][:, None])
            f_kn = np.where(ahead, KNOT_F, f_at[active][:, None])
            slot_kn = np.where(ahead, KNOT_SLOT, _slot_of(f_at[active])[:, None])
            need = np.zeros((A, EXTRA + 1), bool)
            need[ar[:, None], slot_kn] = True
            r_a, r_s = np.nonzero(need)
            n = r_a.size
            bf_pid, bf_f, bf_hot, bf_w, bf_ids = before_flip
            pid = np.concatenate([active[r_a], bf_pid])
            frac = np.concatenate([np.where(r_s == EXTRA, f_at[active[r_a]],
                                            FRACS[np.minimum(r_s, EXTRA - 1)]), bf_f])
            slot = np.concatenate([r_s, _slot_of(bf_f)])
            i_hot, inj, power, i_rows = self._solve(
                pid, frac, slot, np.concatenate([hot[active[r_a]], bf_hot]), waveforms)
            s_hot = np.zeros((A, EXTRA + 1, K))
            s_hot[r_a, r_s] = i_hot[:n]
            req = np.zeros((A, EXTRA + 1), int)          # the request of each pulse and slot
            req[r_a, r_s] = np.arange(n)
            ev, s, alpha, t_ev, f_ev, prog, flip, crossing = self._integrate(
                active, seg[active], t_kn, f_kn, slot_kn, s_hot)
            e = np.flatnonzero(ev)
            ep = active[e]
            on_edge = f_ev[e] != 1.0
            # the event point's currents arriving: a knot's (alpha is 0 or 1 off an edge)
            ev_slot = np.where(on_edge, -1, np.where(alpha[e] == 0.0, slot_kn[e, s[e]],
                                                       slot_kn[e, s[e] + 1]))
            ev_dt = t_ev[e] - t_kn[e, s[e]]
            last = np.where(ev, s, NK - 1)
            w, point = self._weights(seg[active], last, t_kn, slot_kn, r_a, r_s, e, ev_dt,
                                     ev_slot)
            self._account(pid, slot, frac, np.concatenate([w, bf_w]),
                          np.concatenate([point, np.ones(bf_pid.size, bool)]), i_hot, inj,
                          power)
            if log is not None:
                log.arrive(bf_ids, i_rows[n:])
                pa, pm = np.nonzero(ahead & (ar_nk[None, :] <= last[:, None]))
                log.add(active[pa], t_kn[pa, pm], i_rows[req[pa, slot_kn[pa, pm]]])
                i0 = i_rows[req[e, slot_kn[e, s[e]]]]
                ids = log.add(ep, t_ev[e], i0 + (i_rows[req[e, slot_kn[e, s[e] + 1]]] - i0)
                              * alpha[e][:, None, None])
            else:
                ids = np.zeros(e.size, int)
            fe, fr = np.nonzero(flip[e])
            flip_pid.append(ep[fe])
            flip_cell.append(self._cell[ep[fe], fr])
            if log is not None:
                log.flips(ids[fe], flip_cell[-1])
            before_flip = (ep[on_edge], f_ev[e][on_edge], hot[ep[on_edge]],
                           0.5 * ev_dt[on_edge], ids[on_edge])
            # the flips, and the cursor: which standard segment the event lies in
            prog[flip] = 0.0
            self._progress[active] = prog
            hot[ep] = np.where(flip[e], 1.0 - hot[ep], hot[ep])
            flipped = self._cell[ep][flip[e]]
            self.cells.in_p[flipped] = hot[ep][flip[e]] == 0
            seg[ep] = np.minimum((self._knot_t[ep] <= t_ev[e][:, None]).sum(axis=1) - 1,
                                 NK - 2)
            t_at[ep], f_at[ep] = t_ev[e], f_ev[e]
            active = ep
            if predict:
                predict = False
                flips = [np.empty(0, int)] * P
                for q, p in enumerate(todo):                # round 1: active is todo
                    flips[p] = self._cell[p][crossing[q]]
                again = self._stale(start, flips, ctx)
                if again.size:
                    self._add_idle(again)
                    hot[again] = np.where(real[again], start[self._cell[again]], 0.0)
                    seg[again], t_at[again], f_at[again] = 0, self._knot_t[again, 0], 0.0
                    begin(again)
                    keep = ~np.isin(before_flip[0], again)
                    before_flip = tuple(a[keep] for a in before_flip)
                    keep = ~np.isin(flip_pid[0], again)
                    flip_pid[0], flip_cell[0] = flip_pid[0][keep], flip_cell[0][keep]
                    active = np.union1d(active, again)
        flip_pid, flip_cell = np.concatenate(flip_pid), np.concatenate(flip_cell)
        order = np.argsort(flip_pid, kind="stable")          # each pulse's in time order
        bounds = np.searchsorted(flip_pid[order], todo, side="left"), \
            np.searchsorted(flip_pid[order], todo, side="right")
        for p, lo, hi in zip(todo, *bounds):
            res.flips[p] = flip_cell[order[lo:hi]]
        self._finish(todo, res)
        return None if log is None else log.trace()

    @staticmethod
    def _weights(seg, last, t_kn, slot_kn, r_a, r_s, e, ev_dt, ev_slot):
        """What the requests (r_a, r_s) stand for in the stretch of each active pulse that
        this round covered (from its cursor through the knots passed to its event, ``e``,
        or its end): their weights in the trapezoids of the currents leaving one point and
        arriving at the next, and whether they are a point's. An event ``ev_dt`` after its
        last knot takes the currents of slot ``ev_slot`` arriving, or (-1) those before the
        flip, solved next round with weight 0.5 ev_dt."""
        A = seg.size
        ar = np.arange(A)
        m = np.arange(NK - 1)[None, :]
        whole = (m >= seg[:, None]) & (m < last[:, None])             # segments passed whole
        half = 0.5 * np.diff(t_kn, axis=1) * whole
        w = np.zeros((A, EXTRA + 1))
        np.add.at(w, (ar[:, None], slot_kn[:, :-1]), half)
        np.add.at(w, (ar[:, None], slot_kn[:, 1:]), half)
        point = np.zeros((A, EXTRA + 1), bool)
        pa, pm = np.nonzero(np.arange(NK)[None, :] <= last[:, None])
        point[pa, slot_kn[pa, pm]] = True
        np.add.at(w, (e, slot_kn[e, last[e]]), 0.5 * ev_dt)
        k = ev_slot >= 0
        np.add.at(w, (e[k], ev_slot[k]), 0.5 * ev_dt[k])
        point[e[k], ev_slot[k]] = True
        return w[r_a, r_s], point[r_a, r_s]

    def _account(self, pid, slot, frac, w, point, i_hot, inj, power) -> None:
        """Add the requests' currents to their pulses' charge (``w``: the time each stands
        for) and peak (``point``: a point's currents) and their power to the energy. An idle
        cell carries its hot cell's injected current times a per-ampere current that is
        the same at every solve of a pulse at a standard fraction, so there only the
        injected currents are summed (``_finish`` multiplies them out); at the others
        (events on an edge) the idle cells' currents are formed here."""
        acc = self._acc
        a_hot, a_inj = np.abs(i_hot), np.abs(inj)
        np.add.at(acc["q_hot"], pid, w[:, None] * a_hot)
        np.maximum.at(acc["pk_hot"], pid, a_hot * point[:, None])
        np.add.at(acc["energy"], pid, w[:, None] * power)
        std = slot < EXTRA
        np.add.at(acc["q_inj"], (pid[std], slot[std]), w[std, None] * a_inj[std])
        np.maximum.at(acc["pk_inj"], (pid[std], slot[std]), a_inj[std] * point[std, None])
        for r in np.flatnonzero(~std & (a_inj.max(axis=1) > 0)):
            p = pid[r]
            i_sh = (np.abs(self._idle_extra[(int(p), float(frac[r]))]["i_sh"])
                    * a_inj[r][:, None])
            acc["q_extra"][p] += w[r] * i_sh
            if point[r]:
                acc["pk_extra"][p] = np.maximum(acc["pk_extra"][p], i_sh)

    def _finish(self, todo, res: _Result) -> None:
        """The pulses ``todo``'s peak, charge and energy from this pass's sums."""
        acc = self._acc
        K, C = self.K, self.spec.cols
        at = self._at_std[todo][:, :EXTRA]
        i_sh = np.zeros(at.shape + (K, C))                  # (T, slots, K, C), per ampere
        i_sh[at >= 0] = np.abs(self._idle_std["i_sh"][at[at >= 0]])
        res.charge[todo] = acc["q_extra"][todo] + np.einsum("tsk,tskc->tkc",
                                                             acc["q_inj"][todo], i_sh)
        res.peak[todo] = np.maximum(acc["pk_extra"][todo],
                                    (acc["pk_inj"][todo][..., None] * i_sh).max(axis=1))
        # the hot cells (their per-ampere idle currents are 0)
        hot = (todo[:, None], np.arange(K), self._j[todo][:, None])
        res.charge[hot] += acc["q_hot"][todo]
        res.peak[hot] = np.maximum(res.peak[hot], acc["pk_hot"][todo])
        res.energy[todo] = acc["energy"][todo]

    def _solve(self, pid, frac, slot, hot, rows=False):
        """Hot-cell currents (n, K), the currents they inject into their source lines
        (n, K) and power (n, 5) of the requests (pulse, fraction, its slot, hot-cell states
        (n, K)), from one batched solve, and with ``rows`` the gated rows' currents
        (n, K, C); zero where every gate is off. Requests that ``start_solves`` holds (the
        same items, solved before) are taken from there."""
        if self.start_solves is None or rows:
            return self._solve_items(pid, frac, slot, hot, rows)
        std = np.minimum(slot, EXTRA - 1)
        known = ((slot < EXTRA) & self._start_ok[pid]
                 & (hot == self.hot_start[pid]).all(axis=1))
        out = self._solve_items(pid[~known], frac[~known], slot[~known], hot[~known], rows)
        full = []
        for new, memo in zip(out[:3], self.start_solves):
            a = np.empty((pid.size,) + new.shape[1:])
            a[~known] = new
            a[known] = memo[pid[known], std[known]]
            full.append(a)
        return (*full, None)

    def _solve_items(self, pid, frac, slot, hot, rows=False):
        """``_solve`` of every request."""
        C = self.spec.cols
        K = self.K
        n = pid.size
        i_hot, inj = np.zeros((n, K)), np.zeros((n, K))
        power = np.zeros((n, len(POWER_KEYS)))
        i_rows = np.zeros((n, K, C)) if rows else None
        mem = np.flatnonzero(self._gates_on(pid, frac))
        if not mem.size:
            return i_hot, inj, power, i_rows
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
        idle = {}                        # the idle cells' own currents only for ``rows``
        for name in IDLE_PAD if rows else ("z_ohm", "p_row", "p_pair"):
            a = np.empty((mem.size,) + (self._idle_std[name].shape[1:] if std.any() else
                                        self._idle_extra[keys[0]][name].shape))
            if at.size:
                a[std] = self._idle_std[name][at]
            if keys:
                a[~std] = np.stack([self._idle_extra[key][name] for key in keys])
            idle[name] = a
        # unpadded, grouped by gated-row count: a pulse's solve then does not depend on
        # the others in the batch (padding rows change its Newton steps by ~1e-9)
        ks = K - self._pad[m]
        for k in np.unique(ks):
            g = np.flatnonzero(ks == k)
            at_g, mg, real = mem[g], m[g], slice(K - k, None)
            items = Items(rows=self._rows[mg, real], j=self._j[mg], lv=self._lv[mg],
                          hv=self._hv[mg], frac=f[g], v_gate=self._v_gate[mg, real],
                          floor=self._floor[mg], states=None, hot=hot[at_g, real],
                          tile=self._tile[mg])
            solved = self.hot.solve_items(items, {
                name: a[(g,) + (real,) * IDLE_PAD[name][1]] for name, a in idle.items()})
            i_hot[at_g, real], inj[at_g, real] = solved.i_hot, solved.inj
            power[at_g] = np.stack([solved.power[key] for key in POWER_KEYS], axis=1)
            if rows:
                i_rows[at_g, real] = solved.i_rows
        self.n_items += mem.size
        return i_hot, inj, power, i_rows

    def _idle_lines(self, pid, frac, w0):
        """Idle lines of the (pulse, fraction) pairs with this pass's idle-cell states,
        unpadded (grouped by gated-row count), returned padded, with the bit-line voltages
        (padded) that warm-start the next pass."""
        C = self.spec.cols
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
                        states=self._ctx[p, K - k:].astype(float), tile=self._tile[p])
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
        whether it reaches its threshold anywhere on the timeline, flips aside.

        A segment whose currents are the same at both ends for every cell of a pulse (the
        flat top, the zero-length stretch before a cursor, gates off) has constant rates:
        one step integrates it exactly. An edge segment takes the fine grid, unless no cell
        of the pulse can change its progress by NEGLIGIBLE_PROGRESS in it (the low part of
        the edges; the rates rise with the current pushing each way, so a segment's ends
        bound them), which one step of its mean rates does to below that (fast_write's
        coarse cells). The pulses go in groups with the same such segments, so what a pulse
        gets does not depend on the others in the batch."""
        real = self._real[active]
        owner, r = np.nonzero(real)
        starts = np.concatenate([[0], np.cumsum(real.sum(axis=1))[:-1]])
        i_kn = s_hot[owner[:, None], slot_kn[owner], r[:, None]]             # (N, NK)
        tw, aw = self.cells.rates(i_kn, self._cell[active][real])
        dur = np.diff(t_kn, axis=1)[owner]                                  # (N, NK - 1)
        p0 = self._progress[active][real]
        negligible = (np.maximum(tw[:, 1:], tw[:, :-1]) * dur <= NEGLIGIBLE_PROGRESS) & (
            (p0[:, None] <= NEGLIGIBLE_PROGRESS)
            | (DRAIN * np.maximum(aw[:, 1:], aw[:, :-1]) * dur <= NEGLIGIBLE_PROGRESS))
        const = i_kn[:, 1:] == i_kn[:, :-1]
        key = np.concatenate([np.logical_and.reduceat(const, starts, axis=0),
                              np.logical_and.reduceat(negligible, starts, axis=0)], axis=1)
        patterns, group = np.unique(key, axis=0, return_inverse=True)
        group = group.ravel()
        out = None
        for gi, pattern in enumerate(patterns):
            g = np.flatnonzero(group == gi)
            res = self._integrate_group(active[g], seg[g], t_kn[g], f_kn[g], slot_kn[g],
                                        s_hot[g], pattern[:NK - 1], pattern[NK - 1:])
            if out is None:
                out = [np.empty((active.size,) + a.shape[1:], a.dtype) for a in res]
            for o, a in zip(out, res):
                o[g] = a
        return tuple(out)

    def _integrate_group(self, active, seg, t_kn, f_kn, slot_kn, s_hot, const_all,
                         coarse_all):
        """``_integrate`` of pulses whose constant (``const_all``) and negligible
        (``coarse_all``) segments are these, (NK - 1,) each."""
        G = self.grid
        A = active.size
        real = self._real[active]
        owner, r = np.nonzero(real)
        sizes = real.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        m0 = int(seg.min())                  # knots before every cursor: none to integrate
        i_kn = s_hot[owner[:, None], slot_kn[owner, m0:], r[:, None]]        # (N, knots)
        const = const_all[m0:]
        steps = np.where(const | coarse_all[m0:], 1, G)
        col_seg = np.repeat(np.arange(const.size), steps)                   # (S,)
        col_g = np.arange(col_seg.size) - (np.cumsum(steps) - steps)[col_seg]
        i0, i1 = i_kn[:, col_seg], i_kn[:, col_seg + 1]
        cur0 = i0 + (i1 - i0) * (col_g / steps[col_seg])                    # (N, S)
        cur1 = i0 + (i1 - i0) * ((col_g + 1) / steps[col_seg])              # step ends
        dts = (np.diff(t_kn[:, m0:], axis=1) / steps)[:, col_seg][owner]     # (N, S)
        toward, away = self.cells.rates(cur0, self._cell[active][real], cur1)   # step means
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
        alpha = np.where(flat, 0.0, (g + 1) / steps[s - m0])
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


class _TraceLog:
    """The points of one pass, in the order they are found (each pulse's in time order)."""

    def __init__(self, n_pulses):
        self.first = np.zeros(n_pulses, int)     # each pulse's first point id that counts
        self.pid, self.t, self.rows = [], [], []
        self.arriving: list = []         # (ids, currents): arriving at an edge event
        self.flip_ids, self.flip_cells = [np.empty(0, int)], [np.empty(0, int)]
        self.n = 0

    def add(self, pid, t, rows) -> np.ndarray:
        ids = self.n + np.arange(pid.size)
        self.n += pid.size
        for lst, a in zip((self.pid, self.t, self.rows), (pid, t, rows)):
            lst.append(a)
        return ids

    def drop(self, pids):
        """The pulses ``pids`` start again: their points so far do not count."""
        self.first[pids] = self.n

    def arrive(self, ids, rows):
        self.arriving.append((ids, rows))

    def flips(self, ids, cells):
        self.flip_ids.append(ids)
        self.flip_cells.append(cells)

    def trace(self) -> _Trace:
        pid, t, rows = (np.concatenate(a) for a in (self.pid, self.t, self.rows))
        for ids, r in self.arriving:
            rows[ids] = r
        counts = np.flatnonzero(np.arange(pid.size) >= self.first[pid])
        return _Trace(pid, t, rows, np.concatenate(self.flip_ids),
                      np.concatenate(self.flip_cells)).take(
            counts[np.argsort(pid[counts], kind="stable")])


def _toggle(states, cells) -> None:
    """Flip ``cells`` of ``states`` one after the other (a cell listed twice flips back)."""
    c, n = np.unique(cells, return_counts=True)
    c = c[n % 2 == 1]
    states[c] = 1 - states[c]


def assemble(pulses, res: _Result, start, shape, waveforms=True) -> Assembled:
    """Peak and mean currents, energy and (if asked) waveforms, pulse after pulse in time
    order."""
    R, C = shape
    P = len(pulses)
    K = res.peak.shape[1]
    grow = np.stack([np.concatenate([np.full(K - q.rows.size, -1), q.rows]) for q in pulses])
    real = grow >= 0                                                         # (P, K)
    cell = grow[:, :, None] * C + np.arange(C)                               # (P, K, C)
    peak, charge = np.zeros(R * C), np.zeros(R * C)
    np.maximum.at(peak, cell[real], res.peak[real])
    np.add.at(charge, cell[real], res.charge[real])
    energy = dict(zip(POWER_KEYS, res.energy.sum(axis=0).tolist()))
    states = start.copy()
    _toggle(states, np.concatenate(res.flips))
    if not waveforms:
        return Assembled(states, peak, charge, energy, [0.0], [np.zeros(R * C, np.float32)],
                         [start.copy()])
    tr = res.trace
    # every point but each pulse's first (its start, where the previous one ended)
    keep = np.ones(tr.t.size, bool)
    keep[np.searchsorted(tr.pid, np.arange(P))] = False
    kp = np.flatnonzero(keep)
    cur = np.zeros((kp.size + 1, R * C), np.float32)
    q, r = np.nonzero(real[tr.pid[kp]])
    cur[1 + q[:, None], cell[tr.pid[kp]][q, r]] = tr.i_rows[kp][q, r]
    # states at a point: before its own flips
    count = np.zeros((tr.t.size + 1, R * C), np.int32)
    np.add.at(count, (tr.flip_at + 1, tr.flip_cell), 1)
    snap = np.concatenate([start[None, :], start[None, :] ^ (
        np.cumsum(count, axis=0)[kp] & 1).astype(start.dtype)])
    return Assembled(states, peak, charge, energy, [0.0] + tr.t[kp].tolist(), cur, snap)
