"""Update rules on discrete weights (shared/PHYSICS.md, "Training rules that use switching
probability"), as plans of device steps; ``mtjsim.train.loop`` turns plans into writes.

Backward pass: softmax cross-entropy on the output pre-activations (scaled by
``1/sqrt(rows)``), straight-through estimator for the sign / ternary hidden activations, so
the gradient of layer l is the outer product ``a_{l-1}^T delta_l`` summed over the batch.

Plans: per layer a direction ``d`` (-1 down, +1 up, 0 none) and a chain of step
probabilities ``probs[k]``: step k is attempted only when step k-1 happened; a step is one
device switching (see ``mtjsim.train.network``: towards 0 a SET, away from 0 a RESET).

* Stochastic binary: a weight whose flip lowers the loss (``sign(g) == sign(w)``) flips with
  ``p = clip(lr |g| / rms(g), 0, 1)``; the flip is a stochastic SET (w -> 0) realized with
  P_sw = p, completed by a deterministic RESET (0 -> -w). Pairs left at 0 by a failed write or
  a disturb are brought back to sign(-g) deterministically.
* GXNOR ternary: ``dW = -lr g / rms(g)`` in state units, integer part k (deterministic steps)
  plus one more step in the sign of the remainder v with probability ``tanh(m |v|)``,
  clipped to the three states.
* Ex-situ binary: software training (BinaryConnect: real-valued shadow weights, binarized in
  the forward pass), then the binary weights are written to the arrays.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from mtjsim.train.network import NetworkSpec, WeightKind, activation, ste_mask


class Rule(enum.Enum):
    STOCHASTIC_BINARY = "stochastic-binary"
    GXNOR = "gxnor"
    EXSITU_BINARY = "exsitu-binary"

    @property
    def weight_kind(self) -> WeightKind:
        return WeightKind.TERNARY if self is Rule.GXNOR else WeightKind.BINARY


@dataclass
class Cache:
    inputs: list[np.ndarray]      # input of each layer (without bias columns)
    z: list[np.ndarray]           # pre-activation of each layer


@dataclass
class Plan:
    direction: list[np.ndarray]   # per layer (rows, out) in {-1, 0, +1}
    probs: list[np.ndarray]       # per layer (steps, rows, out)
    intended_flips: float         # expected number of weights that change


def forward(spec: NetworkSpec, layer_forward, x: np.ndarray) -> Cache:
    """Forward pass; ``layer_forward(k, a)`` returns layer k's pre-activations (circuit reads
    or exact products)."""
    a = x
    inputs, zs = [], []
    n_layers = len(spec.sizes) - 1
    for k in range(n_layers):
        inputs.append(a)
        z = layer_forward(k, a)
        zs.append(z)
        if k < n_layers - 1:
            a = activation(z, spec, spec.sizes[k] + spec.n_bias)
    return Cache(inputs, zs)


def output_scale(spec: NetworkSpec) -> float:
    return 1.0 / math.sqrt(spec.sizes[-2] + spec.n_bias)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def gradients(spec: NetworkSpec, cache: Cache, y: np.ndarray, weights) -> tuple[list, float]:
    """dLoss/dW of every layer (inputs + bias rows, out) for the batch, and the mean loss."""
    scale = output_scale(spec)
    logits = cache.z[-1] * scale
    prob = softmax(logits)
    n = len(y)
    loss = float(-np.log(np.maximum(prob[np.arange(n), y], 1e-12)).mean())
    onehot = np.zeros_like(prob)
    onehot[np.arange(n), y] = 1
    delta = (prob - onehot) * scale / n
    grads = [None] * len(weights)
    for k in range(len(weights) - 1, -1, -1):
        a = cache.inputs[k]
        ab = np.hstack([a, np.ones((a.shape[0], spec.n_bias))])
        grads[k] = ab.T @ delta
        if k > 0:
            w = np.asarray(weights[k], dtype=float)[:spec.sizes[k]]
            delta = (delta @ w.T) * ste_mask(cache.z[k - 1], spec, spec.sizes[k - 1] + spec.n_bias)
    return grads, loss


def _normalized(g: np.ndarray) -> np.ndarray:
    rms = math.sqrt(float(np.mean(g * g)))
    return g / rms if rms > 0 else g


def stochastic_binary_plan(weights, grads, lr: float, p_min: float = 0.0) -> Plan:
    dirs, probs, intended = [], [], 0.0
    for w, g in zip(weights, grads):
        gn = _normalized(g)
        p = np.clip(lr * np.abs(gn), 0, 1)
        flip = (np.sign(g) == np.sign(w)) & (w != 0) & (p > p_min)
        zero = w == 0
        d = np.where(flip, -np.sign(w), 0)
        d = np.where(zero, np.where(g > 0, -1, 1), d).astype(np.int8)
        first = np.where(flip, p, np.where(zero, 1.0, 0.0))
        second = np.where(flip, 1.0, 0.0)
        dirs.append(d)
        probs.append(np.stack([first, second]))
        intended += float(first.sum())
    return Plan(dirs, probs, intended)


def gxnor_plan(weights, grads, lr: float, m: float = 3.0, p_min: float = 0.0) -> Plan:
    dirs, probs, intended = [], [], 0.0
    for w, g in zip(weights, grads):
        dw = -lr * _normalized(g)
        d = np.sign(dw).astype(np.int8)
        k = np.trunc(np.abs(dw))
        v = np.abs(dw) - k
        room = np.where(d > 0, 1 - w, np.where(d < 0, w + 1, 0)).astype(float)
        n_det = np.minimum(k, room)
        p_extra = np.where(n_det < room, np.tanh(m * v), 0.0)
        p_extra = np.where(p_extra > p_min, p_extra, 0.0)
        steps = np.zeros((3,) + w.shape)
        for s in range(3):
            steps[s] = np.where(s < n_det, 1.0, np.where(s == n_det, p_extra, 0.0))
        d = np.where(steps[0] > 0, d, 0).astype(np.int8)
        dirs.append(d)
        probs.append(steps)
        intended += float(steps[0].sum())
    return Plan(dirs, probs, intended)


# --- ex-situ: software training of a binary network ---------------------------------------
def software_forward(spec: NetworkSpec, weights, x: np.ndarray) -> Cache:
    return forward(spec, lambda k, a: np.hstack([a, np.ones((a.shape[0], spec.n_bias))])
                   @ np.asarray(weights[k], dtype=float), x)


def predict(spec: NetworkSpec, weights, x: np.ndarray) -> np.ndarray:
    return software_forward(spec, weights, x).z[-1].argmax(axis=1)


def train_binary_software(spec: NetworkSpec, x, y, *, epochs: int, seed: int, lr: float = 0.01,
                          batch_size: int = 16) -> list[np.ndarray]:
    """BinaryConnect with Adam: shadow weights in [-1, 1], sign() in the forward pass,
    straight-through gradients. Returns the binary weights (int8, {-1, +1})."""
    rng = np.random.default_rng(seed)
    shadow = [rng.uniform(-1, 1, (n_in + spec.n_bias, n_out))
              for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:])]
    m1 = [np.zeros_like(w) for w in shadow]
    m2 = [np.zeros_like(w) for w in shadow]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            wb = [np.where(w >= 0, 1, -1).astype(np.int8) for w in shadow]
            cache = software_forward(spec, wb, x[idx])
            grads, _ = gradients(spec, cache, y[idx], wb)
            step += 1
            for k, g in enumerate(grads):
                m1[k] = 0.9 * m1[k] + 0.1 * g
                m2[k] = 0.999 * m2[k] + 0.001 * g * g
                mh = m1[k] / (1 - 0.9 ** step)
                vh = m2[k] / (1 - 0.999 ** step)
                shadow[k] = np.clip(shadow[k] - lr * mh / (np.sqrt(vh) + 1e-8), -1, 1)
    return [np.where(w >= 0, 1, -1).astype(np.int8) for w in shadow]
