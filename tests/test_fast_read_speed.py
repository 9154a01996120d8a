"""The read engine's speed-ups for training reads: CHECKED's sampled vectors solved to
``sample_tol``, the cell I-V solved by safeguarded Newton, per-(cell, state) estimate terms
reused by the low-rank views, nested BLAS limits."""

from __future__ import annotations

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.engines import fast
from mtjsim.engines.fast import FastReadEngine, ReadMode, mtj_current, nmos_current
from mtjsim.ops.fast_ops import engine_options
from mtjsim.ops.read import ReadSettings

T = ArrayKind.ONE_T_ONE_R


def rel_err(got, ref):
    return float((np.abs(got - ref).max(axis=1) / np.abs(ref).max(axis=1)).max())


def _xbar(seed=4, n=16):
    return Crossbar.random(ArraySpec(kind=T, rows=n, cols=n, r_wire_ohm=1.0), seed=seed)


def test_sampled_vectors_are_solved_to_sample_tol():
    xb = _xbar()
    v = 0.1 * (np.random.default_rng(3).random((30, 16)) < 0.5)
    exact = FastReadEngine(xb, bias_v=0.1).read(v, cell_voltages=False).i_out_a
    full = FastReadEngine(xb, bias_v=0.1, linear_tol=2e-2)
    loose = FastReadEngine(xb, bias_v=0.1, linear_tol=2e-2, sample_tol=2e-4)
    a = full.read(v, mode=ReadMode.CHECKED, cell_voltages=False)
    b = loose.read(v, mode=ReadMode.CHECKED, cell_voltages=False)
    samp = np.flatnonzero(a.iterations > 0)
    assert samp.size and np.array_equal(samp, np.flatnonzero(b.iterations > 0))
    np.testing.assert_allclose(a.i_out_a[samp], exact[samp], rtol=1e-9)
    assert rel_err(b.i_out_a[samp], exact[samp]) < 2e-4
    rest = np.setdiff1d(np.arange(len(v)), samp)
    np.testing.assert_array_equal(a.i_out_a[rest], b.i_out_a[rest])     # the linear map
    np.testing.assert_allclose(b.error_estimate, a.error_estimate, rtol=0, atol=1e-3)
    assert rel_err(b.i_out_a, exact) < 2e-2


def test_engine_options_of_checked_reads_take_a_sample_tol():
    opts = engine_options(ReadSettings(fast_mode="checked", fast_bias_v=0.1, fast_tol=2e-2))
    assert opts["linear_tol"] == 2e-2 and np.isclose(opts["sample_tol"], 2e-4)
    assert "sample_tol" not in engine_options(ReadSettings(fast_mode="exact"))


def test_cell_iv_matches_bisection():
    xb = _xbar()
    sysm = FastReadEngine(xb, bias_v=0.1)._system(np.zeros(16, bool))[0]
    cells = np.arange(sysm.cell_s.size)
    u = np.linspace(-0.4, 0.4, 9)[None, :] * np.ones((cells.size, 1))
    for s in (sysm.cell_s, 1 - sysm.cell_s):
        got = sysm._cell_iv(cells, s, u)
        # the former 50-step bisection of the drain voltage
        r_p, tmr0, v_h = (a[cells][:, None] for a in (sysm.cell_r_p, sysm.cell_tmr0,
                                                      sysm.cell_v_h))
        sc = s[:, None]
        lo, hi = np.minimum(u, 0.0), np.maximum(u, 0.0)
        for _ in range(50):
            vd = 0.5 * (lo + hi)
            h = (mtj_current(-vd, sc, r_p, tmr0, v_h, derivative=False)[0]
                 - nmos_current(vd, u, xb.spec.v_gate_v, xb.spec.transistor,
                                derivative=False)[0])
            lo, hi = np.where(h > 0, vd, lo), np.where(h > 0, hi, vd)
        ref = -mtj_current(-0.5 * (lo + hi), sc, r_p, tmr0, v_h, derivative=False)[0]
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-20)


def test_low_rank_views_read_like_a_fresh_engine():
    """Flips after the first read: the view's linear map, estimate and sampled solves follow
    the new states (estimate terms of the flipped cells come from the base's cache)."""
    xb = _xbar(seed=9)
    v = 0.1 * (np.random.default_rng(5).random((20, 16)) < 0.5)
    eng = FastReadEngine(xb, bias_v=0.1, linear_tol=2e-2, sample_tol=2e-4)
    eng.read(v, mode=ReadMode.CHECKED, cell_voltages=False)
    s = xb.states.copy()
    s.flat[[3, 40, 77, 200]] ^= 1
    xb.states = s
    got = eng.read(v, mode=ReadMode.CHECKED, cell_voltages=False)
    assert eng.n_factorizations == 2 and got.low_rank == 4
    exact = FastReadEngine(xb, bias_v=0.1).read(v, cell_voltages=False).i_out_a
    assert rel_err(got.i_out_a, exact) < 2e-2
    # the view's terms equal the ones of the new state computed directly at the same point
    view = eng._system(np.zeros(16, bool))[0]
    base = view.base
    c = base.nonlinearity_poly(np.arange(s.size), s.ravel().astype(float))
    for k in range(3):
        np.testing.assert_allclose(view.estimate_terms()[k].ravel(), c[k], rtol=1e-10,
                                   atol=1e-18)
    # the view's exact solves (index-based Woodbury) agree with a fresh engine
    np.testing.assert_allclose(eng.read(v[:3], cell_voltages=False).i_out_a, exact[:3],
                               rtol=1e-8)


def test_nested_blas_limits_restore_the_outer_state():
    with fast.one_blas_thread():
        with fast.one_blas_thread():
            assert fast._blas_depth == 2
        assert fast._blas_depth == 1 and fast._blas_limiter is not None
    assert fast._blas_depth == 0 and fast._blas_limiter is None
