"""The line-relaxation solver (mtjsim.engines.fast_lines, FastReadEngine(solver="lines")) against
the exact LU path of the fast engine and against ngspice."""

import itertools

import numpy as np
import pytest

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar, SenseKind
from mtjsim.devices.mtj import MTJParams
from mtjsim.engines.fast import FastReadEngine, fast_read
from mtjsim.engines.fast_lines import LineSolver, supported
from mtjsim.ops.read import read

VG, RS = SenseKind.VIRTUAL_GROUND, SenseKind.RESISTOR


def rel_err(got, want):
    return float((np.abs(got - want) / np.abs(want).max(axis=1, keepdims=True)).max())


@pytest.mark.parametrize("r_wire,r_drv,sense", list(itertools.product(
    [0.1, 1.0, 20.0], [0.0, 5.0, 100.0], [VG, RS])))
def test_sequence_matches_the_exact_lu_path(r_wire, r_drv, sense):
    """A training-like sequence (a few flips, a new input with a floating row per read) on
    random arrays: every answer equals a fresh LU engine's to the tolerance asked, and no
    factorization of the network is built."""
    rng = np.random.default_rng([int(10 * r_wire), int(r_drv), [VG, RS].index(sense)])
    R, C = 11, 14
    spec = ArraySpec(rows=R, cols=C, r_wire_ohm=r_wire, r_driver_ohm=r_drv, sense=sense)
    xb = Crossbar.random(spec, seed=int(rng.integers(1 << 30)))
    for tol in (1e-6, 1e-10):
        eng = FastReadEngine(xb, solver="lines", tol_rel=tol, tol_v=tol)
        for _ in range(4):
            xb.states.reshape(-1)[rng.choice(R * C, 3, replace=False)] ^= 1
            v = rng.uniform(-0.2, 0.3, (2, R))
            v[:, rng.choice(R)] = np.nan
            got = eng.read(v)
            want = FastReadEngine(xb).read(v)
            assert not got.factorized and eng.n_factorizations == 0
            assert rel_err(got.i_out_a, want.i_out_a) < max(tol, 1e-9)
            assert np.abs(got.v_cell_v - want.v_cell_v).max() < max(tol, 1e-9)


def test_larger_array_and_tall_wide_shapes():
    rng = np.random.default_rng(3)
    for R, C in [(64, 64), (1, 9), (9, 1), (40, 7)]:
        xb = Crossbar.random(ArraySpec(rows=R, cols=C, r_wire_ohm=1.0), seed=R + C)
        v = rng.uniform(0, 0.2, (3, R))
        got = FastReadEngine(xb, solver="lines").read(v, cell_voltages=False)
        want = FastReadEngine(xb).read(v, cell_voltages=False)
        assert (got.iterations > 0).all() and not got.factorized
        assert rel_err(got.i_out_a, want.i_out_a) < 1e-9


def test_strongly_nonlinear_cells():
    """AP cells far into the TMR roll-off (|V| >> V_h): the remainder of the frozen tangent
    is large, the iteration still converges to the exact answer."""
    dev = MTJParams(tmr0=3.0, v_h_v=0.1)
    xb = Crossbar(ArraySpec(rows=6, cols=6, device=dev, r_wire_ohm=2.0),
                  np.ones((6, 6), np.int8))
    v = np.array([np.full(6, 2.0), np.linspace(-1.5, 1.5, 6)])
    got = FastReadEngine(xb, solver="lines").read(v)
    want = FastReadEngine(xb).read(v)
    assert not got.factorized
    assert rel_err(got.i_out_a, want.i_out_a) < 1e-9


def test_falls_back_to_the_lu_path():
    """Merged lines (r_wire = 0), 1T1R arrays, non-EXACT modes, big batches and vectors that
    do not converge within max_iter sweeps all take the LU path, with its answers."""
    rng = np.random.default_rng(4)
    v = rng.uniform(0, 0.2, (2, 5))
    for spec in (ArraySpec(rows=5, cols=5, r_wire_ohm=0.0),
                 ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=5, cols=5, r_wire_ohm=1.0)):
        assert not supported(spec)
        assert FastReadEngine(Crossbar.random(spec, seed=1), solver="lines").read(v).factorized
    xb = Crossbar.random(ArraySpec(rows=5, cols=5, r_wire_ohm=1.0), seed=2)
    many = rng.uniform(0, 0.2, (FastReadEngine.LINES_MAX_BATCH + 1, 5))
    assert FastReadEngine(xb, solver="lines").read(many).factorized
    # too few sweeps for the line solver (9 here), enough chord iterations (6): LU answer
    xb = Crossbar.random(ArraySpec(rows=12, cols=12, r_wire_ohm=20.0, r_driver_ohm=100.0),
                         seed=2)
    v = rng.uniform(0, 0.2, (2, 12))
    r = FastReadEngine(xb, solver="lines").read(v, max_iter=7)
    assert r.factorized
    np.testing.assert_allclose(r.i_out_a, FastReadEngine(xb).read(v).i_out_a, rtol=1e-9)
    with pytest.raises(ValueError, match="solver"):
        FastReadEngine(xb, solver="cg")


def test_device_change_rebuilds_and_fast_read_passes_the_option():
    rng = np.random.default_rng(5)
    xb = Crossbar.random(ArraySpec(rows=6, cols=7, r_wire_ohm=2.0), seed=3)
    v = rng.uniform(0, 0.2, 6)
    eng = FastReadEngine(xb, solver="lines")
    eng.read(v)
    xb.cells.r_p_ohm[2, 3] *= 1.5                     # per-cell device changed in place
    np.testing.assert_allclose(eng.read(v).i_out_a, FastReadEngine(xb).read(v).i_out_a,
                               rtol=1e-9)
    r = fast_read(xb, v, solver="lines")
    assert not r.factorized and r.iterations[0] > 0


def test_line_solver_reports_non_convergence():
    xb = Crossbar.random(ArraySpec(rows=8, cols=8, r_wire_ohm=1.0), seed=6)
    c = xb.cells
    ls = LineSolver(xb.spec, c.r_p_ohm, c.tmr0, c.v_h_v)
    sol = ls.solve(xb.states, np.full(8, 0.1), max_sweeps=2)
    assert not sol.converged and sol.sweeps == 2
    sol = ls.solve(xb.states, np.full(8, 0.1))
    assert sol.converged and sol.cell_voltages().shape == (8, 8)


@pytest.mark.ngspice
@pytest.mark.parametrize("sense,r_drv", [(VG, 20.0), (RS, 0.0)])
def test_matches_ngspice(sense, r_drv):
    rng = np.random.default_rng(7)
    xb = Crossbar.random(ArraySpec(rows=5, cols=6, r_wire_ohm=3.0, r_driver_ohm=r_drv,
                                   sense=sense), seed=8)
    eng = FastReadEngine(xb, solver="lines")
    for _ in range(2):
        xb.states[rng.integers(5), rng.integers(6)] ^= 1
        v = rng.uniform(0, 0.3, 5)
        v[1] = np.nan
        got = eng.read(v)
        want = read(xb, v)
        assert not got.factorized
        assert rel_err(got.i_out_a, want.i_out_a[:1]) < 1e-6
        assert np.abs(got.v_cell_v[0] - want.v_cell_v).max() < 1e-9


def test_read_settings_select_the_line_solver():
    from mtjsim.engines import Engine
    from mtjsim.ops.read import ReadSettings
    xb = Crossbar.random(ArraySpec(rows=12, cols=9, r_wire_ohm=2.0), seed=4)
    v = np.random.default_rng(1).uniform(0, 0.2, 12)
    lu = read(xb, v, engine=Engine.FAST).i_out_a
    lines = read(xb, v, engine=Engine.FAST, settings=ReadSettings(fast_solver="lines")).i_out_a
    np.testing.assert_allclose(lines, lu, rtol=1e-8, atol=1e-15)
    with pytest.raises(ValueError, match="fast_solver"):
        ReadSettings(fast_solver="cg")
