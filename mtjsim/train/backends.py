"""Where reads and writes happen: the circuit (``mtjsim.ops.read`` / ``write`` on an engine)
or ideal software (exact dot products, every requested switch happens with exactly its
probability, nothing else moves). The loop is the same for both, so the ideal-write run is
the software baseline of the same network, rule and data.

The circuit backend is the write-back: after every program the tile's states are the
``WriteResult.states_after`` the engine returned (failed writes and half-select disturbs
included), never the intended update.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np

from mtjsim.engines import Engine
from mtjsim.ops.read import ReadSettings, read
from mtjsim.ops.write import Direction, write
from mtjsim.train.network import ArrayLayer, Tile, delta_g_s
from mtjsim.train.programs import SwitchRequest, WriteSettings, build_program, split_levels
from mtjsim.validation import check_range


@dataclass
class WriteCounters:
    """Device- and weight-level write statistics, summed over updates."""

    updates: int = 0
    programs: int = 0              # write programs run (circuit writes)
    pulses: int = 0
    requested_switches: int = 0    # target cells (a cell per requested device step)
    expected_switches: float = 0.0  # sum of requested probabilities
    realized_switches: int = 0     # targets that reached their target state
    failed_writes: int = 0         # deterministic targets left in the wrong state
    disturbs: int = 0              # non-target cells that switched
    intended_flips: float = 0.0    # expected weight changes the rule asked for
    realized_flips: int = 0        # weights whose value changed
    energy_j: float = 0.0          # update energy from the write reports
    pulse_time_s: float = 0.0      # simulated duration of the programs
    write_wall_s: float = 0.0
    read_wall_s: float = 0.0

    def add(self, other: "WriteCounters") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ProgramRecord:
    """What one program did to one tile (kept when ``keep_records``)."""

    tile: str
    direction: Direction
    targets: np.ndarray
    p_col: np.ndarray
    states_before: np.ndarray
    states_after: np.ndarray
    write_errors: np.ndarray
    disturbed: np.ndarray


class IdealBackend:
    """Software: exact reads, writes that do exactly what was requested (with the requested
    probability), no disturbs, no energy."""

    name = "ideal"

    def __init__(self, seed: int, *, levels: int = 1, keep_records: bool = False):
        self.rng = np.random.default_rng(seed)
        self.levels = levels
        self.keep_records = keep_records
        self.records: list[ProgramRecord] = []

    def forward(self, layer: ArrayLayer, a: np.ndarray, counters: WriteCounters) -> np.ndarray:
        return layer.with_bias(a) @ layer.weights().astype(float)

    def execute(self, tile: Tile, req: SwitchRequest, counters: WriteCounters) -> None:
        tgt = req.direction.target_state
        for targets, p_col in split_levels(req, self.levels):
            before = tile.xbar.states.copy()
            p = np.where(targets, np.nan_to_num(p_col)[None, :], 0.0)
            hit = targets & (self.rng.random(targets.shape) < p)
            after = np.where(hit, tgt, before).astype(np.int8)
            tile.xbar.states = after
            _count(counters, targets, p, before, after, tgt, np.zeros_like(targets), 0.0, 0.0)
            counters.pulses += int(targets.any(axis=0).sum())
            if self.keep_records:
                self.records.append(_record(tile, req.direction, targets, p_col, before, after))

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


class CircuitBackend:
    """Reads and writes solved by an engine (ngspice or fast): one read call per tile per
    batch of samples, one column-parallel program per (tile, direction, level)."""

    name = "circuit"

    def __init__(self, seed: int, *, engine: Engine = Engine.FAST, v_read_v: float = 0.1,
                 settings: WriteSettings = WriteSettings(), keep_records: bool = False):
        check_range("v_read_v", v_read_v, lo=0, lo_open=True, hi=1, typical="0.05 to 0.2")
        self.engine = Engine(engine)
        self.v_read_v = v_read_v
        self.settings = settings
        self.rng = np.random.default_rng(seed)
        self.keep_records = keep_records
        self.records: list[ProgramRecord] = []
        self.read_energy_j = 0.0
        # Fast engine: a batch of samples is one matrix product with the devices linearized
        # at the read voltage; vectors whose estimated error exceeds 0.5 % are solved exactly
        self.read_settings = ReadSettings(fast_mode="checked", fast_bias_v=v_read_v,
                                          fast_tol=5e-3)

    def forward(self, layer: ArrayLayer, a: np.ndarray, counters: WriteCounters) -> np.ndarray:
        t0 = time.perf_counter()
        ab = layer.with_bias(a)
        z = np.zeros((a.shape[0], layer.n_out))
        for t in layer.tiles:
            rows = t.xbar.spec.rows
            v = np.zeros((a.shape[0], rows))
            v[:, :t.r1 - t.r0] = ab[:, t.r0:t.r1] * self.v_read_v
            res = read(t.xbar, v, engine=self.engine, settings=self.read_settings)
            n = t.n1 - t.n0
            diff = res.i_out_a[:, 0:2 * n:2] - res.i_out_a[:, 1:2 * n:2]
            z[:, t.n0:t.n1] += diff / (self.v_read_v * delta_g_s(t.xbar.spec))
            if getattr(res, "energy", None) is not None:
                self.read_energy_j += float(res.energy.energy_j)
        counters.read_wall_s += time.perf_counter() - t0
        return z

    def execute(self, tile: Tile, req: SwitchRequest, counters: WriteCounters) -> None:
        tgt = req.direction.target_state
        for targets, p_col in split_levels(req, self.settings.levels):
            t0 = time.perf_counter()
            planned = build_program(tile.xbar, req.direction, targets, p_col, self.settings)
            seed = int(self.rng.integers(0, 2 ** 31 - 1))
            r = write(tile.xbar, planned.program, seed, engine=self.engine)
            before = tile.xbar.states.copy()
            tile.xbar.states = np.asarray(r.states_after, dtype=np.int8).copy()
            energy = float(r.energy.energy_j) if getattr(r, "energy", None) is not None else 0.0
            p = np.where(targets, np.nan_to_num(p_col)[None, :], 0.0)
            _count(counters, targets, p, before, tile.xbar.states, tgt, r.disturbed, energy,
                   planned.program.duration_s)
            counters.programs += 1
            counters.pulses += len(planned.program.pulses())
            counters.write_wall_s += time.perf_counter() - t0
            if self.keep_records:
                self.records.append(_record(tile, req.direction, targets, p_col, before,
                                            tile.xbar.states, r.write_errors, r.disturbed))

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def _count(c: WriteCounters, targets, p, before, after, tgt, disturbed, energy_j, duration_s):
    c.requested_switches += int(targets.sum())
    c.expected_switches += float(p[targets].sum())
    c.realized_switches += int((targets & (after == tgt) & (before != tgt)).sum())
    c.failed_writes += int((targets & (p >= 1.0) & (after != tgt)).sum())
    c.disturbs += int(np.asarray(disturbed).sum())
    c.energy_j += energy_j
    c.pulse_time_s += duration_s


def _record(tile, direction, targets, p_col, before, after, errors=None, disturbed=None):
    tgt = direction.target_state
    if errors is None:
        errors = targets & (after != tgt)
    if disturbed is None:
        disturbed = ~targets & (after != before)
    return ProgramRecord(tile.name, direction, targets.copy(), p_col.copy(), before.copy(),
                         np.asarray(after).copy(), np.asarray(errors).copy(),
                         np.asarray(disturbed).copy())
