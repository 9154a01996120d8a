"""Passive-array reads in ngspice against independent calculations."""

import re
import subprocess

import numpy as np
import pytest
from scipy.optimize import brentq

from mtjsim.circuit.crossbar import ArraySpec, Crossbar, SenseKind
from mtjsim.devices.mtj import MTJParams
from mtjsim.ops.read import read
from reference_nodal import mtj_g, r_p, solve_passive

pytestmark = pytest.mark.ngspice
DEV = MTJParams(diameter_m=40e-9, ra_ohm_m2=5e-12, tmr0=1.5, v_h_v=0.5)
RP = r_p(40e-9, 5e-12)


def spec(rows, cols, r_wire, **kw):
    return ArraySpec(rows=rows, cols=cols, device=DEV, r_wire_ohm=r_wire, **kw)


@pytest.mark.parametrize("state", [0, 1])
def test_1x1_equals_hand_solution(state):
    v, r_drv, r_w = 0.2, 50.0, 3.0
    xb = Crossbar(spec(1, 1, r_w, r_driver_ohm=r_drv), np.array([[state]]))
    got = read(xb, [v]).i_out_a[0, 0]
    # series circuit: V = I (R_drv + 2 R_w) + V_mtj, I = G(V_mtj) V_mtj
    f = lambda vm: vm + mtj_g(vm, state, RP, 1.5, 0.5) * vm * (r_drv + 2 * r_w) - v  # noqa: E731
    vm = brentq(f, 0, v, xtol=1e-15)
    want = mtj_g(vm, state, RP, 1.5, 0.5) * vm
    if state == 0:
        assert want == pytest.approx(v / (RP + r_drv + 2 * r_w), rel=1e-12)
    assert got == pytest.approx(want, rel=1e-6)


def test_2x2_all_parallel_equals_hand_solution():
    """2x2, all P (linear), virtual-ground sense, r_wire = R. By symmetry-free hand nodal
    analysis (8 unknowns) written out here as a dense system."""
    R, Rd, G = 10.0, 20.0, 1 / RP
    v0, v1 = 0.15, 0.05
    # unknowns: w00 w01 w02 w10 w11 w12 (word lines: driver out, cell0, cell1), b00 b01 b10 b11
    # (bit line j at row k); sense nodes are 0 V.
    idx = {n: k for k, n in enumerate("w00 w01 w02 w10 w11 w12 b00 b01 b10 b11".split())}
    A = np.zeros((10, 10))
    rhs = np.zeros(10)

    def cond(a, b, g):
        A[idx[a], idx[a]] += g
        if b:
            A[idx[b], idx[b]] += g
            A[idx[a], idx[b]] -= g
            A[idx[b], idx[a]] -= g
    cond("w00", None, 1 / Rd); rhs[idx["w00"]] = v0 / Rd
    cond("w10", None, 1 / Rd); rhs[idx["w10"]] = v1 / Rd
    for r in "01":
        cond(f"w{r}0", f"w{r}1", 1 / R)
        cond(f"w{r}1", f"w{r}2", 1 / R)
    for j in "01":
        cond(f"b{j}0", f"b{j}1", 1 / R)
        cond(f"b{j}1", None, 1 / R)          # last segment to the 0 V sense node
    for i in "01":
        for j in "01":
            cond(f"w{i}{int(j) + 1}", f"b{j}{i}", G)
    x = np.linalg.solve(A, rhs)
    want = np.array([x[idx["b01"]] / R, x[idx["b11"]] / R])
    xb = Crossbar(spec(2, 2, R, r_driver_ohm=Rd), np.zeros((2, 2)))
    got = read(xb, [v0, v1]).i_out_a[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("unselected", ["floating", "grounded"])
def test_sneak_paths_match_nodal_analysis(n, unselected):
    """Read cell (0,0) with sense resistors: unselected rows floating or at 0 V. The sneak
    current predicted by nodal analysis appears, and the sensed current differs measurably
    from the ideal single-cell current."""
    r_sense, r_w, r_drv = 1000.0, 1.0, 10.0
    states = np.ones((n, n), dtype=int)
    states[0, 0] = 0
    states[1:, 1:] = 0      # low-resistance cells: a strong sneak path row0 -> col1 -> row1 -> col0
    v_in = np.full(n, np.nan if unselected == "floating" else 0.0)
    v_in[0] = 0.2
    xb = Crossbar(spec(n, n, r_w, r_driver_ohm=r_drv, sense=SenseKind.RESISTOR,
                       r_sense_ohm=r_sense), states)
    got = read(xb, v_in).i_out_a[0]
    want, _ = solve_passive(states, v_in, RP, 1.5, 0.5, r_w, r_drv, r_sense)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    ideal = 0.2 / (RP + r_drv + r_w * (n + 1) + r_sense)   # cell (0,0) alone, P state
    assert abs(got[0] - ideal) / ideal > 1e-3


def _plain_ngspice_currents(netlist, cols):
    out = subprocess.run(["ngspice", "-b", str(netlist)], capture_output=True, text=True,
                         cwd="/", timeout=300).stdout
    cur = {}
    for m in re.finditer(r"^\s*vsns(\d+)#branch\s+(\S+)", out, re.M):
        cur[int(m.group(1))] = float(m.group(2))
    return np.array([cur[j] for j in range(cols)])


def test_16x16_random_matches_scipy_nodal_and_plain_ngspice(tmp_path):
    rng = np.random.default_rng(3)
    states = (rng.random((16, 16)) < 0.5).astype(int)
    v_in = rng.uniform(0.0, 0.3, 16)
    xb = Crossbar(spec(16, 16, 2.5, r_driver_ohm=30.0), states)
    res = read(xb, v_in, workdir=tmp_path, netlist_name="netlist.cir")
    want, x = solve_passive(states, v_in, RP, 1.5, 0.5, 2.5, 30.0)
    np.testing.assert_allclose(res.i_out_a[0], want, rtol=1e-5)
    # the saved netlist in plain `ngspice -b` (run from another directory) prints the same
    plain = _plain_ngspice_currents(tmp_path / "netlist.cir", 16)
    np.testing.assert_allclose(plain, res.i_out_a[0], rtol=1e-5)
    # the secant resistance of a cell is V/I at its solved bias
    assert res.r_cell_ohm[states == 0] == pytest.approx(RP, rel=1e-9)
    assert (res.r_cell_ohm[states == 1] > RP * 2.0).all()


def test_ir_drop_far_corner_falls_monotonically():
    """One-hot reads: near corner (last row, column 0) vs far corner (row 0, last column)."""
    n = 16
    ratios = []
    for r_w in [0.0, 1.0, 4.0, 16.0, 64.0]:
        xb = Crossbar(spec(n, n, r_w), np.zeros((n, n), dtype=int))
        near_in = np.zeros(n); near_in[n - 1] = 0.1
        far_in = np.zeros(n); far_in[0] = 0.1
        res = read(xb, np.vstack([near_in, far_in]))
        ratios.append(res.i_out_a[1, n - 1] / res.i_out_a[0, 0])
    assert ratios[0] == pytest.approx(1.0, rel=1e-6)
    assert all(a > b for a, b in zip(ratios, ratios[1:])), ratios
    assert ratios[-1] < 0.9


def test_batch_transient_equals_separate_operating_points():
    rng = np.random.default_rng(5)
    xb = Crossbar.random(spec(6, 5, 2.0), seed=4)
    batch = rng.uniform(0, 0.2, (4, 6))
    together = read(xb, batch).i_out_a
    for b in range(4):
        alone = read(xb, batch[b]).i_out_a[0]
        np.testing.assert_allclose(together[b], alone, rtol=1e-5)


def test_comparator_decision_follows_current():
    xb = Crossbar.random(spec(8, 8, 1.0), seed=9)
    res = read(xb, np.full(8, 0.1))
    np.testing.assert_array_equal(res.decision[0], (res.i_out_a[0] > res.i_ref_a[0]).astype(int))
    assert 0 < res.decision.sum() < 8
