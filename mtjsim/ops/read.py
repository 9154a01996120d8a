"""Read (feedforward): drive the rows with input voltages, sense the column currents.

One input vector is a DC operating point. A batch is ONE transient analysis with a
piecewise-linear input per row, one vector per time slot, sampled at the end of each slot:
Debian's ngspice 39 redoes its (slow, KLU-less) sparse reordering for every analysis, so a
batch costs about one solve, not one per vector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtjsim.circuit.crossbar import (
    ArrayKind, Crossbar, Nodes, SenseKind, build_read_circuit, sense_node_for_comparator,
)
from mtjsim.circuit.elements import OpAnalysis, TranAnalysis
from mtjsim.energy.accounting import element_energies
from mtjsim.energy.report import feedforward_report
from mtjsim.engines import Engine
from mtjsim.engines.ngspice import Backend
from mtjsim.ops.common import ACCURATE_OPTIONS, netlist_dir, simulate
from mtjsim.validation import check_range

DEFAULT_V_READ_V = 0.1


@dataclass
class ReadResult:
    i_out_a: np.ndarray          # (batch, cols), positive into the sense
    v_in_v: np.ndarray           # (batch, rows)
    r_cell_ohm: np.ndarray       # (rows, cols), secant V/I of each MTJ at the first vector
    v_cell_v: np.ndarray         # (rows, cols), voltage across each MTJ at the first vector
    decision: np.ndarray         # (batch, cols) comparator outputs, 1 if I > i_ref
    i_ref_a: np.ndarray          # (batch,) comparator reference current
    states: np.ndarray
    netlist_path: Path | None
    timings_s: dict = field(default_factory=dict)
    waveforms: dict | None = None   # transient reads: time_s, v_row_v (rows,T), i_out_a (cols,T)
    energy: object | None = None    # transient reads: mtjsim.energy.report.EnergyReport


@dataclass(frozen=True)
class ReadSettings:
    transient: bool = False         # a single vector as a transient (waveforms) instead of .op
    slot_s: float = 20e-9           # time per input vector in a transient read
    edge_s: float = 1e-9            # rise/fall time between vectors
    # fast engine only (engine=Engine.FAST); ngspice ignores these:
    fast_mode: str = "exact"        # "exact": refined to 1e-10; "linear": i_out = M v only;
                                    # "checked": M v, exact refinement of the vectors whose
                                    # estimated linearization error exceeds fast_tol
    fast_bias_v: float | None = None   # linearize the devices at this read bias (e.g. the
                                       # read voltage); None: zero bias
    fast_tol: float = 1e-3          # "checked": relative error estimate that triggers a refine
    fast_solver: str = "lu"         # exact reads: "lu" (sparse LU, low-rank flips) or "lines"
                                    # (warm-started line relaxation: passive arrays with wire
                                    # resistance, up to 8 vectors; others fall back to "lu")

    def __post_init__(self):
        if self.fast_mode not in ("exact", "linear", "checked"):
            raise ValueError(f"fast_mode={self.fast_mode!r}: must be 'exact', 'linear' or "
                             "'checked'")
        if self.fast_solver not in ("lu", "lines"):
            raise ValueError(f"fast_solver={self.fast_solver!r}: must be 'lu' or 'lines'")
        if self.fast_bias_v is not None:
            check_range("fast_bias_v", self.fast_bias_v, lo=0, hi=5, typical="0.05 to 0.2")
        check_range("fast_tol", self.fast_tol, lo=0, lo_open=True, hi=1,
                    typical="1e-4 to 1e-2")
        check_range("slot_s", self.slot_s, lo=0, lo_open=True, hi=1e-3, typical="5e-9 to 100e-9")
        check_range("edge_s", self.edge_s, lo=0, lo_open=True, hi=self.slot_s / 2,
                    hi_open=True, typical="0.1e-9 to 2e-9")


def as_input_batch(inputs_v, rows: int) -> np.ndarray:
    """Validate inputs: (rows,) or (batch, rows) volts within -5..5 V. NaN leaves a row
    floating (driver in high impedance); a floating row must float in every vector."""
    if inputs_v is None:
        return np.full((1, rows), DEFAULT_V_READ_V)
    v = np.asarray(inputs_v, dtype=float)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != rows:
        raise ValueError(f"inputs_v shape {np.shape(inputs_v)}: must be (rows,) or (batch, rows) "
                         f"with rows = {rows}")
    if v.shape[0] == 0:
        raise ValueError("inputs_v: batch must hold at least one input vector")
    driven = ~np.isnan(v)
    if (driven.any(axis=0) != driven.all(axis=0)).any():
        raise ValueError("inputs_v: a floating row (NaN) must be NaN in every input vector")
    if not driven.any():
        raise ValueError("inputs_v: at least one row must be driven (all are NaN)")
    if np.isinf(v).any() or np.abs(v[driven]).max() > 5:
        raise ValueError("inputs_v: every voltage must be within -5 V to 5 V (NaN = floating)")
    return v


def reference_current_a(xbar: Crossbar, v_in: np.ndarray) -> np.ndarray:
    """Comparator reference per vector: the ideal column current (no wires) if every cell sat
    halfway between P and AP at zero bias: sum_i V_i * (G_P + G_AP0) / 2, with the access
    transistor's on-resistance in series for 1T1R."""
    spec = xbar.spec
    d = spec.device
    r_on = spec.transistor.r_on_ohm(spec.v_gate_v) if spec.kind is ArrayKind.ONE_T_ONE_R else 0.0
    g_mid = 0.5 * (1 / (d.r_p_ohm + r_on) + 1 / (d.r_ap0_ohm + r_on))
    return np.nansum(v_in, axis=1) * g_mid


def pwl_slots(values: np.ndarray, slot_s: float, edge_s: float):
    """A PWL holding values[k] during slot k, with linear edges of edge_s between slots."""
    pts = [(0.0, float(values[0]))]
    for k in range(1, len(values)):
        t = k * slot_s
        pts += [(t, float(values[k - 1])), (t + edge_s, float(values[k]))]
    return tuple(pts)


def resolve_reference(xbar: Crossbar, v_in: np.ndarray, i_ref_a=None) -> np.ndarray:
    """The comparator reference per vector: the user's, or reference_current_a."""
    if i_ref_a is None:
        return reference_current_a(xbar, v_in)
    return np.broadcast_to(np.asarray(i_ref_a, dtype=float), (len(v_in),)).copy()


@dataclass
class PreparedRead:
    """The read circuit and its analysis, before ngspice runs it."""

    circuit: object
    analysis: object
    v_in: np.ndarray
    i_ref_a: np.ndarray
    transient: bool


def prepare_read(xbar: Crossbar, inputs_v=None, settings: ReadSettings = ReadSettings(),
                 i_ref_a=None) -> PreparedRead:
    spec = xbar.spec
    v_in = as_input_batch(inputs_v, spec.rows)
    batch = v_in.shape[0]
    i_ref = resolve_reference(xbar, v_in, i_ref_a)
    r_cmp = spec.r_tia_ohm if spec.sense is SenseKind.VIRTUAL_GROUND else spec.r_sense_ohm
    v_ref = i_ref * r_cmp
    transient = settings.transient or batch > 1
    if transient:
        rows = [(v_in[0, i], pwl_slots(v_in[:, i], settings.slot_s, settings.edge_s))
                for i in range(spec.rows)]
        ref = (v_ref[0], pwl_slots(v_ref, settings.slot_s, settings.edge_s))
        analysis = TranAnalysis(step_s=settings.edge_s, stop_s=batch * settings.slot_s,
                                max_step_s=settings.slot_s / 4)
    else:
        rows = [(v_in[0, i], None) for i in range(spec.rows)]
        ref = (v_ref[0], None)
        analysis = OpAnalysis()
    circuit = build_read_circuit(xbar, rows, ref)
    circuit.options.update(ACCURATE_OPTIONS)
    return PreparedRead(circuit, analysis, v_in, i_ref, transient)


def read(xbar: Crossbar, inputs_v=None, *, settings: ReadSettings = ReadSettings(),
         i_ref_a=None, workdir: Path | None = None, netlist_name: str = "read.cir",
         backend: Backend = Backend.SUBPROCESS, engine: Engine = Engine.NGSPICE) -> ReadResult:
    """Solve a read of ``xbar`` for each input vector.

    ``inputs_v``: (rows,) or (batch, rows) volts on the row drivers (default 0.1 V on every
    row). ``workdir``: where the netlist is written and kept (default: a temporary folder).
    ``engine``: ngspice (the reference) or the fast nodal engine; same inputs, same result.
    """
    if Engine(engine) is Engine.FAST:
        from mtjsim.ops.fast_ops import fast_read
        return fast_read(xbar, inputs_v, settings=settings, i_ref_a=i_ref_a)
    spec = xbar.spec
    t0 = time.perf_counter()
    prep = prepare_read(xbar, inputs_v, settings, i_ref_a)
    v_in, i_ref, transient, batch = prep.v_in, prep.i_ref_a, prep.transient, len(prep.v_in)
    build_s = time.perf_counter() - t0

    with netlist_dir(workdir) as folder:
        sim, times = simulate(prep.circuit, prep.analysis, folder, netlist_name, backend)
        t2 = time.perf_counter()
        if transient:
            t_sample = (np.arange(batch) + 1) * settings.slot_s

            def at(vec):  # value at the end of each slot
                return np.interp(t_sample, sim.time_s, vec)
        else:
            def at(vec):
                return vec[:1]
        i_out = np.stack([at(sim.i(f"sns{j}")) for j in range(spec.cols)], axis=1)
        decision = np.stack([at(sim.v(f"cmp{j}")) > spec.v_dd_v / 2 for j in range(spec.cols)],
                            axis=1).astype(np.int8)
        v_cell = _cell_voltages(sim, xbar, at)
        r_cell = 1.0 / xbar.cells.conductance_s(v_cell, xbar.states)
        waveforms = energy = None
        if transient:
            n = Nodes(spec)
            row_node = n.wl if spec.kind is ArrayKind.PASSIVE else n.sl
            waveforms = {
                "time_s": sim.time_s,
                # row-line voltage at the driver output (after the driver's resistance)
                "v_row_v": np.stack([sim.v(row_node(i, 0)) for i in range(spec.rows)]),
                "i_out_a": np.stack([sim.i(f"sns{j}") for j in range(spec.cols)]),
                "v_sense_v": np.stack([sim.v(sense_node_for_comparator(spec, j))
                                       for j in range(spec.cols)]),
            }
            energies = element_energies(prep.circuit, sim, 0.0, batch * settings.slot_s)
            energy = feedforward_report(energies, spec.rows, spec.cols, batch, settings.slot_s, {
                **spec.record(), "v_in_mean_v": float(np.nanmean(v_in)), "slot_s": settings.slot_s,
                "edge_s": settings.edge_s})
        parse_s = time.perf_counter() - t2
    timings = {"build_s": build_s, **times, "parse_s": parse_s}
    return ReadResult(i_out_a=i_out, v_in_v=v_in, r_cell_ohm=r_cell, v_cell_v=v_cell,
                      decision=decision, i_ref_a=i_ref, states=xbar.states.copy(),
                      netlist_path=sim.netlist_path if workdir is not None else None,
                      timings_s=timings, waveforms=waveforms, energy=energy)


def _cell_voltages(sim, xbar: Crossbar, at) -> np.ndarray:
    """Voltage across each MTJ (t minus b) at the first sample."""
    spec = xbar.spec
    n = Nodes(spec)

    def v(node):
        return 0.0 if node == "0" else float(at(sim.v(node))[0])

    out = np.empty(spec.shape)
    for i in range(spec.rows):
        for j in range(spec.cols):
            if spec.kind is ArrayKind.PASSIVE:
                out[i, j] = v(n.wl(i, j + 1)) - v(n.bl(j, i))
            else:
                out[i, j] = v(n.bl(j, i)) - v(n.drain(i, j))
    return out
