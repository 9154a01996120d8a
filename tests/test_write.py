"""Writes in ngspice: switching decided by the solved circuit current, against predictions
computed here from that current with the analytic switching law (PHYSICS.md)."""

import math
import subprocess

import numpy as np
import pytest

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.devices.mtj import MTJParams
from mtjsim.engines.ngspice import parse_raw
from mtjsim.ops.write import Direction, Parallelism, PulseProgram, WriteScheme, write
from mtjsim.ops.write_stats import write_stats

pytestmark = pytest.mark.ngspice
DEV = MTJParams()          # 40 nm: R_P 3.98 kohm, I_c0 68.5 uA (P->AP), Delta 60


def predicted_p_switch(i_a, t_s, i_c0_a, delta, tau0_s, tau_d_s, n_mc=400_000, seed=99):
    """P(switch) for a current waveform I(t) (pre-switch), written from PHYSICS.md: the device
    switches when int rate_thermal/E dt + int (i-1)+/tau_D dt / ln(pi/(2 theta0)) >= 1,
    theta0 = sqrt(E/Delta), E ~ Exp(1). Monte Carlo over E only (the integrals are exact)."""
    i = np.abs(i_a) / i_c0_a
    a = np.trapezoid(np.where(i < 1, np.exp(-delta * (1 - np.minimum(i, 1))) / tau0_s, 0), t_s)
    b = np.trapezoid(np.maximum(i - 1, 0) / tau_d_s, t_s)
    e = np.random.default_rng(seed).exponential(1.0, n_mc)
    lnth = np.maximum(math.log(math.pi / 2) - 0.5 * np.log(e / delta), 0.01)
    return float(np.mean(a / e + b / lnth >= 1))


def binomial_99(p, n):
    """Interval of the count of n Bernoulli(p) trials at 99 % (normal approx. + 1 margin)."""
    sd = math.sqrt(n * p * (1 - p))
    return n * p - 2.576 * sd - 1, n * p + 2.576 * sd + 1


def test_same_seed_same_outcome_and_plain_ngspice_agrees(tmp_path):
    spec = ArraySpec(rows=4, cols=4, r_wire_ohm=2.0)
    xb = Crossbar(spec, np.zeros((4, 4), dtype=np.int8))
    prog = PulseProgram.single(spec.shape, 1, 2, WriteScheme.V_HALF, Direction.SET,
                               v_write_v=0.43, pulse_width_s=10e-9)
    outcomes = [write(xb, prog, seed=s).switched for s in range(8)]
    again = [write(xb, prog, seed=s).switched for s in range(8)]
    for a, b in zip(outcomes, again):
        np.testing.assert_array_equal(a, b)
    assert len({o.tobytes() for o in outcomes}) > 1, "different seeds should give new samples"
    r = write(xb, prog, seed=3, workdir=tmp_path, netlist_name="netlist.cir")
    subprocess.run(["ngspice", "-b", "-r", str(tmp_path / "p.raw"), str(tmp_path / "netlist.cir")],
                   cwd="/", check=True, capture_output=True, timeout=300)
    _, vec = parse_raw(tmp_path / "p.raw")
    for i in range(4):
        for j in range(4):
            key = f"v(x{i}_{j}.s)"
            if key in vec:
                assert int(vec[key][-1] > 0.5) == r.states_after[i, j]


def test_1t1r_unselected_rows_never_switch_and_selected_follows_its_current():
    """Selected cell (1,1) of a 4x4 1T1R; a strong 1.5 V pulse for the other rows."""
    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=4, cols=4, r_wire_ohm=1.0)
    xb = Crossbar(spec, np.zeros((4, 4), dtype=np.int8))
    # column-parallel on column 1: rows 1 selected, others have their gates off
    prog = PulseProgram.single(spec.shape, 1, 1, WriteScheme.ONE_T_ONE_R, Direction.SET,
                               v_write_v=0.9, pulse_width_s=4e-9, v_gate_write_v=1.0)
    n = 60
    results = [write(xb, prog, seed=s) for s in range(n)]
    for r in results:
        assert r.switched[[0, 2, 3]].sum() == 0
    count = sum(int(r.switched[1, 1]) for r in results)
    unswitched = next((r for r in results if not r.switched[1, 1]), None)
    assert unswitched is not None and 0 < count < n, count
    w = unswitched.waveforms
    p = predicted_p_switch(w["i_cell_a"][1, 1].astype(float), w["time_s"], DEV.i_c0_p2ap_a,
                           DEV.delta, DEV.tau0_s, DEV.tau_d_s)
    lo, hi = binomial_99(p, n)
    assert lo <= count <= hi, (count, p * n)


def test_v_half_disturb_rate_matches_half_select_current():
    """V/2 SET of one cell: half-selected cells see V/2 and switch at the thermal rate the
    model predicts for their solved current; unselected-unselected cells see 0 V."""
    spec = ArraySpec(rows=6, cols=6, r_wire_ohm=0.5, r_driver_ohm=0.0)
    xb = Crossbar(spec, np.zeros((6, 6), dtype=np.int8))
    v = 0.50
    prog = PulseProgram.single(spec.shape, 2, 3, WriteScheme.V_HALF, Direction.SET,
                               v_write_v=v, pulse_width_s=50e-9)
    n = 24
    results = [write(xb, prog, seed=s) for s in range(n)]
    half = np.zeros((6, 6), bool)
    half[2, :] = half[:, 3] = True
    half[2, 3] = False
    r0 = results[0]
    # bias across half-selected cells is V/2 (ideal drivers, small wire resistance)
    i_half = r0.i_cell_peak_a[half]
    assert i_half == pytest.approx(v / 2 / DEV.r_p_ohm, rel=0.01)
    # only the wire IR drop (0.5 ohm segments) biases them
    assert r0.i_cell_peak_a[~half & ~prog.targets].max() < 1e-2 * i_half.min()
    # Each half-selected cell's current while it is still P (from a seed where it stayed P:
    # the circuit is deterministic until a device flips) gives its switching law.
    p_each, thermal_integral = [], {}
    for i, j in np.argwhere(half):
        stayed = next(r for r in results if not r.switched[i, j])
        w = stayed.waveforms
        i_pre = w["i_cell_a"][i, j].astype(float)
        p_each.append(predicted_p_switch(i_pre, w["time_s"], DEV.i_c0_p2ap_a, DEV.delta,
                                         DEV.tau0_s, DEV.tau_d_s))
        ii = i_pre / DEV.i_c0_p2ap_a
        thermal_integral[i, j] = np.trapezoid(np.exp(-DEV.delta * (1 - ii)) / DEV.tau0_s,
                                              w["time_s"])
    expected = sum(p_each) * n
    observed = sum(int(r.switched[half].sum()) for r in results)
    sd = math.sqrt(sum(p * (1 - p) for p in p_each) * n)
    assert 0.02 < np.mean(p_each) < 0.6           # the test is informative
    assert abs(observed - expected) <= 2.576 * sd + 1, (observed, expected)
    # cell for cell: a device switches exactly when its integrated rate reaches its threshold
    for r in results:
        for (i, j), a in thermal_integral.items():
            e = r.thresholds["ethp"][i, j]
            if abs(a - e) > 0.01 * e:
                assert r.switched[i, j] == (a > e), (i, j, a, e)
    for r in results:
        assert r.switched[~half & ~prog.targets].sum() == 0


def test_v_third_disturbs_fewer_cells_than_v_half():
    spec = ArraySpec(rows=6, cols=6, r_wire_ohm=0.5)
    xb = Crossbar(spec, np.zeros((6, 6), dtype=np.int8))
    kw = dict(v_write_v=0.50, pulse_width_s=50e-9)
    d = {}
    for scheme in (WriteScheme.V_HALF, WriteScheme.V_THIRD):
        prog = PulseProgram.single(spec.shape, 2, 3, scheme, Direction.SET, **kw)
        d[scheme] = sum(int(write(xb, prog, seed=s).disturbed.sum()) for s in range(12))
    assert d[WriteScheme.V_THIRD] < d[WriteScheme.V_HALF], d


def test_reset_direction_switches_ap_to_p_with_reversed_current():
    spec = ArraySpec(rows=3, cols=3, r_wire_ohm=1.0)
    xb = Crossbar(spec, np.ones((3, 3), dtype=np.int8))
    prog = PulseProgram.single(spec.shape, 0, 0, WriteScheme.V_HALF, Direction.RESET,
                               v_write_v=0.8, pulse_width_s=10e-9)
    r = write(xb, prog, seed=0)
    assert r.states_after[0, 0] == 0 and r.switched[0, 0] == 1
    assert r.waveforms["i_cell_a"][0, 0].min() < 0      # current flows bit line -> word line


def test_row_parallel_program_writes_a_row_in_one_pulse_and_column_parallel_a_column():
    spec = ArraySpec(rows=4, cols=4, r_wire_ohm=1.0)
    xb = Crossbar(spec, np.zeros((4, 4), dtype=np.int8))
    t = np.zeros((4, 4), bool)
    t[1, :] = True
    prog = PulseProgram(WriteScheme.V_THIRD, Direction.SET, t, v_write_v=0.75,
                        pulse_width_s=10e-9, parallel=Parallelism.ROW)
    assert len(prog.pulses()) == 1
    r = write(xb, prog, seed=1)
    assert r.write_errors.sum() == 0 and r.states_after[1].all()
    prog_c = PulseProgram(WriteScheme.V_THIRD, Direction.SET, t, v_write_v=0.75,
                          pulse_width_s=10e-9, parallel=Parallelism.COLUMN)
    assert len(prog_c.pulses()) == 4


@pytest.mark.slow
def test_ir_drop_far_corner_switches_less_than_near_corner():
    """32x32 passive, one V/2 pulse on the near corner (31,0) and one on the far corner
    (0,31). With 40 ohm per segment the far corner's current is lower, so is its P_sw; with
    0 ohm both are equal within noise."""
    t = np.zeros((32, 32), bool)
    t[31, 0] = t[0, 31] = True
    counts = {}
    n = 16
    for r_w in (0.0, 40.0):
        spec = ArraySpec(rows=32, cols=32, r_wire_ohm=r_w)
        xb = Crossbar(spec, np.zeros((32, 32), dtype=np.int8))
        prog = PulseProgram(WriteScheme.V_HALF, Direction.SET, t, v_write_v=0.52,
                            pulse_width_s=8e-9)
        stats = write_stats(xb, prog, n, workers=2)
        counts[r_w] = (stats.switch_count[31, 0], stats.switch_count[0, 31],
                       stats.i_cell_peak_a[31, 0], stats.i_cell_peak_a[0, 31])
    near, far, i_near, i_far = counts[40.0]
    assert i_far < 0.9 * i_near
    assert far < near, counts
    near0, far0, i_near0, i_far0 = counts[0.0]
    assert i_far0 == pytest.approx(i_near0, rel=1e-3)
    # two-proportion check at 99 %
    p = (near0 + far0) / (2 * n)
    assert abs(near0 - far0) <= 2.576 * math.sqrt(2 * n * p * (1 - p)) + 1, counts
