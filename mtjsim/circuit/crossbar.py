"""MTJ crossbar arrays (passive 0T1R and 1T1R) with periphery and wire parasitics.

Read topology (tests and users rely on it)::

    in_i ─Rdrv─ w{i}_0 ─Rw─ (i,0) ─Rw─ (i,1) ─ ... ─ (i,cols-1)        word line i (passive)
                             │
                            MTJ  t = word line, b = bit line
                             │
    bit line j: (0,j) ─Rw─ (1,j) ─ ... ─ (rows-1,j) ─Rw─ sense_j ─ virtual ground (or R_sense)

1T1R: the row line driven by the input is the source line ``sl{i}``; the word line ``w{i}``
drives the gates; cell (i,j) is  bit line j ─ MTJ(t) ─(b) drain ─ NMOS ─ source ─ sl{i}.
Every segment carries ``r_wire_ohm`` and ``c_wire_f`` (capacitance to ground at its far node).
With ``r_wire_ohm == 0`` the nodes of a line are merged (SPICE has no zero-ohm resistor).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

import numpy as np

from mtjsim.circuit.elements import (
    Capacitor, Circuit, Comparator, Group, Mosfet, Resistor, SubcktInstance, TransResistance,
    VSource,
)
from mtjsim.devices.mosfet import NMOSParams
from mtjsim.devices.mtj import MTJParams
from mtjsim.devices.variation import CellDevices, Variation
from mtjsim.validation import check_int, check_range

MAX_DIM = 1024


class ArrayKind(enum.Enum):
    PASSIVE = "passive"
    ONE_T_ONE_R = "1t1r"


class SenseKind(enum.Enum):
    VIRTUAL_GROUND = "tia"      # ideal transimpedance amplifier holding the bit line at 0 V
    RESISTOR = "resistor"       # sense resistor to ground; its voltage feeds the comparator


@dataclass(frozen=True)
class ArraySpec:
    """An array design and its periphery (no state: states live in ``Crossbar``)."""

    kind: ArrayKind = ArrayKind.PASSIVE
    rows: int = 16
    cols: int = 16
    device: MTJParams = field(default_factory=MTJParams)
    r_wire_ohm: float = 1.0          # per cell segment, word/bit/source lines alike
    c_wire_f: float = 0.1e-15        # per cell segment, to ground
    r_driver_ohm: float = 20.0       # output resistance of every line driver
    sense: SenseKind = SenseKind.VIRTUAL_GROUND
    r_sense_ohm: float = 100.0       # only for SenseKind.RESISTOR
    r_tia_ohm: float = 10e3          # transimpedance feeding the comparator (virtual ground)
    v_dd_v: float = 1.0              # comparator output swing
    v_gate_v: float = 1.2            # 1T1R word-line (gate) voltage of a selected row
    transistor: NMOSParams = field(default_factory=NMOSParams)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ArrayKind):
            raise ValueError(f"kind={self.kind!r}: must be one of {[k.value for k in ArrayKind]}")
        if not isinstance(self.sense, SenseKind):
            raise ValueError(f"sense={self.sense!r}: must be one of {[k.value for k in SenseKind]}")
        check_int("rows", self.rows, lo=1, hi=MAX_DIM)
        check_int("cols", self.cols, lo=1, hi=MAX_DIM)
        check_range("r_wire_ohm", self.r_wire_ohm, lo=0, hi=1e6, typical="0.1 to 10")
        check_range("c_wire_f", self.c_wire_f, lo=0, hi=1e-9, typical="0.01e-15 to 1e-15")
        check_range("r_driver_ohm", self.r_driver_ohm, lo=0, hi=1e9, typical="10 to 1000")
        check_range("r_sense_ohm", self.r_sense_ohm, lo=0, lo_open=True, hi=1e9,
                    typical="10 to 1000")
        check_range("r_tia_ohm", self.r_tia_ohm, lo=0, lo_open=True, hi=1e12, typical="1e3 to 1e5")
        check_range("v_dd_v", self.v_dd_v, lo=0, lo_open=True, hi=10, typical="0.8 to 1.2")
        check_range("v_gate_v", self.v_gate_v, lo=0, hi=5, typical="0.8 to 1.5")

    def replace(self, **changes) -> "ArraySpec":
        return dataclasses.replace(self, **changes)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def record(self) -> dict:
        """The design as plain data (with the device's derived figures), for run records."""
        passive = self.kind is ArrayKind.PASSIVE
        return {
            "array": self.kind.value, "rows": self.rows, "cols": self.cols,
            "r_wire_ohm": self.r_wire_ohm, "c_wire_f": self.c_wire_f,
            "r_driver_ohm": self.r_driver_ohm, "sense": self.sense.value,
            "r_sense_ohm": self.r_sense_ohm if self.sense is SenseKind.RESISTOR else 0.0,
            "r_tia_ohm": self.r_tia_ohm, "v_gate_v": self.v_gate_v,
            "device": {**vars(self.device), **self.device.summary()},
            "transistor": None if passive else vars(self.transistor),
        }


@dataclass
class Crossbar:
    """An array design with its current magnetic states (0 = P, 1 = AP) and per-cell devices
    (drawn from ``variation`` and ``device_seed`` unless given)."""

    spec: ArraySpec
    states: np.ndarray
    variation: Variation = field(default_factory=Variation)
    device_seed: int = 0
    cells: CellDevices | None = None

    def __post_init__(self) -> None:
        states = np.asarray(self.states)
        if states.shape != self.spec.shape:
            raise ValueError(f"states shape {states.shape}: must be (rows, cols) = {self.spec.shape}")
        if not np.isin(states, (0, 1)).all():
            raise ValueError("states: every entry must be 0 (P) or 1 (AP)")
        self.states = states.astype(np.int8)
        if self.cells is None:
            self.cells = CellDevices.sample(self.spec.device, self.spec.shape, self.variation,
                                            self.device_seed)

    @classmethod
    def random(cls, spec: ArraySpec, seed: int, p_ap: float = 0.5, **kw) -> "Crossbar":
        """Random states from ``seed`` (fraction ``p_ap`` in AP)."""
        rng = np.random.default_rng(seed)
        return cls(spec, (rng.random(spec.shape) < p_ap).astype(np.int8), **kw)


# --- node names -----------------------------------------------------------------------------
class Nodes:
    """Node names of an array. Position 0 of a row line is the driver output; cell (i, j) sits
    at position j+1. Position k of bit line j is cell (k, j); position rows is the sense node."""

    def __init__(self, spec: ArraySpec):
        self.merge = spec.r_wire_ohm == 0
        self.rows, self.cols = spec.rows, spec.cols

    def _line(self, prefix: str, line: int, pos: int) -> str:
        return f"{prefix}{line}" if self.merge else f"{prefix}{line}_{pos}"

    def wl(self, i: int, pos: int) -> str:
        return self._line("w", i, pos)

    def sl(self, i: int, pos: int) -> str:
        return self._line("sl", i, pos)

    def bl(self, j: int, pos: int) -> str:
        return self._line("b", j, pos)

    def drain(self, i: int, j: int) -> str:
        return f"d{i}_{j}"

    def sense(self, j: int) -> str:
        return self.bl(j, self.rows)


def _row_line(c: Circuit, spec: ArraySpec, prefix: str, node, i: int, src: str, v_pwl) -> None:
    """Driver (source + output resistance) and the wire segments of one row line.
    A NaN voltage leaves the line floating (driver in high impedance)."""
    first = node(i, 0)
    v_dc, pwl = v_pwl
    if np.isnan(v_dc):
        pass
    elif spec.r_driver_ohm > 0:
        c.add(VSource(f"{src}{i}", f"{src}{i}", "0", v_dc, pwl))
        c.add(Resistor(f"drv{src}{i}", f"{src}{i}", first, spec.r_driver_ohm, Group.PERIPHERY))
    else:
        c.add(VSource(f"{src}{i}", first, "0", v_dc, pwl))
    for pos in range(spec.cols):
        a, b = node(i, pos), node(i, pos + 1)
        if spec.r_wire_ohm > 0:
            c.add(Resistor(f"{prefix}{i}_{pos}", a, b, spec.r_wire_ohm))
        if spec.c_wire_f > 0:
            c.add(Capacitor(f"{prefix}{i}_{pos}", b, "0", spec.c_wire_f))


def _bit_lines(c: Circuit, spec: ArraySpec, n: Nodes) -> None:
    for j in range(spec.cols):
        for pos in range(spec.rows):
            a, b = n.bl(j, pos), n.bl(j, pos + 1)
            if spec.r_wire_ohm > 0:
                c.add(Resistor(f"b{j}_{pos}", a, b, spec.r_wire_ohm))
            if spec.c_wire_f > 0:
                c.add(Capacitor(f"b{j}_{pos}", b, "0", spec.c_wire_f))


def sense_node_for_comparator(spec: ArraySpec, j: int) -> str:
    return f"tia{j}" if spec.sense is SenseKind.VIRTUAL_GROUND else f"sr{j}"


def _sense(c: Circuit, spec: ArraySpec, n: Nodes, v_ref) -> None:
    """Virtual ground (0 V source = ideal TIA input) or a sense resistor, then a comparator.
    ``Vsns{j}`` measures the bit-line current, positive into the sense."""
    c.add(VSource("ref", "vref", "0", *v_ref))
    for j in range(spec.cols):
        if spec.sense is SenseKind.VIRTUAL_GROUND:
            c.add(VSource(f"sns{j}", n.sense(j), "0", 0.0))
            # Output shown non-inverted (V = R_tia * I) so it compares directly with vref.
            c.add(TransResistance(f"tia{j}", f"tia{j}", "0", f"sns{j}", spec.r_tia_ohm))
        else:
            c.add(VSource(f"sns{j}", n.sense(j), f"sr{j}", 0.0))
            c.add(Resistor(f"sns{j}", f"sr{j}", "0", spec.r_sense_ohm, Group.PERIPHERY))
        c.add(Comparator(f"cmp{j}", f"cmp{j}", sense_node_for_comparator(spec, j), "vref",
                         spec.v_dd_v, spec.v_dd_v * 1e-3))


def mtj_static(name: str, t: str, b: str, cells: CellDevices, i: int, j: int, state) -> SubcktInstance:
    return SubcktInstance(name, (t, b), "mtj_static", (
        ("rp", cells.r_p_ohm[i, j]), ("tmr0", cells.tmr0[i, j]), ("vh", cells.v_h_v[i, j]),
        ("s", float(state))))


def _array_core(c: Circuit, xbar: Crossbar, n: Nodes, row_sources, gate_sources, mtj) -> None:
    """Row (and 1T1R gate) lines with their drivers, bit-line wires and the cells."""
    spec = xbar.spec
    passive = spec.kind is ArrayKind.PASSIVE
    for i in range(spec.rows):
        _row_line(c, spec, "w" if passive else "sl", n.wl if passive else n.sl, i, "in",
                  row_sources[i])
    if not passive:
        for i in range(spec.rows):
            g = gate_sources[i] if gate_sources is not None else (spec.v_gate_v, None)
            _row_line(c, spec, "w", n.wl, i, "g", g)
    _bit_lines(c, spec, n)
    tr = spec.transistor
    for i in range(spec.rows):
        for j in range(spec.cols):
            if passive:
                c.add(mtj(f"{i}_{j}", n.wl(i, j + 1), n.bl(j, i), xbar.cells, i, j,
                          xbar.states[i, j]))
            else:
                c.add(mtj(f"{i}_{j}", n.bl(j, i), n.drain(i, j), xbar.cells, i, j,
                          xbar.states[i, j]))
                c.add(Mosfet(f"{i}_{j}", n.drain(i, j), n.wl(i, j + 1), n.sl(i, j + 1), "0",
                             tr.model, tr.w_m, tr.l_m))


def build_read_circuit(xbar: Crossbar, row_sources, v_ref, *, mtj=mtj_static,
                       gate_sources=None, title: str = "") -> Circuit:
    """The read circuit. ``row_sources[i]`` and ``v_ref`` are ``(dc_v, pwl_or_None)`` pairs
    for the row drivers and the comparator reference; ``gate_sources[i]`` for 1T1R gates
    (default: every gate at ``spec.v_gate_v``). ``mtj`` makes each cell's MTJ instance."""
    spec = xbar.spec
    n = Nodes(spec)
    c = Circuit(title or f"mtjsim {spec.kind.value} read {spec.rows}x{spec.cols}")
    _array_core(c, xbar, n, row_sources, gate_sources, mtj)
    _sense(c, spec, n, v_ref)
    return c


def build_write_circuit(xbar: Crossbar, row_sources, col_sources, gate_sources, mtj,
                        title: str = "") -> Circuit:
    """The write circuit: every line driven (``(dc_v, pwl)`` pairs per row, column and, for
    1T1R, gate line). Bit line j is driven at its bottom end, where the read has its sense:
    driver, output resistance, one segment to cell (rows-1, j). ``mtj(name, t, b, cells, i, j,
    state)`` makes each cell's MTJ instance (dynamic where the cell may switch)."""
    spec = xbar.spec
    n = Nodes(spec)
    c = Circuit(title or f"mtjsim {spec.kind.value} write {spec.rows}x{spec.cols}")
    _array_core(c, xbar, n, row_sources, gate_sources, mtj)
    for j in range(spec.cols):
        v_dc, pwl = col_sources[j]
        if spec.r_driver_ohm > 0:
            c.add(VSource(f"col{j}", f"col{j}", "0", v_dc, pwl))
            c.add(Resistor(f"drvcol{j}", f"col{j}", n.sense(j), spec.r_driver_ohm,
                           Group.PERIPHERY))
        else:
            c.add(VSource(f"col{j}", n.sense(j), "0", v_dc, pwl))
    return c
