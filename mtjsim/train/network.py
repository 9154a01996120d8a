"""Multi-layer perceptrons whose signed weights are pairs of MTJs on tiled arrays.

A weight ``w`` in {-1, 0, +1} is two cells of one row in neighbouring columns (differential
columns; the two-MTJ ternary synapse)::

    row i ──┬── MTJ+ ──  column 2k   (I+)      w = +1: (P, AP)    w = -1: (AP, P)
            └── MTJ- ──  column 2k+1 (I-)      w =  0: (AP, AP)   ((P, P) also reads 0)

so ``w = s- - s+`` with states 0 = P, 1 = AP, and the neuron's pre-activation is the
difference of its two column currents: ``I+ - I- = sum_i V_i w_i dG`` (``dG = G_P - G_AP``,
with the access transistor in series for 1T1R). Every one-state move of a weight is one
device switching: towards 0 a SET (the P device to AP), away from 0 a RESET (one AP device to
P). A binary flip (+1 -> -1) is SET then RESET.

A layer with ``n_in`` inputs, ``n_bias`` bias rows (input 1) and ``n_out`` neurons is tiled
over arrays of ``tile_rows x tile_cols`` cells: row blocks of ``tile_rows`` inputs, column
blocks of ``tile_cols // 2`` neurons. Partial tiles leave rows at 0 V and columns unused
(cells in AP, never written). Tiles of one column block add their differential currents:
the partial sums of a tiled layer.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.devices.variation import Variation
from mtjsim.validation import check_int, check_range


class WeightKind(enum.Enum):
    BINARY = "binary"      # {-1, +1}
    TERNARY = "ternary"    # {-1, 0, +1}


class SteCenter(enum.Enum):
    """Where the straight-through window of a hidden activation sits."""

    ZERO = "zero"              # |z| <= w sqrt(rows): one window around 0
    THRESHOLDS = "thresholds"  # ||z| - t sqrt(rows)| <= w sqrt(rows): GXNOR, around +-t


def encode_pairs(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s_plus, s_minus) states of the two MTJs of each weight (0 = P, 1 = AP)."""
    w = np.asarray(w)
    if not np.isin(w, (-1, 0, 1)).all():
        raise ValueError("weights: every entry must be -1, 0 or +1")
    return (w != 1).astype(np.int8), (w != -1).astype(np.int8)


def decode_pairs(s_plus: np.ndarray, s_minus: np.ndarray) -> np.ndarray:
    return s_minus.astype(np.int8) - s_plus.astype(np.int8)


def delta_g_s(spec: ArraySpec) -> float:
    """G_P - G_AP at zero bias, siemens, with the access transistor's on-resistance (1T1R)."""
    d = spec.device
    r_on = spec.transistor.r_on_ohm(spec.v_gate_v) if spec.kind is ArrayKind.ONE_T_ONE_R else 0.0
    return 1.0 / (d.r_p_ohm + r_on) - 1.0 / (d.r_ap0_ohm + r_on)


@dataclass
class Tile:
    """One physical array holding rows ``r0:r1`` and neurons ``n0:n1`` of a layer."""

    layer: int
    index: int               # within the layer (row block major)
    r0: int
    r1: int
    n0: int
    n1: int
    xbar: Crossbar

    @property
    def name(self) -> str:
        return f"L{self.layer}T{self.index}"

    @property
    def shape_used(self) -> tuple[int, int]:
        return self.r1 - self.r0, 2 * (self.n1 - self.n0)

    def weights(self) -> np.ndarray:
        s = self.xbar.states
        n = self.n1 - self.n0
        return decode_pairs(s[:self.r1 - self.r0, 0:2 * n:2], s[:self.r1 - self.r0, 1:2 * n:2])

    def set_weights(self, w: np.ndarray) -> None:
        sp, sm = encode_pairs(w)
        s = np.ones(self.xbar.spec.shape, dtype=np.int8)
        n = self.n1 - self.n0
        s[:self.r1 - self.r0, 0:2 * n:2] = sp
        s[:self.r1 - self.r0, 1:2 * n:2] = sm
        self.xbar.states = s


@dataclass
class ArrayLayer:
    index: int
    n_in: int
    n_bias: int
    n_out: int
    tiles: list[Tile]
    grid: tuple[int, int]        # (row blocks, column blocks)

    @property
    def n_rows(self) -> int:
        return self.n_in + self.n_bias

    def weights(self) -> np.ndarray:
        w = np.zeros((self.n_rows, self.n_out), dtype=np.int8)
        for t in self.tiles:
            w[t.r0:t.r1, t.n0:t.n1] = t.weights()
        return w

    def set_weights(self, w: np.ndarray) -> None:
        w = np.asarray(w)
        if w.shape != (self.n_rows, self.n_out):
            raise ValueError(f"weights of layer {self.index}: shape {w.shape}, must be "
                             f"{(self.n_rows, self.n_out)} (inputs + bias rows, neurons)")
        for t in self.tiles:
            t.set_weights(w[t.r0:t.r1, t.n0:t.n1])

    def with_bias(self, a: np.ndarray) -> np.ndarray:
        return np.hstack([a, np.ones((a.shape[0], self.n_bias))])


@dataclass(frozen=True)
class NetworkSpec:
    """Layer sizes ``(inputs, hidden..., outputs)``, weight kind and the tile size."""

    sizes: tuple[int, ...]
    weight_kind: WeightKind = WeightKind.BINARY
    n_bias: int = 1
    tile_rows: int = 15
    tile_cols: int = 15
    ternary_act_threshold: float = 0.3     # hidden ternary activation: |z| > t sqrt(n_rows)
    ste_window: float = 1.0                # straight-through half-width, units of sqrt(n_rows)
    ste_center: SteCenter = SteCenter.ZERO  # window around 0 or around the thresholds

    def __post_init__(self):
        if not isinstance(self.ste_center, SteCenter):
            object.__setattr__(self, "ste_center", SteCenter(self.ste_center))
        if len(self.sizes) < 2:
            raise ValueError(f"sizes={self.sizes}: need at least (inputs, outputs)")
        for k, n in enumerate(self.sizes):
            check_int(f"sizes[{k}]", n, lo=1, hi=100_000)
        if not isinstance(self.weight_kind, WeightKind):
            raise ValueError(f"weight_kind={self.weight_kind!r}: must be one of "
                             f"{[k.value for k in WeightKind]}")
        check_int("n_bias", self.n_bias, lo=0, hi=64)
        check_int("tile_rows", self.tile_rows, lo=1, hi=1024)
        check_int("tile_cols", self.tile_cols, lo=2, hi=1024)
        check_range("ternary_act_threshold", self.ternary_act_threshold, lo=0, hi=10,
                    typical="0.2 to 0.5")
        check_range("ste_window", self.ste_window, lo=0, lo_open=True, hi=100, typical="1")


class ArrayNetwork:
    """The weights of an MLP as the states of its tiles' crossbars (``Crossbar.states``):
    ``weights()`` always decodes them, so whatever a write left in the arrays is the network."""

    def __init__(self, spec: NetworkSpec, array: ArraySpec, *, variation: Variation = Variation(),
                 device_seed: int = 0):
        if array.shape != (spec.tile_rows, spec.tile_cols):
            array = array.replace(rows=spec.tile_rows, cols=spec.tile_cols)
        self.spec = spec
        self.array = array
        self.layers: list[ArrayLayer] = []
        per_tile = spec.tile_cols // 2
        k_dev = 0
        for li, (n_in, n_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
            n_rows = n_in + spec.n_bias
            rb, cb = math.ceil(n_rows / spec.tile_rows), math.ceil(n_out / per_tile)
            tiles = []
            for a in range(rb):
                for b in range(cb):
                    r0, n0 = a * spec.tile_rows, b * per_tile
                    xb = Crossbar(array, np.ones(array.shape, dtype=np.int8), variation=variation,
                                  device_seed=device_seed + k_dev)
                    k_dev += 1
                    tiles.append(Tile(li, len(tiles), r0, min(r0 + spec.tile_rows, n_rows), n0,
                                      min(n0 + per_tile, n_out), xb))
            self.layers.append(ArrayLayer(li, n_in, spec.n_bias, n_out, tiles, (rb, cb)))

    @property
    def tiles(self) -> list[Tile]:
        return [t for layer in self.layers for t in layer.tiles]

    def weights(self) -> list[np.ndarray]:
        return [layer.weights() for layer in self.layers]

    def set_weights(self, weights) -> None:
        for layer, w in zip(self.layers, weights):
            layer.set_weights(w)

    def states(self) -> dict[str, np.ndarray]:
        return {t.name: t.xbar.states.copy() for t in self.tiles}

    def load_states(self, states: dict) -> None:
        for t in self.tiles:
            t.xbar.states = np.asarray(states[t.name], dtype=np.int8).copy()

    def random_weights(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Uniform random binary weights (ternary nets: -1, 0, +1 equally likely)."""
        vals = [-1, 1] if self.spec.weight_kind is WeightKind.BINARY else [-1, 0, 1]
        return [rng.choice(vals, size=(layer.n_rows, layer.n_out)).astype(np.int8)
                for layer in self.layers]

    def tiling(self) -> dict:
        """The tiling, as it goes into the run's report."""
        return {
            "tile_rows": self.spec.tile_rows, "tile_cols": self.spec.tile_cols,
            "n_tiles": len(self.tiles),
            "cells_used": int(sum(np.prod(t.shape_used) for t in self.tiles)),
            "cells_total": len(self.tiles) * self.spec.tile_rows * self.spec.tile_cols,
            "layers": [{
                "layer": layer.index, "inputs": layer.n_in, "bias_rows": layer.n_bias,
                "neurons": layer.n_out, "weights": layer.n_rows * layer.n_out,
                "grid_row_blocks": layer.grid[0], "grid_col_blocks": layer.grid[1],
                "tiles": [{"name": t.name, "rows": [t.r0, t.r1], "neurons": [t.n0, t.n1],
                           "cells_used": list(t.shape_used)} for t in layer.tiles],
            } for layer in self.layers],
        }


# --- activations -------------------------------------------------------------------------
def activation(z: np.ndarray, spec: NetworkSpec, n_rows: int) -> np.ndarray:
    """Hidden activations from the differential sense: sign for binary networks (a
    comparator: ties go to +1), two comparators at +-threshold for ternary networks."""
    if spec.weight_kind is WeightKind.BINARY:
        return np.where(z >= 0, 1.0, -1.0)
    th = spec.ternary_act_threshold * math.sqrt(n_rows)
    return np.where(z > th, 1.0, np.where(z < -th, -1.0, 0.0))


def ste_mask(z: np.ndarray, spec: NetworkSpec, n_rows: int) -> np.ndarray:
    """Straight-through estimator of the activation's derivative: 1 inside the window.

    ``ZERO``: ``|z| <= w sqrt(rows)``. ``THRESHOLDS`` (GXNOR's rectangular approximation of
    the ternary step's derivative, Deng et al. 2018): windows of half-width ``w sqrt(rows)``
    centred on the comparator thresholds, ``||z| - t sqrt(rows)| <= w sqrt(rows)``; only
    neurons near a decision threshold pass a gradient. For a sign activation (t = 0) the two
    are the same window."""
    w = spec.ste_window * math.sqrt(n_rows)
    if spec.ste_center is SteCenter.THRESHOLDS and spec.weight_kind is WeightKind.TERNARY:
        th = spec.ternary_act_threshold * math.sqrt(n_rows)
        return (np.abs(np.abs(z) - th) <= w).astype(float)
    return (np.abs(z) <= w).astype(float)
