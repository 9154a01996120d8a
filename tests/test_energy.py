"""Energy from solved waveforms, against hand calculations and conservation."""

import numpy as np
import pytest

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.circuit.elements import Circuit, Resistor, TranAnalysis, VSource
from mtjsim.devices.mtj import MTJParams
from mtjsim.energy.accounting import element_energies
from mtjsim.engines.ngspice import Backend
from mtjsim.ops.common import netlist_dir, simulate
from mtjsim.ops.read import ReadSettings, prepare_read, read
from mtjsim.ops.write import Direction, PulseProgram, WriteScheme, build

pytestmark = pytest.mark.ngspice


def test_resistor_rectangular_pulse_energy_is_v2_over_r_times_t(tmp_path):
    v, r, t_flat, t_edge = 0.8, 2e3, 10e-9, 1e-12
    c = Circuit("pulse")
    c.add(VSource("p", "a", "0", 0.0, ((0, 0), (1e-9, 0), (1e-9 + t_edge, v),
                                       (1e-9 + t_edge + t_flat, v),
                                       (1e-9 + 2 * t_edge + t_flat, 0))))
    c.add(Resistor("load", "a", "0", r))
    sim, _ = simulate(c, TranAnalysis(1e-10, 15e-9, 1e-10), tmp_path, "p.cir",
                      Backend.SUBPROCESS)
    e = element_energies(c, sim)
    assert e.delivered_j == pytest.approx(v * v / r * t_flat, rel=0.01)
    assert e.dissipated_j == pytest.approx(e.delivered_j, rel=1e-6)


def _random_array(kind, seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(2, 6, size=2)
    spec = ArraySpec(kind=kind, rows=int(n), cols=int(m), r_wire_ohm=float(rng.uniform(0.5, 20)),
                     c_wire_f=float(rng.uniform(0.5e-15, 20e-15)),
                     r_driver_ohm=float(rng.uniform(5, 200)))
    return Crossbar.random(spec, seed), rng


@pytest.mark.parametrize("kind", list(ArrayKind))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_conservation_read_windows_with_wire_capacitance(kind, seed, tmp_path):
    """Delivered = dissipated + change of stored energy, over windows that start and end
    while capacitors are charged (a window inside a batch transient)."""
    xb, rng = _random_array(kind, seed)
    prep = prepare_read(xb, rng.uniform(0, 0.3, (3, xb.spec.rows)),
                        ReadSettings(slot_s=2e-9, edge_s=0.5e-9))
    sim, _ = simulate(prep.circuit, prep.analysis, tmp_path, "r.cir", Backend.SUBPROCESS)
    for t0, t1 in [(0, 6e-9), (2e-9, 2.3e-9), (1.9e-9, 4.2e-9)]:
        e = element_energies(prep.circuit, sim, t0, t1)
        assert abs(e.balance_error) < 0.01, (t0, t1, e)
    e = element_energies(prep.circuit, sim, 2e-9, 2.3e-9)    # during an edge: caps charge
    assert abs(e.stored_change_j) > 1e-4 * abs(e.delivered_j)


@pytest.mark.parametrize("kind", list(ArrayKind))
def test_conservation_during_a_write(kind):
    xb, _ = _random_array(kind, 7)
    scheme = WriteScheme.V_HALF if kind is ArrayKind.PASSIVE else WriteScheme.ONE_T_ONE_R
    prog = PulseProgram.single(xb.spec.shape, 1, 1, scheme, Direction.SET,
                               v_write_v=0.6 if kind is ArrayKind.PASSIVE else 1.2,
                               pulse_width_s=5e-9)
    circuit, analysis, _, _ = build(xb, prog, seed=3)
    with netlist_dir(None) as folder:
        sim, _ = simulate(circuit, analysis, folder, "w.cir", Backend.SUBPROCESS)
    e = element_energies(circuit, sim)
    assert abs(e.balance_error) < 0.01
    assert e.by_group_j["array"] > 0
    if kind is ArrayKind.ONE_T_ONE_R:
        assert e.by_group_j["access"] > 0


def test_2x2_read_breakdown_matches_hand_calculation():
    """2x2 passive, no wire resistance: each row is its driver in series with two MTJs in
    parallel to the 0 V bit lines. Linear devices (V_h huge), one cell AP."""
    dev = MTJParams(v_h_v=1e3)
    rp, rap = dev.r_p_ohm, dev.r_p_ohm * (1 + dev.tmr0)
    rd, slot = 50.0, 20e-9
    spec = ArraySpec(rows=2, cols=2, device=dev, r_wire_ohm=0.0, c_wire_f=0.0, r_driver_ohm=rd)
    states = np.array([[0, 1], [0, 0]])
    v = np.array([0.2, 0.1])
    res = read(Crossbar(spec, states), v, settings=ReadSettings(transient=True, slot_s=slot))
    r_cells = [1 / (1 / rp + 1 / rap), rp / 2]
    i_row = v / (rd + np.array(r_cells))
    array_j = float(np.sum(i_row ** 2 * r_cells)) * slot
    periphery_j = float(np.sum(i_row ** 2 * rd)) * slot
    e = res.energy
    assert e.breakdown["array_j"] == pytest.approx(array_j, rel=1e-4)
    assert e.breakdown["periphery_j"] == pytest.approx(periphery_j, rel=1e-4)
    assert e.breakdown["wires_j"] == 0 and e.breakdown["access_j"] == 0
    assert e.energy_j == pytest.approx(array_j + periphery_j, rel=1e-4)
    assert e.ops == 8
    assert e.tops_per_w == pytest.approx(8 / (array_j + periphery_j) / 1e12, rel=1e-4)


def _ff_energy_per_op(**kw):
    settings = kw.pop("settings", ReadSettings())
    spec = ArraySpec(rows=8, cols=8, **kw)
    xb = Crossbar.random(spec, seed=5)
    x = np.random.default_rng(2).choice([0.0, 0.1], size=(4, 8))
    return read(xb, x, settings=settings).energy


def test_read_energy_scales_as_physics_says():
    base = _ff_energy_per_op(r_wire_ohm=1.0, c_wire_f=0.0).energy_per_op_j
    # higher junction resistance (RA x4): less current at the same voltage
    high_ra = _ff_energy_per_op(r_wire_ohm=1.0, c_wire_f=0.0,
                                device=MTJParams(ra_ohm_m2=20e-12)).energy_per_op_j
    assert high_ra < 0.3 * base
    # more wire resistance in series: less current, less energy
    assert _ff_energy_per_op(r_wire_ohm=100.0, c_wire_f=0.0).energy_per_op_j < base
    # wire capacitance: charging energy at every input edge
    assert _ff_energy_per_op(r_wire_ohm=1.0, c_wire_f=50e-15).energy_per_op_j > base


def test_doubling_pulse_width_doubles_the_static_part():
    s1 = ReadSettings(slot_s=20e-9, edge_s=1e-9)
    s2 = ReadSettings(slot_s=40e-9, edge_s=1e-9)
    e1 = _ff_energy_per_op(r_wire_ohm=1.0, c_wire_f=5e-15, settings=s1)
    e2 = _ff_energy_per_op(r_wire_ohm=1.0, c_wire_f=5e-15, settings=s2)
    # Static power of each vector: a one-slot transient at constant input is pure DC (no edge,
    # no charging), so its energy over the slot is DC power * slot.
    spec = ArraySpec(rows=8, cols=8, r_wire_ohm=1.0, c_wire_f=5e-15)
    xb = Crossbar.random(spec, seed=5)
    x = np.random.default_rng(2).choice([0.0, 0.1], size=(4, 8))
    p_static = sum(read(xb, vec, settings=ReadSettings(transient=True, slot_s=10e-9))
                   .energy.energy_j / 10e-9 for vec in x)
    extra = e2.energy_j - e1.energy_j
    assert extra == pytest.approx(p_static * 20e-9, rel=0.01)
