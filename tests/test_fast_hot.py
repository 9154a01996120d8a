"""The batched 1T1R column-program write (hot-cell networks) against the full write network
and the pulse-by-pulse engine; ngspice comparisons are in test_validate.py."""

import numpy as np
import pytest

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.engines.fast_hot import HotColumnNetwork
from mtjsim.engines.fast_network import WriteNetwork
from mtjsim.engines.fast_write import RAMP_GRID, RAMP_SOLVES, quasi_static_write
from mtjsim.engines.fast_write_columns import ColumnProgramWrite
from mtjsim.ops.write import Direction, Parallelism, PulseProgram, WriteScheme, line_levels


def _column_pulse(n, r_w, direction, seed, r_driver=20.0, v=1.0):
    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=n, cols=n, r_wire_ohm=r_w,
                     r_driver_ohm=r_driver)
    xb = Crossbar.random(spec, seed)
    rng = np.random.default_rng(seed)
    t = np.zeros(spec.shape, bool)
    t[rng.choice(n, max(2, n // 4), replace=False), rng.integers(n)] = True
    prog = PulseProgram(WriteScheme.ONE_T_ONE_R, direction, t, v_write_v=v,
                        pulse_width_s=5e-9, v_gate_write_v=1.2, parallel=Parallelism.COLUMN)
    (sel_r, sel_c), = prog.pulses()
    return xb, t, line_levels(prog, spec.kind, sel_r, sel_c)


@pytest.mark.parametrize("n", [8, 24])
@pytest.mark.parametrize("r_w", [0.0, 2.0, 20.0])
@pytest.mark.parametrize("direction", [Direction.SET, Direction.RESET])
@pytest.mark.parametrize("r_driver", [0.0, 20.0])
def test_hot_network_matches_the_full_network(n, r_w, direction, r_driver):
    xb, hot_cells, levels = _column_pulse(n, r_w, direction, seed=n + int(r_w),
                                          r_driver=r_driver)
    full, hot = WriteNetwork(xb), HotColumnNetwork(xb)
    fracs = [0.5, 0.75, 1.0]
    for f, h in zip(fracs, hot.solve_fractions(xb.states, fracs, *levels)):
        e = full.solve(xb.states, *(f * np.asarray(lv) for lv in levels))
        i_hot = np.abs(e.i_cell_a[hot_cells]).max()
        # the hot cells: only the idle cells' nonlinearity is left out. Their channels are
        # linear at the lines' level, but the IR drop of the hot currents lowers their gate
        # overdrive (tens of mV at 20 ohm per segment against 0.2 V at half the gate
        # level): measured up to 6e-4 there, below 1e-4 at 2 ohm
        tol = 1e-3 if r_w > 2 else 1e-4
        assert np.abs(h.i_cell_a - e.i_cell_a)[hot_cells].max() <= tol * i_hot
        # idle cells carry microamps through linearized channels: a few percent at most
        # (1e-9 A floor, 1e-5 of a hot current: ideal lines and drivers stand in as
        # 1 milliohm here, merged nodes in the full network, whose idle cells then see 0 V)
        idle = ~hot_cells
        assert np.abs(h.i_cell_a - e.i_cell_a)[idle].max() <= (
            0.05 * np.abs(e.i_cell_a[idle]).max() + 1e-9)
        for key, p_full in e.power_w.items():
            assert h.power_w[key] == pytest.approx(p_full, rel=1e-3, abs=1e-3 * abs(
                e.power_w["delivered"])), key


def test_hot_network_refuses_a_row_pulse():
    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=6, cols=6)
    xb = Crossbar.random(spec, 1)
    t = np.zeros(spec.shape, bool)
    t[2, [1, 4]] = True                        # one gated row, two driven columns
    prog = PulseProgram(WriteScheme.ONE_T_ONE_R, Direction.SET, t, parallel=Parallelism.ROW)
    (sel_r, sel_c), = prog.pulses()
    hot = HotColumnNetwork(xb)
    assert hot.column_pulse(*line_levels(prog, spec.kind, sel_r, sel_c)) is None
    # and the write takes the pulse-by-pulse engine
    r = quasi_static_write(xb, prog, 0)
    assert "factorizations" in r.timings_s and "hot_solves" not in r.timings_s


@pytest.mark.parametrize("r_w", [1.0, 10.0])
@pytest.mark.parametrize("direction", [Direction.SET, Direction.RESET])
def test_batched_column_program_equals_pulse_by_pulse(r_w, direction):
    n = 16
    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=n, cols=n, r_wire_ohm=r_w)
    xb = Crossbar.random(spec, 4)
    rng = np.random.default_rng(5)
    t = (rng.random(spec.shape) < 0.3) & (xb.states == 1 - direction.target_state)
    v, v_gate = (0.9, 1.0) if direction is Direction.SET else (0.9, 1.3)
    prog = PulseProgram(WriteScheme.ONE_T_ONE_R, direction, t, v_write_v=v,
                        pulse_width_s=4e-9, v_gate_write_v=v_gate,
                        parallel=Parallelism.COLUMN)
    for seed in range(3):
        seq = quasi_static_write(xb, prog, seed, batched=False)
        bat = quasi_static_write(xb, prog, seed)
        assert "hot_solves" in bat.timings_s
        np.testing.assert_array_equal(bat.switched, seq.switched)
        assert 0 < seq.switched.sum() < t.sum()          # outcomes are not all the same
        # same solve points, same currents at the switching cells, same energy; a flip on
        # an edge is placed at a point of its grid, and the engines' currents differ by up
        # to 6e-4 (test above): enough to move it by one step now and then
        grid_step_s = prog.rise_s / (RAMP_SOLVES * (RAMP_GRID - 1))
        np.testing.assert_allclose(bat.waveforms["time_s"], seq.waveforms["time_s"],
                                   rtol=1e-5, atol=1.01 * grid_step_s)
        np.testing.assert_allclose(bat.i_cell_peak_a[t], seq.i_cell_peak_a[t], rtol=1e-3)
        # the means include the microamps through each cell while other pulses run (idle,
        # linearized: within a few percent), hence the wider tolerance
        np.testing.assert_allclose(bat.i_cell_mean_a[t], seq.i_cell_mean_a[t], rtol=5e-3)
        assert bat.energy.energy_j == pytest.approx(seq.energy.energy_j, rel=1e-3)
        np.testing.assert_array_equal(bat.waveforms["state"], seq.waveforms["state"])


@pytest.mark.parametrize("predict", [True, False])
def test_later_pulses_see_the_cells_earlier_pulses_flipped(predict, monkeypatch):
    # a program where every pulse gates the same rows: a flip in an early column changes
    # the idle shunts of every later pulse. The first round's crossings predict those
    # flips and the later pulses start again with them (one pass here); without the
    # prediction the first pass is stale and a second runs
    monkeypatch.setattr(ColumnProgramWrite, "predict", predict)
    n = 12
    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=n, cols=n, r_wire_ohm=10.0)
    xb = Crossbar(spec, np.zeros(spec.shape, dtype=np.int8))
    t = np.zeros(spec.shape, bool)
    t[[2, 5, 9], :] = True
    prog = PulseProgram(WriteScheme.ONE_T_ONE_R, Direction.SET, t, v_write_v=0.9,
                        pulse_width_s=4e-9, v_gate_write_v=1.0, parallel=Parallelism.COLUMN)
    bat = quasi_static_write(xb, prog, 1)
    seq = quasi_static_write(xb, prog, 1, batched=False)
    assert bat.switched.sum() > 0 and bat.timings_s["passes"] == (1 if predict else 2)
    np.testing.assert_array_equal(bat.switched, seq.switched)
    np.testing.assert_allclose(bat.i_cell_peak_a[t], seq.i_cell_peak_a[t], rtol=1e-3)


def test_too_resistive_lines_fall_back_to_the_full_network():
    # 200 ohm per segment: a bit line's path to its driver is no longer small against an
    # idle cell, the idle-line rounds do not converge, and the write takes the full network
    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=16, cols=16, r_wire_ohm=200.0)
    xb = Crossbar.random(spec, 4)
    t = (np.random.default_rng(5).random(spec.shape) < 0.3) & (xb.states == 0)
    prog = PulseProgram(WriteScheme.ONE_T_ONE_R, Direction.SET, t, v_write_v=0.9,
                        pulse_width_s=4e-9, v_gate_write_v=1.0, parallel=Parallelism.COLUMN)
    r = quasi_static_write(xb, prog, 1)
    assert "factorizations" in r.timings_s
