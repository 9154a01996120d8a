"""The fast read engine (mtjsim.engines.fast) against ngspice and against itself.

ngspice comparisons use one ``.op`` per input vector (``read(xbar, v)`` with a 1-D input):
that is ngspice's converged DC answer. Batched ngspice reads are transients sampled at the end
of each slot, converged only to reltol = 1e-6 per time point, so they sit up to a few 1e-6
from the DC answer; they get their own, looser test.
"""

import dataclasses
import itertools

import numpy as np
import pytest

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar, SenseKind
from mtjsim.devices.mosfet import NMOSParams
from mtjsim.devices.mtj import MTJParams
from mtjsim.engines.fast import (
    FastReadConvergenceError, FastReadEngine, ReadMode, clear_cache, fast_read, junction_current,
    mtj_current, nmos_current,
)
from mtjsim.ops.read import read

P, T = ArrayKind.PASSIVE, ArrayKind.ONE_T_ONE_R
VG, RS = SenseKind.VIRTUAL_GROUND, SenseKind.RESISTOR
REL = 1e-6          # required agreement, relative to the largest column current of the vector


def ngspice_dc(xbar, v_in):
    """ngspice .op per vector: i_out (batch, cols) and v_cell of each vector (batch, rows, cols)."""
    res = [read(xbar, row) for row in np.atleast_2d(v_in)]
    return np.stack([r.i_out_a[0] for r in res]), np.stack([r.v_cell_v for r in res])


def rel_err(got, want):
    """Max |difference| per vector over that vector's largest |column current|."""
    scale = np.abs(want).max(axis=1, keepdims=True)
    return float((np.abs(got - want) / scale).max())


def inputs(rng, batch, rows, lo=0.0, hi=0.2, floating=()):
    v = rng.uniform(lo, hi, (batch, rows))
    v[:, list(floating)] = np.nan
    return v


# --- fast against ngspice ----------------------------------------------------------------------
@pytest.mark.ngspice
@pytest.mark.parametrize("kind,sense,r_wire,r_drv", list(itertools.product(
    [P, T], [VG, RS], [0.0, 1.0, 50.0], [0.0, 20.0])))
def test_matches_ngspice_every_periphery(kind, sense, r_wire, r_drv):
    """Random states, a floating row, a batch of 3: wires from merged to large, both sense
    kinds, ideal and resistive drivers, passive and 1T1R."""
    rng = np.random.default_rng([[P, T].index(kind), [VG, RS].index(sense), int(r_wire),
                                 int(r_drv)])
    spec = ArraySpec(kind=kind, rows=5, cols=6, r_wire_ohm=r_wire, r_driver_ohm=r_drv,
                     sense=sense)
    xb = Crossbar.random(spec, seed=int(rng.integers(1 << 30)))
    v = inputs(rng, 3, 5, floating=[2])
    got = fast_read(xb, v)
    want_i, want_vc = ngspice_dc(xb, v)
    assert rel_err(got.i_out_a, want_i) < REL
    assert np.abs(got.v_cell_v - want_vc).max() < 1e-9
    assert got.converged and got.iterations.max() > 0


@pytest.mark.ngspice
@pytest.mark.parametrize("kind", [P, T])
@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 9), (12, 4), (16, 16), (32, 32)])
def test_matches_ngspice_sizes(kind, rows, cols):
    rng = np.random.default_rng(rows * 100 + cols)
    spec = ArraySpec(kind=kind, rows=rows, cols=cols, r_wire_ohm=2.0)
    xb = Crossbar.random(spec, seed=rows + cols)
    v = inputs(rng, 2, rows, 0.05, 0.3)
    got = fast_read(xb, v)
    want_i, want_vc = ngspice_dc(xb, v)
    assert rel_err(got.i_out_a, want_i) < REL
    assert np.abs(got.v_cell_v - want_vc).max() < 1e-9


@pytest.mark.ngspice
@pytest.mark.slow
@pytest.mark.parametrize("kind", [P, T])
def test_matches_ngspice_64x64(kind):
    """One big array per kind (ngspice needs a few seconds here)."""
    rng = np.random.default_rng(64)
    xb = Crossbar.random(ArraySpec(kind=kind, rows=64, cols=64, r_wire_ohm=1.0), seed=64)
    v = inputs(rng, 1, 64)
    got = fast_read(xb, v)
    want_i, want_vc = ngspice_dc(xb, v)
    assert rel_err(got.i_out_a, want_i) < REL
    assert np.abs(got.v_cell_v - want_vc).max() < 1e-9


@pytest.mark.ngspice
def test_matches_ngspice_per_cell_devices_and_signed_inputs():
    """Device-to-device variation (every cell its own R_P, TMR0, V_h) and inputs of both signs
    at large bias, where the TMR roll-off is strong."""
    rng = np.random.default_rng(7)
    rows, cols = 6, 7
    spec = ArraySpec(rows=rows, cols=cols, r_wire_ohm=3.0)
    xb = Crossbar(spec, (rng.random((rows, cols)) < 0.6).astype(np.int8))
    # only R_P, TMR0 and V_h enter a read; vary all three cell by cell
    xb.cells = dataclasses.replace(
        xb.cells, r_p_ohm=spec.device.r_p_ohm * rng.uniform(0.8, 1.2, (rows, cols)),
        tmr0=rng.uniform(1.0, 2.0, (rows, cols)), v_h_v=rng.uniform(0.2, 0.6, (rows, cols)))
    v = inputs(rng, 3, rows, -1.0, 1.0)
    got = fast_read(xb, v)
    want_i, want_vc = ngspice_dc(xb, v)
    assert rel_err(got.i_out_a, want_i) < REL
    assert np.abs(got.v_cell_v - want_vc).max() < 1e-9


@pytest.mark.ngspice
@pytest.mark.parametrize("v_gate,lo,hi", [(1.2, -0.6, 0.3), (1.2, 0.5, 1.5), (0.5, 0.0, 0.3),
                                          (0.0, 0.0, 0.2)])
def test_1t1r_matches_ngspice_all_transistor_regions(v_gate, lo, hi):
    """Linear and saturated channels, reversed devices (negative inputs also forward-bias the
    source junctions), gates near threshold and off."""
    rng = np.random.default_rng([int(10 * v_gate), int(100 + 100 * lo)])
    spec = ArraySpec(kind=T, rows=4, cols=5, r_wire_ohm=5.0, v_gate_v=v_gate)
    xb = Crossbar.random(spec, seed=3)
    v = inputs(rng, 3, 4, lo, hi)
    got = fast_read(xb, v)
    want_i, _ = ngspice_dc(xb, v)
    if v_gate == 0.0:   # all off: only junction leakage, ~1e-12 A or less
        assert np.abs(got.i_out_a).max() < 1e-11 and np.abs(want_i).max() < 1e-11
    else:
        assert rel_err(got.i_out_a, want_i) < REL


@pytest.mark.ngspice
def test_batched_ngspice_transient_agrees_to_its_own_tolerance():
    """ngspice batches are one transient; each sample is converged to reltol = 1e-6 only,
    measured up to ~3e-6 from the DC answer, hence the looser bound."""
    rng = np.random.default_rng(11)
    xb = Crossbar.random(ArraySpec(rows=8, cols=8, r_wire_ohm=10.0), seed=5)
    v = inputs(rng, 4, 8)
    assert rel_err(fast_read(xb, v).i_out_a, read(xb, v).i_out_a) < 1e-5


# --- the linear map ----------------------------------------------------------------------------
@pytest.mark.ngspice
@pytest.mark.parametrize("sense,r_drv", [(VG, 20.0), (RS, 0.0)])
def test_linear_map_exact_for_all_parallel_passive(sense, r_drv):
    """All cells P: every device is linear, so i_out = M v with no iteration, exactly."""
    rng = np.random.default_rng(3)
    spec = ArraySpec(rows=10, cols=7, r_wire_ohm=4.0, r_driver_ohm=r_drv, sense=sense)
    xb = Crossbar(spec, np.zeros((10, 7), np.int8))
    eng = FastReadEngine(xb)
    v = inputs(rng, 3, 10)
    exact = eng.read(v)
    assert exact.linear_network and (exact.iterations == 0).all()
    M = eng.effective_matrix()
    assert M.shape == (7, 10)
    linear = eng.read(v, mode=ReadMode.LINEAR, cell_voltages=False)
    np.testing.assert_allclose(linear.i_out_a, v @ M.T, rtol=1e-13)
    np.testing.assert_allclose(exact.i_out_a, v @ M.T, rtol=1e-12, atol=1e-20)
    assert rel_err(exact.i_out_a, ngspice_dc(xb, v)[0]) < REL


def test_effective_matrix_both_solve_directions_agree():
    """M is built with rows solves (rows <= cols) or cols transposed solves (rows > cols);
    either way its columns are the responses to unit inputs on one row."""
    for rows, cols in [(9, 4), (4, 9)]:
        spec = ArraySpec(rows=rows, cols=cols, r_wire_ohm=2.0, r_driver_ohm=15.0)
        xb = Crossbar(spec, np.zeros((rows, cols), np.int8))
        eng = FastReadEngine(xb)
        M = eng.effective_matrix()
        unit = eng.read(np.eye(rows), cell_voltages=False).i_out_a     # (rows, cols)
        np.testing.assert_allclose(M, unit.T, rtol=1e-10, atol=1e-18)


def test_linear_mode_is_the_zero_bias_map_for_nonlinear_arrays():
    rng = np.random.default_rng(4)
    xb = Crossbar.random(ArraySpec(rows=8, cols=8, r_wire_ohm=1.0), seed=2)
    eng = FastReadEngine(xb)
    v = inputs(rng, 5, 8)
    lin = eng.read(v, mode=ReadMode.LINEAR)
    exact = eng.read(v)
    assert not lin.linear_network and not lin.converged and exact.converged
    np.testing.assert_allclose(lin.i_out_a, v @ eng.effective_matrix().T, rtol=1e-10)
    err = rel_err(lin.i_out_a, exact.i_out_a)
    assert 1e-4 < err < 0.05       # AP cells conduct a few % more at 0.1-0.2 V than at 0 V
    assert (exact.iterations > 0).all()


def test_floating_rows_contribute_nothing_to_the_map():
    xb = Crossbar.random(ArraySpec(rows=6, cols=5, r_wire_ohm=1.0), seed=8)
    eng = FastReadEngine(xb)
    fl = np.zeros(6, bool)
    fl[[1, 4]] = True
    M = eng.effective_matrix(fl)
    assert (M[:, [1, 4]] == 0).all() and (np.abs(M[:, [0, 2, 3, 5]]) > 0).all()


# --- caching -----------------------------------------------------------------------------------
def test_cache_reused_for_same_state_and_invalidated_on_change():
    rng = np.random.default_rng(5)
    xb = Crossbar.random(ArraySpec(rows=12, cols=12, r_wire_ohm=1.0), seed=1)
    eng = FastReadEngine(xb)
    first = eng.read(inputs(rng, 4, 12))
    assert first.factorized and eng.n_factorizations == 1
    second = eng.read(inputs(rng, 7, 12))
    assert not second.factorized and eng.n_factorizations == 1
    eng.effective_matrix()                            # same state, same pattern: no refactor
    assert eng.n_factorizations == 1

    v = inputs(rng, 3, 12)
    before = eng.read(v).i_out_a
    xb.states[3, 4] ^= 1                              # in place: detected at the next read
    after = eng.read(v)                               # one flip: a low-rank update
    assert not after.factorized and after.low_rank == 1 and eng.n_factorizations == 1
    assert not np.allclose(after.i_out_a, before, rtol=1e-6)
    np.testing.assert_allclose(after.i_out_a, FastReadEngine(xb).read(v).i_out_a, rtol=1e-9)

    eng.invalidate()
    assert eng.read(v).factorized and eng.n_factorizations == 2
    xb.states[:3] ^= 1                                # 36 flips > max_low_rank: refactor
    no_lr = FastReadEngine(xb, max_low_rank=0)
    no_lr.read(v)
    xb.states[0, 0] ^= 1
    assert no_lr.read(v).factorized and no_lr.n_factorizations == 2


def test_fast_read_function_caches_engines_by_state():
    clear_cache()
    rng = np.random.default_rng(6)
    xb = Crossbar.random(ArraySpec(rows=8, cols=8), seed=3)
    assert fast_read(xb, inputs(rng, 2, 8)).factorized
    assert not fast_read(xb, inputs(rng, 5, 8)).factorized
    same = Crossbar(xb.spec, xb.states.copy())        # equal content, another object
    assert not fast_read(same, inputs(rng, 1, 8)).factorized
    assert not fast_read(xb, inputs(rng, 1, 8)).factorized
    xb.states[0, 0] ^= 1                              # the same object: a low-rank update
    assert fast_read(xb, inputs(rng, 1, 8)).low_rank == 1
    other = Crossbar.random(ArraySpec(rows=8, cols=8), seed=4)
    assert fast_read(other, inputs(rng, 1, 8)).factorized


def test_each_floating_pattern_has_its_own_factorization():
    """Vectors may float different rows (ngspice batches may not): each pattern is solved
    with its own matrix and gives what a separate read gives."""
    rng = np.random.default_rng(9)
    xb = Crossbar.random(ArraySpec(rows=6, cols=4, r_wire_ohm=1.0, r_driver_ohm=0.0), seed=4)
    v = inputs(rng, 4, 6)
    v[0, 1] = v[2, 1] = np.nan
    v[3, [0, 5]] = np.nan
    eng = FastReadEngine(xb)
    together = eng.read(v)
    assert eng.n_factorizations == 3
    for k in range(4):
        alone = FastReadEngine(xb).read(v[k])
        np.testing.assert_allclose(together.i_out_a[k], alone.i_out_a[0], rtol=1e-10)
        np.testing.assert_allclose(together.v_cell_v[k], alone.v_cell_v[0], atol=1e-12)


# --- convergence -------------------------------------------------------------------------------
def test_non_convergence_raises_a_clear_error():
    dev = MTJParams(tmr0=3.0, v_h_v=0.1)
    xb = Crossbar(ArraySpec(rows=6, cols=6, device=dev, r_wire_ohm=2.0),
                  np.ones((6, 6), np.int8))
    v = np.full((2, 6), 2.0)
    with pytest.raises(FastReadConvergenceError) as info:
        FastReadEngine(xb).read(v, max_iter=1)
    e = info.value
    assert "did not converge" in str(e) and "max_iter=1" in str(e)
    assert list(e.vectors) == [0, 1] and (e.step_v > e.tol_v).all()
    # with the default budget the same read converges (Newton takes over from the chord)
    ok = FastReadEngine(xb).read(v)
    assert ok.converged and ok.iterations.max() > 1


def test_strongly_nonlinear_read_satisfies_kcl():
    """Source line driven to -0.7 V: the channel runs reversed and the source junction
    conducts. Check the answer by KCL at the drain of a 1x1 cell: MTJ current in equals
    channel plus junction current out."""
    spec = ArraySpec(kind=T, rows=1, cols=1, r_wire_ohm=0.0, r_driver_ohm=0.0)
    xb = Crossbar(spec, np.array([[1]], np.int8))
    res = FastReadEngine(xb).read([-0.7])
    v_cell = res.v_cell_v[0, 0, 0]                   # bit line (0 V) minus drain
    v_d = -v_cell
    dev = MTJParams()
    i_mtj, _ = mtj_current(v_cell, 1.0, dev.r_p_ohm, dev.tmr0, dev.v_h_v, derivative=False)
    i_ch, _, _ = nmos_current(np.array([v_d]), np.array([-0.7]), spec.v_gate_v, spec.transistor)
    i_j, _ = junction_current(np.array([v_d]))
    assert i_mtj == pytest.approx(i_ch[0] + i_j[0], rel=1e-10)
    assert res.i_out_a[0, 0] == pytest.approx(-i_mtj, rel=1e-12) and i_mtj > 0


def test_input_validation():
    eng = FastReadEngine(Crossbar.random(ArraySpec(rows=3, cols=3), seed=1))
    with pytest.raises(ValueError, match="rows = 3"):
        eng.read(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="finite"):
        eng.read([0.1, np.inf, 0.1])
    with pytest.raises(ValueError, match="mode"):
        eng.read([0.1, 0.1, 0.1], mode="exact")


# --- device equations ------------------------------------------------------------------------
def test_mtj_derivative_matches_finite_difference():
    v = np.linspace(-1.5, 1.5, 31)
    for s in (0.0, 1.0, 0.3):
        _, di = mtj_current(v, s, 4e3, 1.5, 0.4)
        h = 1e-6
        fd = (mtj_current(v + h, s, 4e3, 1.5, 0.4)[0]
              - mtj_current(v - h, s, 4e3, 1.5, 0.4)[0]) / (2 * h)
        np.testing.assert_allclose(di, fd, rtol=1e-7)


def test_nmos_level1_equations_and_derivatives():
    tr = NMOSParams()
    beta = tr.kp_a_per_v2 * tr.w_m / tr.l_m
    vg = 1.2
    # linear region, forward: beta (vgst - vds/2) vds (1 + lambda vds)
    i, _, _ = nmos_current(np.array([0.1]), np.array([0.0]), vg, tr)
    assert i[0] == pytest.approx(beta * (0.8 - 0.05) * 0.1 * (1 + 0.005), rel=1e-14)
    # saturation, forward
    i, _, _ = nmos_current(np.array([1.0]), np.array([0.0]), vg, tr)
    assert i[0] == pytest.approx(beta / 2 * 0.8 ** 2 * (1 + 0.05), rel=1e-14)
    # symmetric: swapping drain and source reverses the current
    a = nmos_current(np.array([0.3]), np.array([0.1]), vg, tr)[0]
    b = nmos_current(np.array([0.1]), np.array([0.3]), vg, tr)[0]
    assert b[0] == pytest.approx(-a[0], rel=1e-14)
    # derivatives against finite differences in every region and both directions
    rng = np.random.default_rng(0)
    vd, vs = rng.uniform(-0.5, 1.5, 400), rng.uniform(-0.5, 1.5, 400)
    h = 1e-7
    _, dd, ds = nmos_current(vd, vs, vg, tr)
    fd_d = (nmos_current(vd + h, vs, vg, tr)[0] - nmos_current(vd - h, vs, vg, tr)[0]) / (2 * h)
    fd_s = (nmos_current(vd, vs + h, vg, tr)[0] - nmos_current(vd, vs - h, vg, tr)[0]) / (2 * h)
    smooth = np.abs(vd - vs) > 1e-5          # the level-1 model is not C1 at the region edges
    edge_d = np.abs(np.abs(vd - vs) - (vg - np.minimum(vd, vs) - tr.vto_v)) > 1e-5
    ok = smooth & edge_d
    np.testing.assert_allclose(dd[ok], fd_d[ok], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(ds[ok], fd_s[ok], rtol=1e-5, atol=1e-12)


# --- flips as low-rank updates, read-bias linearization ---------------------------------------
@pytest.mark.parametrize("kind,sense,r_wire,r_drv,bias", [
    (P, VG, 2.0, 20.0, 0.0), (P, RS, 0.0, 0.0, 0.1), (P, VG, 0.0, 20.0, 0.1),
    (T, VG, 2.0, 0.0, 0.1), (T, RS, 2.0, 20.0, 0.0)])
def test_low_rank_flips_match_a_fresh_factorization(kind, sense, r_wire, r_drv, bias):
    """A few flips after the factorization: the Woodbury-updated solve refines to the same
    answer as a new factorization of the new state, and the updated effective matrix equals
    the new state's (zero bias: exactly; at a read bias the flipped cells keep the old
    operating point, so M agrees only as a linearization)."""
    rng = np.random.default_rng(21)
    spec = ArraySpec(kind=kind, rows=7, cols=9, r_wire_ohm=r_wire, r_driver_ohm=r_drv,
                     sense=sense)
    xb = Crossbar.random(spec, seed=2)
    v = inputs(rng, 3, 7, floating=[4])
    eng = FastReadEngine(xb, bias_v=bias)
    eng.read(v)
    for _ in range(3):                                # flips accumulate read after read
        xb.states.reshape(-1)[rng.choice(63, 3, replace=False)] ^= 1
        got = eng.read(v)
        fresh = FastReadEngine(xb, bias_v=bias)
        want = fresh.read(v)
        assert got.low_rank > 0 and not got.factorized
        assert rel_err(got.i_out_a, want.i_out_a) < 1e-9
        np.testing.assert_allclose(got.v_cell_v, want.v_cell_v, atol=1e-11)
        fl = np.isnan(v[0])
        M, M_ref = eng.effective_matrix(fl), fresh.effective_matrix(fl)
        assert np.abs(M - M_ref).max() / np.abs(M_ref).max() < (1e-12 if bias == 0 else 5e-3)
        lin = eng.read(v, mode=ReadMode.LINEAR).i_out_a
        np.testing.assert_allclose(lin, np.nan_to_num(v) @ M.T, rtol=1e-9)
    assert eng.n_factorizations == (1 if bias == 0 else 2)


def test_many_flips_refactor():
    xb = Crossbar.random(ArraySpec(rows=8, cols=8, r_wire_ohm=1.0), seed=3)
    eng = FastReadEngine(xb, max_low_rank=5)
    v = np.full(8, 0.1)
    eng.read(v)
    xb.states[:, :1] ^= 1                              # 8 flips > 5
    r = eng.read(v)
    assert r.factorized and r.low_rank == 0
    xb.states[0, 3] ^= 1
    assert eng.read(v).low_rank == 1                   # relative to the new factorization


@pytest.mark.ngspice
@pytest.mark.parametrize("kind", [P, T])
def test_low_rank_flips_match_ngspice(kind):
    rng = np.random.default_rng(31)
    xb = Crossbar.random(ArraySpec(kind=kind, rows=5, cols=6, r_wire_ohm=5.0), seed=7)
    eng = FastReadEngine(xb, bias_v=0.1)
    v = inputs(rng, 2, 5)
    eng.read(v)
    xb.states[[0, 2, 4], [1, 5, 0]] ^= 1
    got = eng.read(v)
    assert got.low_rank == 3
    want_i, want_vc = ngspice_dc(xb, v)
    assert rel_err(got.i_out_a, want_i) < REL
    assert np.abs(got.v_cell_v - want_vc).max() < 1e-9


@pytest.mark.parametrize("kind", [P, T])
def test_read_bias_linearization(kind):
    """Linearized at the read bias (secant conductances at the operating point of every row
    at bias_v): the linear map of binary inputs at that bias is far closer to the exact
    answer than the zero-bias map; exact reads are the same whatever the linearization."""
    rng = np.random.default_rng(41)
    xb = Crossbar.random(ArraySpec(kind=kind, rows=16, cols=16, r_wire_ohm=1.0), seed=5)
    v = 0.1 * (rng.random((6, 16)) < 0.5)
    v[0] = 0.1
    zero, at_bias = FastReadEngine(xb), FastReadEngine(xb, bias_v=0.1)
    exact = zero.read(v).i_out_a
    np.testing.assert_allclose(at_bias.read(v).i_out_a, exact, rtol=1e-9)
    err0 = rel_err(zero.read(v, mode=ReadMode.LINEAR).i_out_a, exact)
    err1 = rel_err(at_bias.read(v, mode=ReadMode.LINEAR, cell_voltages=False).i_out_a, exact)
    assert err1 < err0 / 5 and err1 < 2e-3
    # all rows at the bias: the operating point the secants were taken at (up to the ~1 %
    # error of the zero-bias voltages it was found with)
    assert rel_err(at_bias.read(v[:1], mode=ReadMode.LINEAR).i_out_a, exact[:1]) < 2e-4
    # fewer chord iterations from the read-bias linearization
    assert at_bias.read(v[:1]).iterations[0] <= zero.read(v[:1]).iterations[0]


def test_checked_mode_estimates_and_refines():
    rng = np.random.default_rng(51)
    xb = Crossbar.random(ArraySpec(rows=12, cols=10, r_wire_ohm=1.0), seed=6)
    v = np.concatenate([0.1 * (rng.random((4, 12)) < 0.5), rng.uniform(0, 0.4, (4, 12))])
    exact = FastReadEngine(xb).read(v).i_out_a
    eng = FastReadEngine(xb, bias_v=0.1, linear_tol=2e-3)
    lin = eng.read(v, mode=ReadMode.LINEAR, cell_voltages=False).i_out_a
    chk = eng.read(v, mode=ReadMode.CHECKED, cell_voltages=False)
    actual = (np.abs(lin - exact).max(axis=1) / np.abs(exact).max(axis=1))
    solved = chk.refined | (chk.iterations > 0)       # refined, or one of the sampled vectors
    assert chk.refined.any() and not solved.all()
    # the estimate does not understate the linearization error of the vectors it keeps
    assert np.all(chk.error_estimate[~solved] > actual[~solved] / 2)
    np.testing.assert_allclose(chk.i_out_a[solved], exact[solved], rtol=1e-9)
    np.testing.assert_array_equal(chk.i_out_a[~solved], lin[~solved])
    assert rel_err(chk.i_out_a, exact) < 2e-3


def test_read_settings_select_the_fast_linear_modes():
    from mtjsim.engines import Engine
    from mtjsim.ops.read import ReadSettings
    rng = np.random.default_rng(61)
    xb = Crossbar.random(ArraySpec(rows=8, cols=8, r_wire_ohm=1.0), seed=8)
    v = 0.1 * (rng.random((5, 8)) < 0.5)
    exact = read(xb, v, engine=Engine.FAST).i_out_a
    for mode in ("linear", "checked"):
        s = ReadSettings(fast_mode=mode, fast_bias_v=0.1, fast_tol=1e-4)
        got = read(xb, v, engine=Engine.FAST, settings=s)
        assert got.i_out_a.shape == (5, 8) and got.v_cell_v.shape == (8, 8)
        assert rel_err(got.i_out_a, exact) < (2e-3 if mode == "linear" else 1e-4)
    with pytest.raises(ValueError, match="fast_mode"):
        ReadSettings(fast_mode="fast")
