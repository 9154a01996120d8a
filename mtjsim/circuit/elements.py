"""A small, simulator-neutral description of a circuit: elements and analyses as plain data.

Builders (crossbar.py) return a ``Circuit``; only ``netlist.py`` turns it into SPICE text.
Node "0" is ground. Values are SI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Group(enum.Enum):
    """Where an element's energy is booked (energy reports)."""

    ARRAY = "array"            # MTJs
    WIRES = "wires"            # word/bit/source-line segments and their capacitance
    ACCESS = "access"          # 1T1R access transistors
    PERIPHERY = "periphery"    # drivers (output resistance), sense, comparators


@dataclass(frozen=True, slots=True)
class Resistor:
    name: str
    n1: str
    n2: str
    ohm: float
    group: Group = Group.WIRES


@dataclass(frozen=True, slots=True)
class Capacitor:
    name: str
    n1: str
    n2: str
    farad: float
    group: Group = Group.WIRES


@dataclass(frozen=True, slots=True)
class VSource:
    """Independent voltage source; current through it is reported + -> - (SPICE convention).

    ``pwl`` is a tuple of (time_s, volts) pairs; when given it overrides ``dc_v`` in transients.
    """

    name: str
    np: str
    nn: str
    dc_v: float = 0.0
    pwl: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True, slots=True)
class TransResistance:
    """Current-controlled voltage source: V(np, nn) = ohm * I(sense_source). An ideal TIA."""

    name: str
    np: str
    nn: str
    sense_source: str
    ohm: float


@dataclass(frozen=True, slots=True)
class Comparator:
    """Behavioural comparator: V(out) = vdd * (1 + tanh((V(inp) - V(ref)) / v_width)) / 2."""

    name: str
    out: str
    inp: str
    ref: str
    vdd_v: float
    v_width_v: float


@dataclass(frozen=True, slots=True)
class SubcktInstance:
    name: str
    nodes: tuple[str, ...]
    subckt: str
    params: tuple[tuple[str, float], ...]
    group: Group = Group.ARRAY


@dataclass(frozen=True, slots=True)
class Mosfet:
    name: str
    d: str
    g: str
    s: str
    b: str
    model: str
    w_m: float
    l_m: float
    group: Group = Group.ACCESS


Element = Resistor | Capacitor | VSource | TransResistance | Comparator | SubcktInstance | Mosfet


@dataclass(frozen=True)
class OpAnalysis:
    """DC operating point."""


@dataclass(frozen=True)
class TranAnalysis:
    step_s: float
    stop_s: float
    max_step_s: float | None = None


Analysis = OpAnalysis | TranAnalysis


@dataclass
class Circuit:
    """Elements, options and saved vectors. The model files to include follow from the
    subcircuits and device models the elements use (see netlist.MODEL_FILES)."""

    title: str
    elements: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    # True: save only what results and energy need (every external node voltage, every
    # voltage-source current and the magnetic state of switching MTJs), not the internal
    # progress nodes of every device. False: ngspice's default (everything).
    save_external_only: bool = True

    def add(self, element) -> None:
        self.elements.append(element)
