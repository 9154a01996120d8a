"""Forward reads of the training loop (mtjsim.train.backends.CircuitBackend.forward).

What must hold: a two-phase read is two circuit reads of non-negative row voltages whose
column currents the sense subtracts (checked against ngspice reads built by hand); on 1T1R
arrays that is a different circuit from a signed read, and one the fast engine's linear map
describes within the training tolerance, so nothing needs an exact solve; the per-tile read
engines follow the tiles' states.
"""

import numpy as np
import pytest

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.engines import Engine
from mtjsim.engines.fast import FastReadEngine, ReadMode
from mtjsim.ops.read import read
from mtjsim.train.backends import CircuitBackend, ReadPhases, WriteCounters
from mtjsim.train.network import ArrayNetwork, NetworkSpec, WeightKind, delta_g_s

V_READ_V = 0.1


def _layer(rows=8, cols=8, n_in=11, n_out=6, seed=0, r_wire_ohm=2.0):
    """A ternary layer on 1T1R tiles of rows x cols (2 x 2 tiles), random weights."""
    spec = NetworkSpec((n_in, n_out), WeightKind.TERNARY, tile_rows=rows, tile_cols=cols)
    net = ArrayNetwork(spec, ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=rows, cols=cols,
                                       r_wire_ohm=r_wire_ohm))
    net.set_weights([np.random.default_rng(seed).integers(-1, 2, (n_in + 1, n_out))])
    return net.layers[0]


def _ternary_inputs(n, n_in, seed=1):
    return np.random.default_rng(seed).integers(-1, 2, (n, n_in)).astype(float)


def _by_hand(layer, a, phases):
    """Pre-activations from plain ngspice reads: each tile's rows driven at the phase's
    voltages, pair currents subtracted, phases subtracted."""
    ab = layer.with_bias(a)
    z = np.zeros((len(a), layer.n_out))
    for t in layer.tiles:
        v = np.zeros((len(a), t.xbar.spec.rows))
        v[:, :t.r1 - t.r0] = ab[:, t.r0:t.r1] * V_READ_V
        parts = ([(1.0, v)] if phases is ReadPhases.SIGNED
                 else [(1.0, np.maximum(v, 0)), (-1.0, np.maximum(-v, 0))])
        for sign, part in parts:
            i = read(t.xbar, part).i_out_a
            n = t.n1 - t.n0
            z[:, t.n0:t.n1] += sign * (i[:, 0:2 * n:2] - i[:, 1:2 * n:2])
    return z / (V_READ_V * delta_g_s(layer.tiles[0].xbar.spec))


@pytest.mark.ngspice
def test_two_phase_forward_is_two_non_negative_circuit_reads():
    layer = _layer()
    a = _ternary_inputs(3, layer.n_in)
    a[0, :] = np.abs(a[0])                     # no negative input: a single read
    c = WriteCounters()
    z = {}
    for phases in ReadPhases:
        be = CircuitBackend(0, engine=Engine.NGSPICE, read_phases=phases)
        z[phases] = be.forward(layer, a, c)
        np.testing.assert_allclose(z[phases], _by_hand(layer, a, phases), rtol=0, atol=1e-4)
    # On 1T1R a negative source-line voltage turns the access transistor round: the two
    # schemes are different circuits (but equal where no input is negative).
    np.testing.assert_allclose(z[ReadPhases.SIGNED][0], z[ReadPhases.TWO_PHASE][0], atol=1e-4)
    assert np.abs(z[ReadPhases.SIGNED][1:] - z[ReadPhases.TWO_PHASE][1:]).max() > 1e-2
    # the fast engine reads the same two-phase circuit (its linear map, checked to 5e-3)
    fast = CircuitBackend(0, engine=Engine.FAST, read_phases=ReadPhases.TWO_PHASE)
    scale = np.abs(z[ReadPhases.TWO_PHASE]).max()
    assert np.abs(fast.forward(layer, a, c) - z[ReadPhases.TWO_PHASE]).max() < 1e-2 * scale


def test_two_phase_reads_of_1t1r_stay_within_the_linear_map():
    """32x32 1T1R, ternary inputs on every row: the map linearized at +V_read describes each
    non-negative phase within 5e-3 of the exact solve (so CHECKED refines nothing), while
    the signed vectors are several % off it."""
    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=32, cols=32, r_wire_ohm=1.0)
    xb = Crossbar.random(spec, seed=4)
    v = _ternary_inputs(12, 32, seed=5) * V_READ_V
    eng = FastReadEngine(xb, bias_v=V_READ_V, linear_tol=5e-3)
    M = eng.effective_matrix()

    def off_linear(vecs):
        exact = eng.read(vecs, mode=ReadMode.EXACT, cell_voltages=False).i_out_a
        return np.abs(exact - vecs @ M.T).max(axis=1) / np.abs(exact).max(axis=1)

    assert off_linear(v).max() > 2e-2
    phases = [np.maximum(v, 0), np.maximum(-v, 0)]
    for p in phases:
        assert off_linear(p).max() < 5e-3
        assert not eng.read(p, mode=ReadMode.CHECKED, cell_voltages=False).refined.any()


def test_per_tile_read_engines_follow_the_states():
    # in the backend's process (one worker) and in its shard processes (two: each keeps
    # the engines of its tiles, sent the states with every read): the same z, exactly
    layer = _layer(rows=16, cols=16, n_in=20, n_out=12, r_wire_ohm=1.0)
    a = _ternary_inputs(4, layer.n_in, seed=2)
    be = CircuitBackend(0, engine=Engine.FAST, workers=1)
    sharded = CircuitBackend(0, engine=Engine.FAST, workers=2)
    c = WriteCounters()
    np.testing.assert_array_equal(be.forward(layer, a, c), sharded.forward(layer, a, c))
    engines = dict(be._read_engines)
    assert set(engines) == {t.name for t in layer.tiles}
    built = {k: e.n_factorizations for k, e in engines.items()}
    be.forward(layer, a, c)                   # same states: nothing rebuilt
    assert {k: e.n_factorizations for k, e in be._read_engines.items()} == built
    t = layer.tiles[0]
    t.xbar.states = (1 - t.xbar.states).astype(np.int8)   # every cell flipped
    z = be.forward(layer, a, c)
    assert be._read_engines[t.name] is engines[t.name]
    fresh = CircuitBackend(0, engine=Engine.FAST, workers=1).forward(layer, a, c)
    np.testing.assert_allclose(z, fresh, rtol=0, atol=1e-9 * np.abs(fresh).max())
    np.testing.assert_array_equal(z, sharded.forward(layer, a, c))
    assert len(layer.tiles) > 1 and sharded._shard_pools is not None
    sharded.close()


def test_sense_gain_is_the_read_bias_conductance_step_over_the_zero_bias_one():
    """With ideal lines and drivers every cell sees the read voltage, so a trimmed sense's
    gain is (I_P(v) - I_AP(v)) / (v (G_P - G_AP) at zero bias), from the MTJ law alone;
    on a 32x32 1T1R tile with 1 ohm lines the trim brings fresh random states and inputs
    (not the calibration's) to a unit gain within 5 % (untrimmed: ~0.8; one random tile's
    gain differs from another's by a few %)."""
    from mtjsim.devices.mtj import mtj_conductance_s
    from mtjsim.train.backends import _add_tile_output, sense_gain
    from mtjsim.train.network import decode_pairs
    from types import SimpleNamespace
    v = 0.1
    ideal = ArraySpec(kind=ArrayKind.PASSIVE, rows=6, cols=4, r_wire_ohm=0.0,
                      r_driver_ohm=0.0)
    d = ideal.device
    i_p, i_ap = (v * mtj_conductance_s(v, s, d.r_p_ohm, d.tmr0, d.v_h_v) for s in (0, 1))
    expected = (i_p - i_ap) / (v * delta_g_s(ideal))
    assert expected < 0.99                       # the AP state conducts more at 0.1 V
    assert sense_gain(ideal, v) == pytest.approx(expected, rel=1e-6)

    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=32, cols=32, r_wire_ohm=1.0)
    g = sense_gain(spec, v)
    assert 0.7 < g < 0.9
    rng = np.random.default_rng(11)
    xb = Crossbar(spec, rng.integers(0, 2, spec.shape).astype(np.int8))
    x = rng.choice([0.0, 1.0], (40, 32), p=[0.6, 0.4])
    i_out = read(xb, x * v, engine=Engine.FAST).i_out_a
    z = np.zeros((40, 16))
    _add_tile_output(z, i_out, SimpleNamespace(xbar=xb, n0=0, n1=16), v)
    w = decode_pairs(xb.states[:, 0::2], xb.states[:, 1::2])
    dot = x @ w
    assert (z / g * dot).sum() / (dot * dot).sum() == pytest.approx(1.0, abs=0.05)
