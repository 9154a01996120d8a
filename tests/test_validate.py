"""The fast engine against ngspice (the validation harness, shortened; full: mtjsim validate)."""

import numpy as np
import pytest

from mtjsim import validate
from mtjsim.circuit.crossbar import ArraySpec, Crossbar
from mtjsim.engines import Engine
from mtjsim.ops.write import Direction, PulseProgram, WriteScheme, write

pytestmark = pytest.mark.ngspice


def test_reads_agree_on_random_arrays_up_to_32x32():
    checks = validate.check_reads(sizes=(4, 16, 32), r_wires=(0.0, 1.0, 50.0), seed=3)
    assert len(checks) == 18
    bad = [c for c in checks if not c.ok]
    assert not bad, validate.format_table(bad)


def test_writes_agree_cell_for_cell_and_in_rate():
    checks = validate.check_writes(sizes=(4,), r_wires=(0.0, 10.0), n_seeds=6, seed=5)
    bad = [c for c in checks if not c.ok]
    assert not bad, validate.format_table(checks)


@pytest.mark.slow
def test_writes_agree_on_bigger_arrays():
    checks = validate.check_writes(sizes=(16,), r_wires=(30.0,), n_seeds=4, seed=8)
    bad = [c for c in checks if not c.ok]
    assert not bad, validate.format_table(checks)


def test_fast_write_energy_and_currents_match_ngspice():
    spec = ArraySpec(rows=6, cols=6, r_wire_ohm=3.0)
    xb = Crossbar(spec, np.zeros(spec.shape, dtype=np.int8))
    t = np.zeros(spec.shape, bool)
    t[2, 1:4] = True
    prog = PulseProgram(WriteScheme.V_THIRD, Direction.SET, t, v_write_v=0.6,
                        pulse_width_s=20e-9)
    a = write(xb, prog, 4)
    b = write(xb, prog, 4, engine=Engine.FAST)
    np.testing.assert_array_equal(a.switched, b.switched)
    np.testing.assert_allclose(b.i_cell_peak_a, a.i_cell_peak_a, rtol=1e-3, atol=1e-9)
    assert b.energy.energy_j == pytest.approx(a.energy.energy_j, rel=0.01)


def test_fast_1t1r_column_pulses_match_ngspice():
    # column-parallel pulses select non-adjacent rows: the fast engine drops the rows whose
    # gates are off and merges the bit-line segments between the selected ones
    from mtjsim.circuit.crossbar import ArrayKind
    from mtjsim.ops.write import Parallelism
    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=6, cols=6, r_wire_ohm=3.0)
    xb = Crossbar.random(spec, seed=2)
    t = np.zeros(spec.shape, bool)
    t[[1, 4], 2] = True
    t[[0, 5], 4] = True
    xb.states[t] = 0
    prog = PulseProgram(WriteScheme.ONE_T_ONE_R, Direction.SET, t, v_write_v=0.9,
                        pulse_width_s=4e-9, parallel=Parallelism.COLUMN)
    a = write(xb, prog, 3)
    b = write(xb, prog, 3, engine=Engine.FAST)
    assert 0 < a.switched.sum() < 4                 # some targets switch, some do not
    np.testing.assert_array_equal(a.switched, b.switched)
    np.testing.assert_allclose(b.i_cell_peak_a, a.i_cell_peak_a, rtol=1e-3, atol=1e-9)
    assert b.energy.energy_j == pytest.approx(a.energy.energy_j, rel=0.01)


def test_fast_engine_warns_when_pulse_is_comparable_to_line_rc():
    spec = ArraySpec(rows=4, cols=4, r_wire_ohm=1000.0, c_wire_f=1e-12)
    xb = Crossbar(spec, np.zeros(spec.shape, dtype=np.int8))
    prog = PulseProgram.single(spec.shape, 0, 0, WriteScheme.V_HALF, Direction.SET,
                               v_write_v=0.5, pulse_width_s=5e-9)
    with pytest.warns(UserWarning, match="line RC"):
        write(xb, prog, 0, engine=Engine.FAST)


def test_validate_cli_quick_exits_zero(capsys):
    from mtjsim.cli import main
    assert main(["validate", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and " 0 failed" in out


def test_edge_flips_are_told_from_flat_top_flips():
    # one pulse from 1 ns: rise 0.2 ns, flat to 11.2 ns, fall to 11.4 ns. Cell 0 flips on
    # the flat top, cell 1 on the fall edge, cell 2 not at all.
    from types import SimpleNamespace
    t = np.array([0.0, 1.2e-9, 5e-9, 6e-9, 11.2e-9, 11.3e-9, 11.4e-9])
    state = np.zeros((1, 3, t.size))
    state[0, 0, 3:] = 1.0                   # last point before the change: 5 ns (flat)
    state[0, 1, 6:] = 1.0                   # last point before the change: 11.3 ns (fall)
    prog = PulseProgram(WriteScheme.V_HALF, Direction.SET, np.ones((1, 3), bool),
                        pulse_width_s=10e-9)
    assert prog.windows_s()[0] == pytest.approx((1e-9, 11.4e-9))
    edge = validate._flips_on_an_edge(SimpleNamespace(
        waveforms={"time_s": t, "state": state}), prog)
    assert edge.tolist() == [[False, True, False]]
