"""Energy of every element of a solved circuit over a time window, from the waveforms.

* sources: delivered ``E = -integral V(np,nn) * I(V) dt`` (SPICE reports the current
  flowing into the + terminal through the source, so a source delivering power has I < 0);
* resistors: ``integral (V1 - V2)^2 / R dt``; MTJs: ``integral V * G(V, s) * V dt`` with the
  state s they had at each time; access transistors: ``integral V_ds * I_d dt`` where I_d is
  the current of the MTJ on the drain (the drain node joins only the two);
* capacitors: the change of stored energy ``C/2 (V_end^2 - V_start^2)``.

Over any window, delivered = dissipated + stored change (the conservation the tests check).
Ideal elements (the 0 V sense sources, the TIA's transresistance, the comparator) take no
energy: the amplifiers' own supplies are not modelled (docs/energy.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtjsim.circuit.elements import (
    Capacitor, Circuit, Group, Mosfet, Resistor, SubcktInstance, VSource,
)
from mtjsim.devices.mtj import mtj_conductance_s
from mtjsim.engines.ngspice import SimResult

MTJ_SUBCKTS = ("mtj_static", "mtj_stt")


@dataclass
class Energies:
    """Energies over one window, joules."""

    t_start_s: float
    t_end_s: float
    delivered_j: float                       # by all sources
    by_group_j: dict                         # dissipated per Group value (array, wires, ...)
    stored_change_j: float                   # capacitors, end minus start
    by_source_j: dict = field(default_factory=dict)
    by_mtj_j: dict = field(default_factory=dict)   # instance name -> dissipated energy

    @property
    def dissipated_j(self) -> float:
        return float(sum(self.by_group_j.values()))

    @property
    def balance_error(self) -> float:
        """(delivered - dissipated - stored change) / delivered."""
        return (self.delivered_j - self.dissipated_j - self.stored_change_j) / self.delivered_j


class _Window:
    """Resample vectors onto the solver's time points inside [t0, t1] plus both ends."""

    def __init__(self, t: np.ndarray, t0: float, t1: float):
        inner = t[(t > t0) & (t < t1)]
        self.t = np.concatenate([[t0], inner, [t1]])
        self._src = t

    def __call__(self, vec: np.ndarray) -> np.ndarray:
        return np.interp(self.t, self._src, vec)

    def integral(self, power: np.ndarray) -> np.ndarray:
        return np.trapezoid(power, self.t, axis=-1)


def element_energies(circuit: Circuit, sim: SimResult, t_start_s: float | None = None,
                     t_end_s: float | None = None) -> Energies:
    """Energies of all elements of ``circuit`` (as solved in ``sim``) over the window."""
    t = sim.time_s
    t0 = t[0] if t_start_s is None else t_start_s
    t1 = t[-1] if t_end_s is None else t_end_s
    w = _Window(t, t0, t1)
    cache: dict[str, np.ndarray] = {}

    def v(node: str) -> np.ndarray:
        if node == "0":
            return np.zeros_like(w.t)
        if node not in cache:
            cache[node] = w(sim.v(node))
        return cache[node]

    by_group = {g.value: 0.0 for g in Group}
    by_source, by_mtj = {}, {}
    stored = 0.0
    delivered = 0.0
    mtj_current_into: dict[str, np.ndarray] = {}     # node -> current an MTJ drives into it
    mosfets = []
    for e in circuit.elements:
        match e:
            case VSource():
                energy = -float(w.integral((v(e.np) - v(e.nn)) * w(sim.i(f"V{e.name}"))))
                by_source[e.name] = energy
                delivered += energy
            case Resistor():
                dv = v(e.n1) - v(e.n2)
                by_group[e.group.value] += float(w.integral(dv * dv / e.ohm))
            case Capacitor():
                dv = v(e.n1) - v(e.n2)
                stored += 0.5 * e.farad * float(dv[-1] ** 2 - dv[0] ** 2)
            case SubcktInstance() if e.subckt in MTJ_SUBCKTS:
                p = dict(e.params)
                s = w(sim.v(f"X{e.name}.s")) if e.subckt == "mtj_stt" else p["s"]
                vt, vb = e.nodes
                vv = v(vt) - v(vb)
                i = vv * mtj_conductance_s(vv, s, p["rp"], p["tmr0"], p["vh"])
                energy = float(w.integral(vv * i))
                by_mtj[e.name] = energy
                by_group[e.group.value] += energy
                mtj_current_into[vb] = mtj_current_into.get(vb, 0) + i
                mtj_current_into[vt] = mtj_current_into.get(vt, 0) - i
            case Mosfet():
                mosfets.append(e)
    for m in mosfets:
        # KCL at the drain: the MTJ's current into it leaves through the transistor.
        i_d = mtj_current_into[m.d]
        by_group[m.group.value] += float(w.integral((v(m.d) - v(m.s)) * i_d))
    return Energies(t0, t1, delivered, by_group, stored, by_source, by_mtj)
