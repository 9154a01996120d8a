"""Write (update): pulse programs on an array, solved in ngspice with MTJs that switch inside
the circuit (models/mtj_stt.lib).

Whether a cell switches is decided by the current the circuit drives through it, so IR drop,
sneak currents and half-select disturb change the outcome. The randomness is drawn here from
a seeded generator and written into the netlist as each device's thresholds: the netlist is
deterministic (same seed, same switched cells; plain ``ngspice -b`` gives the same states).

Schemes (SET = P -> AP, positive current from word line to bit line; RESET reverses):

=========  =========  ===========  =========  ===========
scheme     sel. row   unsel. row   sel. col   unsel. col
=========  =========  ===========  =========  ===========
V/2 SET    V          V/2          0          V/2
V/3 SET    V          V/3          0          2V/3
V/2 RESET  0          V/2          V          V/2
V/3 RESET  0          2V/3         V          V/3
=========  =========  ===========  =========  ===========

1T1R: the selected row's gate at ``v_gate_write_v``, other gates at 0; SET drives the target
bit lines to V and the row's source line to 0, RESET the reverse; unselected bit lines sit at
the selected source line's voltage, so no current flows in unselected cells of the row.
Every pulse of a program is one slot of ONE transient, so states carry over between pulses.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, Crossbar, Nodes, build_write_circuit, mtj_static
from mtjsim.circuit.elements import SubcktInstance, TranAnalysis
from mtjsim.devices.mtj import mtj_conductance_s
from mtjsim.devices.switching import thresholds_of
from mtjsim.energy.accounting import element_energies
from mtjsim.energy.report import update_report
from mtjsim.engines import Engine
from mtjsim.engines.ngspice import Backend
from mtjsim.ops.common import netlist_dir, simulate
from mtjsim.validation import check_int, check_range


class WriteScheme(enum.Enum):
    V_HALF = "v2"
    V_THIRD = "v3"
    ONE_T_ONE_R = "1t1r"


class Direction(enum.Enum):
    SET = "set"        # P -> AP
    RESET = "reset"    # AP -> P

    @property
    def target_state(self) -> int:
        return 1 if self is Direction.SET else 0


class Parallelism(enum.Enum):
    ROW = "row"          # one pulse per row: all its target columns at once
    COLUMN = "column"    # one pulse per column: all its target rows at once


# ngspice settings for writes: gear integration (trapezoidal rings on the fast state node).
WRITE_OPTIONS = {"method": "gear", "reltol": 1e-4, "abstol": 1e-12, "vntol": 1e-7}


@dataclass(frozen=True)
class PulseProgram:
    """Which cells to write, how, and the pulse shape (volts and seconds)."""

    scheme: WriteScheme
    direction: Direction
    targets: np.ndarray                 # bool (rows, cols): the cells to write
    v_write_v: float = 1.0
    pulse_width_s: float = 10e-9
    rise_s: float = 0.2e-9
    fall_s: float = 0.2e-9
    parallel: Parallelism = Parallelism.ROW
    gap_s: float = 1e-9                 # all lines at 0 V between pulses (and before/after)
    v_gate_write_v: float = 1.2         # 1T1R selected gate
    # Optional width of each pulse, in the order of pulses() (e.g. a per-column width that
    # sets each column's switching probability); default: pulse_width_s for all.
    widths_s: tuple[float, ...] | None = None

    def __post_init__(self):
        for name, enum_type in (("scheme", WriteScheme), ("direction", Direction),
                                ("parallel", Parallelism)):
            if not isinstance(getattr(self, name), enum_type):
                raise ValueError(f"{name}={getattr(self, name)!r}: must be one of "
                                 f"{[e.value for e in enum_type]}")
        t = np.asarray(self.targets)
        if t.ndim != 2 or not np.isin(t, (0, 1)).all():
            raise ValueError("targets: must be a 2-D mask of 0/1 (rows x cols)")
        if not t.any():
            raise ValueError("targets: must select at least one cell")
        object.__setattr__(self, "targets", t.astype(bool))
        check_range("v_write_v", self.v_write_v, lo=0, lo_open=True, hi=5, typical="0.5 to 2")
        check_range("pulse_width_s", self.pulse_width_s, lo=10e-12, hi=1e-3,
                    typical="1e-9 to 100e-9")
        check_range("rise_s", self.rise_s, lo=1e-12, hi=self.pulse_width_s, typical="0.1e-9")
        check_range("fall_s", self.fall_s, lo=1e-12, hi=self.pulse_width_s, typical="0.1e-9")
        check_range("gap_s", self.gap_s, lo=1e-12, hi=1e-3, typical="1e-9")
        check_range("v_gate_write_v", self.v_gate_write_v, lo=0, hi=5, typical="1.0 to 1.5")
        if self.widths_s is not None:
            widths = tuple(float(w) for w in self.widths_s)
            if len(widths) != len(self.pulses()):
                raise ValueError(f"widths_s: {len(widths)} widths for {len(self.pulses())} pulses")
            for w in widths:
                check_range("widths_s[k]", w, lo=10e-12, hi=1e-3, typical="1e-9 to 100e-9")
            object.__setattr__(self, "widths_s", widths)

    @classmethod
    def single(cls, shape, row: int, col: int, scheme: WriteScheme, direction: Direction,
               **kw) -> "PulseProgram":
        rows, cols = shape
        check_int("target_row", row, lo=0, hi=rows - 1)
        check_int("target_col", col, lo=0, hi=cols - 1)
        t = np.zeros(shape, dtype=bool)
        t[row, col] = True
        return cls(scheme, direction, t, **kw)

    def pulses(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(selected rows mask, selected columns mask) for each pulse, in order (read-only
        arrays, made once: a training update asks a program for them several times)."""
        made = self.__dict__.get("_pulses")
        if made is None:
            t = self.targets
            made = []
            if self.parallel is Parallelism.ROW:
                for i in np.flatnonzero(t.any(axis=1)):
                    rows = np.zeros(t.shape[0], bool)
                    rows[i] = True
                    made.append((rows, t[i].copy()))
            else:
                for j in np.flatnonzero(t.any(axis=0)):
                    cols = np.zeros(t.shape[1], bool)
                    cols[j] = True
                    made.append((t[:, j].copy(), cols))
            for masks in made:
                for m in masks:
                    m.setflags(write=False)
            object.__setattr__(self, "_pulses", made)      # not a field: frozen dataclass
        return list(made)

    def widths(self) -> tuple[float, ...]:
        """Flat-top width of each pulse."""
        return self.widths_s or (self.pulse_width_s,) * len(self.pulses())

    def windows_s(self) -> list[tuple[float, float]]:
        """(start, end) of each pulse, from the start of its rise to the end of its fall;
        every pulse is followed by gap_s at 0 V, and the program starts with one."""
        out, t = [], self.gap_s
        for w in self.widths():
            end = t + self.rise_s + w + self.fall_s
            out.append((t, end))
            t = end + self.gap_s
        return out

    @property
    def duration_s(self) -> float:
        return self.windows_s()[-1][1] + self.gap_s


def line_levels(program: PulseProgram, kind: ArrayKind, sel_rows, sel_cols):
    """Voltages during one pulse: (row lines, columns, gates or None)."""
    v = program.v_write_v
    s = program.scheme
    if (kind is ArrayKind.PASSIVE) == (s is WriteScheme.ONE_T_ONE_R):
        raise ValueError(f"scheme={s.value}: {'1t1r' if kind is ArrayKind.ONE_T_ONE_R else 'v2 or v3'}"
                         f" is the scheme for a {kind.value} array")
    set_ = program.direction is Direction.SET
    if s is WriteScheme.ONE_T_ONE_R:
        row_v = np.where(sel_rows, 0.0 if set_ else v, 0.0)
        sel_level = v if set_ else 0.0
        idle_col = 0.0 if set_ else v            # equal to the selected source line
        col_v = np.where(sel_cols, sel_level, idle_col)
        gate_v = np.where(sel_rows, program.v_gate_write_v, 0.0)
        return row_v, col_v, gate_v
    frac_row, frac_col = {(WriteScheme.V_HALF, True): (0.5, 0.5),
                          (WriteScheme.V_HALF, False): (0.5, 0.5),
                          (WriteScheme.V_THIRD, True): (1 / 3, 2 / 3),
                          (WriteScheme.V_THIRD, False): (2 / 3, 1 / 3)}[(s, set_)]
    row_v = np.where(sel_rows, v if set_ else 0.0, frac_row * v)
    col_v = np.where(sel_cols, 0.0 if set_ else v, frac_col * v)
    return row_v, col_v, None


def _pwl(levels: list[float], program: PulseProgram):
    """0 V, then for each pulse: rise to its level, hold, fall back to 0, gap."""
    pts = [(0.0, 0.0)]
    for lv, (t0, t1) in zip(levels, program.windows_s()):
        pts += [(t0, 0.0), (t0 + program.rise_s, lv), (t1 - program.fall_s, lv), (t1, 0.0)]
    return (0.0, tuple(pts))


@dataclass
class WriteResult:
    switched: np.ndarray           # (rows, cols) 0/1
    states_before: np.ndarray
    states_after: np.ndarray
    targets: np.ndarray            # bool mask of the cells the program meant to write
    target_state: int
    i_cell_peak_a: np.ndarray      # (rows, cols) largest |I| during the program
    i_cell_mean_a: np.ndarray      # (rows, cols) mean |I| over the pulse windows
    thresholds: dict               # per-cell ethp, ethap, lnthp, lnthap actually written
    dynamic: np.ndarray            # bool (rows, cols): cells simulated with switching
    netlist_path: Path | None
    timings_s: dict = field(default_factory=dict)
    waveforms: dict | None = None  # time_s, v_row_v, v_col_v, (v_gate_v), i_cell_a, state
    energy: object | None = None   # mtjsim.energy.report.EnergyReport of the update

    @property
    def write_errors(self) -> np.ndarray:
        """Target cells not in the target state after the program."""
        return self.targets & (self.states_after != self.target_state)

    @property
    def disturbed(self) -> np.ndarray:
        """Cells outside the targets whose state changed: half-select disturb."""
        return ~self.targets & (self.switched == 1)

    @property
    def n_time_points(self) -> int:
        return 0 if self.waveforms is None else len(self.waveforms["time_s"])


def dynamic_cells(xbar: Crossbar, program: PulseProgram) -> np.ndarray:
    """Cells that see a non-zero ideal bias in some pulse: they get the switching model; the
    others (0 V, or a gate that stays off) cannot switch and stay plain MTJs, which keeps
    big arrays affordable (PHYSICS.md: ~30 us per behavioural device per Newton iteration)."""
    return pulse_dynamic_cells(xbar, program).any(axis=0)


def pulse_dynamic_cells(xbar: Crossbar, program: PulseProgram) -> np.ndarray:
    """(pulses, rows, cols): the cells each pulse biases (``dynamic_cells`` of that pulse
    alone)."""
    sel = program.pulses()
    if not sel:
        return np.zeros((0,) + xbar.spec.shape, bool)
    # line_levels works elementwise on the masks: all pulses at once
    row_v, col_v, gate_v = line_levels(program, xbar.spec.kind, np.stack([r for r, _ in sel]),
                                       np.stack([c for _, c in sel]))
    on = np.abs(row_v[:, :, None] - col_v[:, None, :]) > 0
    if gate_v is not None:
        on &= (gate_v > 0)[:, :, None]
    return on


def cell_thresholds(xbar: Crossbar, seed: int) -> dict:
    """Per-cell thresholds of one write, from ``seed``: both engines use exactly these."""
    return cell_thresholds_of_pulses(xbar, [seed], np.zeros(xbar.spec.shape, int))


def cell_thresholds_of_pulses(xbar: Crossbar, seeds, owner) -> dict:
    """``cell_thresholds`` with each cell's from ``seeds[owner[cell]]`` (e.g. the seed of
    the one pulse of a program that biases it). A seed's draws: Exp(1) for every cell,
    row-major, for P -> AP, then for AP -> P (``draw_thresholds`` twice)."""
    shape = xbar.spec.shape
    # default_rng(s).exponential(1.0, ...), ~30 % cheaper spelled out (a training update
    # draws for ~60,000 pulse seeds)
    draws = np.stack([np.random.Generator(np.random.PCG64(s)).standard_exponential(
        (2,) + shape) for s in seeds])                                   # (seeds, 2, R, C)
    e = np.take_along_axis(draws, np.asarray(owner)[None, None], axis=0)[0]
    ethp, lnthp = thresholds_of(e[0], xbar.cells.delta)
    ethap, lnthap = thresholds_of(e[1], xbar.cells.delta)
    return {"ethp": ethp, "ethap": ethap, "lnthp": lnthp, "lnthap": lnthap}


def build(xbar: Crossbar, program: PulseProgram, seed: int):
    """The write circuit, its analysis and the thresholds written into it."""
    spec = xbar.spec
    if program.targets.shape != spec.shape:
        raise ValueError(f"targets shape {program.targets.shape}: must be {spec.shape}")
    pulses = program.pulses()
    levels = [line_levels(program, spec.kind, r, c) for r, c in pulses]
    rows = [_pwl([lv[0][i] for lv in levels], program) for i in range(spec.rows)]
    cols = [_pwl([lv[1][j] for lv in levels], program) for j in range(spec.cols)]
    gates = None
    if spec.kind is ArrayKind.ONE_T_ONE_R:
        gates = [_pwl([lv[2][i] for lv in levels], program) for i in range(spec.rows)]
    thresholds = cell_thresholds(xbar, seed)
    ethp, ethap, lnthp, lnthap = (thresholds[k] for k in ("ethp", "ethap", "lnthp", "lnthap"))
    dyn = dynamic_cells(xbar, program)

    def mtj(name, t, b, cells, i, j, state):
        if not dyn[i, j]:
            return mtj_static(name, t, b, cells, i, j, state)
        return SubcktInstance(name, (t, b), "mtj_stt", (
            ("rp", cells.r_p_ohm[i, j]), ("tmr0", cells.tmr0[i, j]), ("vh", cells.v_h_v[i, j]),
            ("s0", float(state)), ("ic0p", cells.i_c0_p2ap_a[i, j]),
            ("ic0ap", cells.i_c0_ap2p_a[i, j]), ("delta", cells.delta[i, j]),
            ("tau0", cells.tau0_s[i, j]), ("taud", cells.tau_d_s[i, j]),
            ("ethp", ethp[i, j]), ("ethap", ethap[i, j]),
            ("lnthp", lnthp[i, j]), ("lnthap", lnthap[i, j])))

    circuit = build_write_circuit(xbar, rows, cols, gates, mtj,
                                  title=f"mtjsim {spec.kind.value} {program.scheme.value} "
                                        f"{program.direction.value} write {spec.rows}x{spec.cols}"
                                        f", seed {seed}")
    circuit.options.update(WRITE_OPTIONS)
    edge = min(program.rise_s, program.fall_s)
    analysis = TranAnalysis(step_s=edge, stop_s=program.duration_s,
                            max_step_s=min(min(program.widths()) / 20, program.gap_s))
    return circuit, analysis, thresholds, dyn


def write(xbar: Crossbar, program: PulseProgram, seed: int = 0, *, workdir: Path | None = None,
          netlist_name: str = "write.cir", backend: Backend = Backend.SUBPROCESS,
          update_states: bool = False, engine: Engine = Engine.NGSPICE) -> WriteResult:
    """Simulate ``program`` on ``xbar``; the thresholds come from ``seed``.

    Returns which cells switched (selected or not), the final states, per-cell peak and mean
    current and the waveforms. ``update_states``: copy the final states into ``xbar``.
    ``engine``: ngspice (the reference) or the fast quasi-static engine, same thresholds.
    """
    if Engine(engine) is Engine.FAST:
        from mtjsim.ops.fast_ops import fast_write
        return fast_write(xbar, program, seed, update_states=update_states)
    spec = xbar.spec
    t0 = time.perf_counter()
    circuit, analysis, thresholds, dyn = build(xbar, program, seed)
    build_s = time.perf_counter() - t0
    with netlist_dir(workdir) as folder:
        sim, times = simulate(circuit, analysis, folder, netlist_name, backend)
        t2 = time.perf_counter()
        n = Nodes(spec)
        t_s = sim.time_s
        state = np.empty(spec.shape + (len(t_s),))
        v_cell = np.empty_like(state)

        def v(node):
            return np.zeros(len(t_s)) if node == "0" else sim.v(node)

        for i in range(spec.rows):
            for j in range(spec.cols):
                if dyn[i, j]:
                    state[i, j] = sim.v(f"x{i}_{j}.s")
                else:
                    state[i, j] = xbar.states[i, j]
                if spec.kind is ArrayKind.PASSIVE:
                    v_cell[i, j] = v(n.wl(i, j + 1)) - v(n.bl(j, i))
                else:
                    v_cell[i, j] = v(n.bl(j, i)) - v(n.drain(i, j))
        i_cell = _cell_current(xbar.cells, v_cell, state)
        states_after = (state[..., -1] > 0.5).astype(np.int8)
        abs_i = np.abs(i_cell)
        # Every line sits at 0 V outside the pulse windows, so the integral over the whole
        # transient is the integral over the pulses.
        pulse_time_s = sum(b - a for a, b in program.windows_s())
        mean = np.trapezoid(abs_i, t_s, axis=-1) / pulse_time_s
        row_node = n.wl if spec.kind is ArrayKind.PASSIVE else n.sl
        waveforms = {
            "time_s": t_s,
            "v_row_v": np.stack([v(row_node(i, 0)) for i in range(spec.rows)]),
            "v_col_v": np.stack([v(n.sense(j)) for j in range(spec.cols)]),
            "i_cell_a": i_cell.astype(np.float32),
            "state": state.astype(np.float32),
        }
        if spec.kind is ArrayKind.ONE_T_ONE_R:
            waveforms["v_gate_v"] = np.stack([v(n.wl(i, 0)) for i in range(spec.rows)])
        switched = states_after != xbar.states
        energy = update_report(
            element_energies(circuit, sim), int(program.targets.sum()),
            {f"{i}_{j}" for i, j in np.argwhere(switched)},
            {**spec.record(), "scheme": program.scheme.value,
             "direction": program.direction.value, "v_write_v": program.v_write_v,
             "pulse_width_s": program.pulse_width_s, "n_pulses": len(program.pulses())},
            latency_s=float(t_s[-1]))
        parse_s = time.perf_counter() - t2
    before = xbar.states.copy()
    if update_states:
        xbar.states = states_after.copy()
    return WriteResult(
        switched=(states_after != before).astype(np.int8), states_before=before,
        states_after=states_after, targets=program.targets.copy(),
        target_state=program.direction.target_state, i_cell_peak_a=abs_i.max(axis=-1),
        i_cell_mean_a=mean, thresholds=thresholds, dynamic=dyn,
        netlist_path=sim.netlist_path if workdir is not None else None,
        timings_s={"build_s": build_s, **times, "parse_s": parse_s}, waveforms=waveforms,
        energy=energy)


def _cell_current(cells, v_cell, state):
    """I = G(V, s) V per cell and time point, the current of models/mtj_stt.lib's branch."""
    return v_cell * mtj_conductance_s(v_cell, state, cells.r_p_ohm[..., None],
                                      cells.tmr0[..., None], cells.v_h_v[..., None])
