"""GXNOR ternary training (mtjsim.train): the rule's step probabilities as realized through
the loop's plan execution, the GXNOR straight-through window, centred image inputs.

Falsifiable: with ideal writes, a weight asked for an integer part k and remainder v of a
step moves k states and then one more with probability tanh(m v): counted over many weights,
the fraction must lie inside the 99 % binomial (Wilson) interval.
"""

import math

import numpy as np
import pytest

from mtjsim.circuit.crossbar import ArraySpec
from mtjsim.devices import load_preset
from mtjsim.ops.write_stats import wilson_interval
from mtjsim.train.backends import IdealBackend, WriteCounters
from mtjsim.train.datasets import Encoding, load_dataset
from mtjsim.train.loop import TrainConfig, apply_plan, build_network, load_data
from mtjsim.train.network import ArrayNetwork, NetworkSpec, SteCenter, WeightKind, ste_mask
from mtjsim.train.rules import gxnor_plan

DEV = load_preset("pmtj_40nm")
ROWS, COLS = 60, 40     # one 60 x 80 tile: 2,400 weights per draw


def _one_tile_net(w0: int) -> ArrayNetwork:
    spec = NetworkSpec(sizes=(ROWS - 1, COLS), weight_kind=WeightKind.TERNARY,
                       tile_rows=ROWS, tile_cols=2 * COLS)
    net = ArrayNetwork(spec, ArraySpec(rows=ROWS, cols=2 * COLS, device=DEV))
    net.set_weights([np.full((ROWS, COLS), w0, dtype=np.int8)])
    return net


@pytest.mark.parametrize("w0, dw, m", [
    (0, 0.2, 3.0),      # no integer part: one step with tanh(0.6) = 0.537
    (0, -0.05, 3.0),    # small remainder, downwards: tanh(0.15) = 0.149
    (-1, 1.4, 3.0),     # one deterministic step (-1 -> 0), then +1 with tanh(1.2) = 0.834
    (1, -0.3, 1.0),     # another m: tanh(0.3) = 0.291
])
def test_gxnor_extra_step_probability_is_tanh_m_v(w0, dw, m):
    # A uniform gradient: g / rms(g) = sign(g), so dW = -lr sign(g) = dw exactly.
    g = np.full((ROWS, COLS), -math.copysign(1.0, dw))
    lr = abs(dw)
    k, v = math.trunc(abs(dw)), abs(dw) - math.trunc(abs(dw))
    p = math.tanh(m * v)
    step = int(math.copysign(1, dw))
    be = IdealBackend(11, levels=1)
    moved_extra = total = 0
    for _ in range(5):
        net = _one_tile_net(w0)
        w = net.weights()[0]
        plan = gxnor_plan([w], [g], lr=lr, m=m)
        apply_plan(net, plan, be, WriteCounters())
        after = net.weights()[0].astype(int)
        # every weight made its k deterministic steps; the extra step is the coin
        assert np.all((after == w0 + k * step) | (after == w0 + (k + 1) * step))
        moved_extra += int((after == w0 + (k + 1) * step).sum())
        total += after.size
    lo, hi = wilson_interval(moved_extra, total, 0.99)
    assert lo <= p <= hi, (moved_extra / total, p)


def test_gxnor_clips_at_the_ternary_bounds():
    net = _one_tile_net(1)
    w = net.weights()[0]
    g = -np.ones((ROWS, COLS))            # asks every weight to go up by 2.5: nowhere to go
    plan = gxnor_plan([w], [g], lr=2.5, m=3.0)
    assert not plan.direction[0].any() and plan.intended_flips == 0
    apply_plan(net, plan, IdealBackend(0), WriteCounters())
    assert (net.weights()[0] == 1).all()


def test_ste_window_centred_on_the_thresholds():
    n = 100                                 # sqrt(rows) = 10: threshold 3, half-width 1
    z = np.array([[0.0, 1.9, 2.1, 3.0, 3.9, 4.1, -2.5, -4.5]])
    tern = NetworkSpec(sizes=(n - 1, 4), weight_kind=WeightKind.TERNARY,
                       ternary_act_threshold=0.3, ste_window=0.1,
                       ste_center=SteCenter.THRESHOLDS)
    np.testing.assert_array_equal(ste_mask(z, tern, n), [[0, 0, 1, 1, 1, 0, 1, 0]])
    zero = NetworkSpec(sizes=(n - 1, 4), weight_kind=WeightKind.TERNARY, ste_window=0.1)
    np.testing.assert_array_equal(ste_mask(z, zero, n), [[1, 0, 0, 0, 0, 0, 0, 0]])
    # a sign activation's threshold is 0: both centres are the same window
    binary = NetworkSpec(sizes=(n - 1, 4), ste_window=0.3, ste_center="thresholds")
    assert binary.ste_center is SteCenter.THRESHOLDS
    np.testing.assert_array_equal(ste_mask(z, binary, n),
                                  (np.abs(z) <= 3.0).astype(float))


def test_standardized_images_are_centred_ternary_pixels():
    d = load_dataset("digits", Encoding.TERNARY, seed=0, standardize_images=True)
    raw = load_dataset("digits", Encoding.TERNARY, seed=0)
    assert set(np.unique(d.x_train)) == {-1.0, 0.0, 1.0} and d.standardized
    assert not raw.standardized and set(np.unique(raw.x_train)) <= {0.0, 1.0}
    np.testing.assert_array_equal(d.y_test, raw.y_test)          # same split
    # a pixel constant over the training part (digits' corner) is 0, never driven
    assert (d.x_train[:, 0] == 0).all() and (d.x_test[:, 0] == 0).all()
    # centred: ink below average drives -1 somewhere in most images
    assert (d.x_train == -1).any(axis=1).mean() > 0.9
    cfg = TrainConfig(dataset="digits", rule="gxnor", standardize_images=True,
                      ste_center="thresholds", ste_window=0.15, tile_rows=32, tile_cols=32)
    np.testing.assert_array_equal(load_data(cfg).x_train, d.x_train)
    net = build_network(cfg, d)
    assert net.spec.ste_center is SteCenter.THRESHOLDS and net.spec.ste_window == 0.15
    assert cfg.record()["ste_center"] == "thresholds"
