"""Where reads and writes happen: the circuit (``mtjsim.ops.read`` / ``write`` on an engine)
or ideal software (exact dot products, every requested switch happens with exactly its
probability, nothing else moves). The loop is the same for both, so the ideal-write run is
the software baseline of the same network, rule and data.

The circuit backend is the write-back: after every program the tile's states are the
``WriteResult.states_after`` the engine returned (failed writes and half-select disturbs
included), never the intended update.

With ``WriteSettings.pulse_by_pulse`` (the default) a program's pulses run as consecutive
writes, one transient per pulse, each from the states the previous one returned and with its
own thresholds: only the cells biased by *that* pulse carry the switching model, which makes
ngspice about 3 to 5 times faster on 15x15 V/2 programs (docs/training.md, "ngspice in the
loop"). Thermal activation is memoryless, so fresh thresholds per pulse give the same
switching statistics as one threshold over the whole program; a cell is above I_c0 only in
the one pulse that selects both its row and its column.

On the fast engine the 1T1R tiles' programs of a phase run batched across tiles
(``_run_tiles``): the k-th program of every tile is planned and written in one call, with
what each would get on its own. Tiles are independent circuits, and a 32x32 program alone
cost ~30 ms, nearly all of it per call, not per cell.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import time
from dataclasses import dataclass, fields
from types import SimpleNamespace

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, Crossbar
from mtjsim.engines import Engine
from mtjsim.engines.fast import FastReadEngine, one_blas_thread
from mtjsim.engines.fast_write import quasi_static_write
from mtjsim.ops.fast_ops import engine_options, fast_read
from mtjsim.ops.read import ReadSettings, read
from mtjsim.ops.write import (Direction, PulseProgram, cell_thresholds,
                              cell_thresholds_of_pulses, pulse_dynamic_cells, write)
from mtjsim.train.network import ArrayLayer, Tile, decode_pairs, delta_g_s
from mtjsim.train.programs import (SwitchRequest, WriteSettings, build_program, build_programs,
                                   split_levels)
from mtjsim.validation import check_int, check_range


class ReadPhases(enum.Enum):
    """How a layer's signed inputs reach the rows of its tiles.

    SIGNED: one read, a negative input is a negative row voltage. TWO_PHASE: two reads of
    non-negative row voltages, the positive parts, then the magnitudes of the negative parts,
    and the sense subtracts the second column currents from the first (a vector with no
    negative input is one read). On 1T1R arrays a negative row (source-line) voltage turns
    the access transistor round: its source moves to the MTJ side and its gate drive rises,
    so a signed read is 6-24 % off the map linearized at the read bias, which made nearly
    every vector an exact solve; each phase of a two-phase read is within 0.2-0.7 %
    (docs/training.md)."""

    SIGNED = "signed"
    TWO_PHASE = "two-phase"


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

    def execute_many(self, items: list[tuple[Tile, "SwitchRequest"]],
                     counters: WriteCounters) -> None:
        for tile, req in items:
            self.execute(tile, req, counters)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def close(self) -> None:
        """Nothing to stop (the same interface as ``CircuitBackend``)."""


class CircuitBackend:
    """Reads and writes solved by an engine (ngspice or fast): one read call per tile per
    batch of samples, one column-parallel program per (tile, direction, level)."""

    name = "circuit"

    def __init__(self, seed: int, *, engine: Engine = Engine.FAST, v_read_v: float = 0.1,
                 settings: WriteSettings = WriteSettings(), keep_records: bool = False,
                 profile: bool = False, workers: int = 2,
                 read_phases: ReadPhases = ReadPhases.SIGNED, read_tol: float = 5e-3,
                 sense_trim: bool = False):
        check_range("v_read_v", v_read_v, lo=0, lo_open=True, hi=1, typical="0.05 to 0.2")
        self.engine = Engine(engine)
        self.v_read_v = v_read_v
        self.read_phases = ReadPhases(read_phases)
        self.settings = settings
        self.rng = np.random.default_rng(seed)
        self.keep_records = keep_records
        self.records: list[ProgramRecord] = []
        self.read_energy_j = 0.0
        # profile: one dict per program (benchmarks/bench_train_ngspice.py prints them)
        self.profile: list[dict] | None = [] if profile else None
        # tiles read and written concurrently, the results do not depend on it: on the fast
        # engine in ``workers`` processes, each keeping the read engines of its tiles
        # (``_shards``: reads and writes of small arrays are many small array operations
        # that hold the GIL); ngspice reads and writes in threads (ngspice runs in its own
        # processes)
        check_int("workers", workers, lo=1, hi=64)
        self.workers = workers
        self._threads = None
        self._shard_pools: list | None = None
        self._shard_sent: list[dict] = []        # per shard: tile name -> the Crossbar sent
        # Fast engine: a batch of samples is one matrix product with the devices linearized
        # at the read voltage; vectors whose estimated error exceeds read_tol (relative to
        # their largest column current) are solved exactly
        self.read_settings = ReadSettings(fast_mode="checked", fast_bias_v=v_read_v,
                                          fast_tol=read_tol)
        # one fast read engine per tile (its factorization and effective matrix follow the
        # tile's states): a network has more tiles than the module's cache of recent engines
        self._read_engines: dict[str, FastReadEngine] = {}
        # the sense's gain trim (``sense_gain``): 1 = the zero-bias delta_g_s normalization
        self.sense_trim = sense_trim

    def forward(self, layer: ArrayLayer, a: np.ndarray, counters: WriteCounters) -> np.ndarray:
        t0 = time.perf_counter()
        ab = layer.with_bias(a)
        if self.engine is Engine.FAST and self.workers > 1 and len(layer.tiles) > 1:
            z = self._forward_in_shards(layer, ab)
        else:
            z = np.zeros((a.shape[0], layer.n_out))
            parallel = self.workers > 1 and len(layer.tiles) > 1        # ngspice: threads
            # BLAS held to one thread as in the shards: on small arrays its threads cost
            # more than they give (a 32x32 MNIST forward pass 5.3 s with them, 3.0 s without)
            with one_blas_thread():
                reads = self._map(lambda t: self._read(t, _row_inputs(ab, t, self.v_read_v)),
                                  layer.tiles, parallel)
            for t, i_out in zip(layer.tiles, reads):
                _add_tile_output(z, i_out, t, self.v_read_v)
        if self.sense_trim:
            z /= sense_gain(layer.tiles[0].xbar.spec, self.v_read_v)
        counters.read_wall_s += time.perf_counter() - t0
        return z

    def _forward_in_shards(self, layer: ArrayLayer, ab: np.ndarray) -> np.ndarray:
        """``forward`` on the fast engine in the shard processes (``_read_shard``). A
        column block of tiles goes to one shard, which sums its tiles' outputs in the
        layer's order, so z is exactly the one-process z."""
        shards = self._shards()
        blocks = sorted({t.n0 for t in layer.tiles})
        shard_of = {n0: k % len(shards) for k, n0 in enumerate(blocks)}
        parts: list[list] = [[] for _ in shards]
        for t in layer.tiles:
            k = shard_of[t.n0]
            new = self._shard_sent[k].get(t.name) is not t.xbar
            self._shard_sent[k][t.name] = t.xbar
            parts[k].append(_TileRead(t.name, t.xbar if new else None, t.xbar.states,
                                      t.r0, t.r1, t.n0, t.n1))
        futures = [pool.submit(_read_shard, (ab, part, self.v_read_v, self.read_settings,
                                             self.read_phases, layer.n_out))
                   for pool, part in zip(shards, parts) if part]
        return sum(f.result() for f in futures)     # disjoint columns: exact

    def _read(self, tile: Tile, v: np.ndarray) -> np.ndarray:
        """Column currents (batch, cols) of ``tile`` for row voltages ``v``, in one read or,
        with TWO_PHASE and a negative input, two (``ReadPhases``)."""
        return _phased(lambda u: self._read_once(tile, u), v, self.read_phases,
                       tile.xbar.spec.cols)

    def _engine_for(self, tile: Tile) -> FastReadEngine:
        eng = self._read_engines.get(tile.name)
        if eng is None or eng.xbar is not tile.xbar:
            eng = FastReadEngine(tile.xbar, **engine_options(self.read_settings))
            self._read_engines[tile.name] = eng
        return eng

    def _map(self, fn, items, parallel: bool):
        """``[fn(x) for x in items]``, ``workers`` at a time when ``parallel`` (BLAS held to
        one thread meanwhile: the threads are the parallelism)."""
        if not parallel:
            return [fn(x) for x in items]
        if self._threads is None:        # kept: new threads per call would each get their own
            from concurrent.futures import ThreadPoolExecutor       # malloc arena
            self._threads = ThreadPoolExecutor(max_workers=self.workers)
        with one_blas_thread():
            return list(self._threads.map(fn, items))

    def _shards(self) -> list:
        """``workers`` worker processes, an executor of one process each, so that a tile's
        reads always reach the same process, which keeps its read engine (started on first
        use, by a fork server: the parent holds BLAS threads and read engines)."""
        if self._shard_pools is None:
            import multiprocessing
            import weakref
            from concurrent.futures import ProcessPoolExecutor
            ctx = multiprocessing.get_context("forkserver")
            self._shard_pools = [ProcessPoolExecutor(max_workers=1, mp_context=ctx)
                                 for _ in range(self.workers)]
            self._shard_sent = [{} for _ in self._shard_pools]
            weakref.finalize(self, _shutdown, self._shard_pools)
        return self._shard_pools

    def _in_processes(self, fn, payloads: list) -> list:
        """``[fn(p) for p in payloads]`` in the shard processes, in turn."""
        shards = self._shards()
        futures = [shards[k % len(shards)].submit(fn, p) for k, p in enumerate(payloads)]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Stop the worker processes and threads (also done when the backend is collected)."""
        if self._shard_pools is not None:
            _shutdown(self._shard_pools)
            self._shard_pools = None
        if self._threads is not None:
            self._threads.shutdown()
            self._threads = None

    def _read_once(self, tile: Tile, v: np.ndarray) -> np.ndarray:
        if self.engine is Engine.FAST:
            return fast_read(tile.xbar, v, settings=self.read_settings,
                             engine=self._engine_for(tile), cell_voltages=False).i_out_a
        res = read(tile.xbar, v, engine=self.engine, settings=self.read_settings)
        if getattr(res, "energy", None) is not None:
            self.read_energy_j += float(res.energy.energy_j)
        return res.i_out_a

    def execute(self, tile: Tile, req: SwitchRequest, counters: WriteCounters) -> None:
        self.execute_many([(tile, req)], counters)

    def execute_many(self, items: list[tuple[Tile, SwitchRequest]],
                     counters: WriteCounters) -> None:
        """The requests of one phase, in order. Same result as ``execute`` on each item in
        turn (the seeds are drawn in that order first); requests on different tiles
        (independent circuits) run concurrently, ``workers`` at a time, each tile's own
        requests in their order."""
        t0 = time.perf_counter()
        plans = [split_levels(req, self.settings.levels) for _, req in items]
        seeds = [[int(self.rng.integers(0, 2 ** 31 - 1)) for _ in lv] for lv in plans]
        groups: dict[int, list[int]] = {}
        for k, (tile, _) in enumerate(items):
            groups.setdefault(id(tile), []).append(k)
        results: dict[int, tuple] = {}

        args = (self.settings, self.engine, self.keep_records, self.profile is not None)
        parallel = self.workers > 1 and len(groups) > 1
        tiles = [items[ks[0]][0] for ks in groups.values()]
        if self._in_batches(tiles):
            # every tile's k-th program in one engine call (_run_tiles), the tiles split
            # between the workers
            work = [(t, [(items[k][1], plans[k], seeds[k]) for k in ks])
                    for t, ks in zip(tiles, groups.values())]
            n = self.workers if parallel else 1
            parts = [work[i::n] for i in range(n)]
            keys = [list(groups.values())[i::n] for i in range(n)]
            payloads = [(part, self.settings, self.keep_records) for part in parts]
            done = (self._in_processes(_run_tiles, payloads) if n > 1
                    else map(_run_tiles, payloads))
            for part, ks_part, out in zip(parts, keys, done):
                for (t, _), ks, (res, states) in zip(part, ks_part, out):
                    t.xbar.states = states
                    results.update(zip(ks, res))
        elif parallel and self.engine is Engine.FAST:
            # processes: the write engine is many small array operations, which hold the
            # GIL (threads made a 61-tile MNIST update's writes slower, 40 -> 44 s)
            payloads = [(t, [(items[k][1], plans[k], seeds[k]) for k in ks]) + args
                        for t, ks in zip(tiles, groups.values())]
            for t, ks, (res, states) in zip(tiles, groups.values(),
                                            self._in_processes(_run_tile, payloads)):
                t.xbar.states = states
                results.update(zip(ks, res))
        else:
            def run(ks):
                for k in ks:
                    results[k] = _run_request(*items[k], plans[k], seeds[k], *args)

            self._map(run, list(groups.values()), parallel)
        for k in range(len(items)):
            c, records, profile = results[k]
            c.write_wall_s = 0.0
            counters.add(c)
            if self.keep_records:
                self.records.extend(records)
            if self.profile is not None:
                self.profile.extend(profile)
        counters.write_wall_s += time.perf_counter() - t0

    def _in_batches(self, tiles) -> bool:
        """Whether the tiles' programs run batched across tiles (``_run_tiles``): on the fast
        engine's 1T1R column writes, unless per-program profiles are asked."""
        return (self.engine is Engine.FAST and self.profile is None
                and all(t.xbar.spec.kind is ArrayKind.ONE_T_ONE_R for t in tiles))

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def _shutdown(pools) -> None:
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


# --- reads -----------------------------------------------------------------------------------
def _row_inputs(ab: np.ndarray, tile, v_read_v: float) -> np.ndarray:
    """The row voltages of ``tile`` (anything with ``xbar``, ``r0``, ``r1``) for the layer's
    inputs with their bias column, (batch, rows); rows past the tile's share stay at 0 V."""
    v = np.zeros((ab.shape[0], tile.xbar.spec.rows))
    v[:, :tile.r1 - tile.r0] = ab[:, tile.r0:tile.r1] * v_read_v
    return v


@functools.lru_cache(maxsize=16)
def sense_gain(spec, v_read_v: float, n_tiles: int = 4, n_vectors: int = 64,
               seed: int = 0) -> float:
    """The gain a trimmed sense divides by: a tile's outputs (``_add_tile_output``) against
    the ideal dot products, least squares over all neurons of ``n_tiles`` calibration tiles
    with seeded random states, ``n_vectors`` random inputs each (every row driven with
    probability 1/2), solved exactly on the fast engine: what a designer trims the sense
    amplifiers' gain to, once per array design. The zero-bias normalization alone leaves a
    32x32 1T1R tile of the 40 nm device at ~0.8 (the MTJs at the read bias, the
    transistor's on-resistance, the lines; 0.76-0.80 from one random tile to another),
    which costs GXNOR on MNIST about a point (docs/training.md)."""
    rng = np.random.default_rng(seed)
    n = spec.cols // 2
    num = den = 0.0
    for _ in range(n_tiles):
        xbar = Crossbar(spec, rng.integers(0, 2, spec.shape).astype(np.int8))
        x = (rng.random((n_vectors, spec.rows)) < 0.5).astype(float)
        i_out = fast_read(xbar, x * v_read_v, settings=ReadSettings(),
                          cell_voltages=False).i_out_a
        z = np.zeros((n_vectors, n))
        _add_tile_output(z, i_out, SimpleNamespace(xbar=xbar, n0=0, n1=n), v_read_v)
        ideal = x @ decode_pairs(xbar.states[:, 0:2 * n:2], xbar.states[:, 1:2 * n:2])
        num += float((z * ideal).sum())
        den += float((ideal * ideal).sum())
    return num / den


def _add_tile_output(z: np.ndarray, i_out: np.ndarray, tile, v_read_v: float) -> None:
    """Add ``tile``'s share of the layer's outputs: each pair's column-current difference
    over what a full weight step gives at the read voltage."""
    n = tile.n1 - tile.n0
    diff = i_out[:, 0:2 * n:2] - i_out[:, 1:2 * n:2]
    z[:, tile.n0:tile.n1] += diff / (v_read_v * delta_g_s(tile.xbar.spec))


def _phased(read_once, v: np.ndarray, phases: ReadPhases, cols: int) -> np.ndarray:
    """Column currents (batch, cols) for row voltages ``v`` from ``read_once``, in one read
    or, with TWO_PHASE and a negative input, two (``ReadPhases``)."""
    if phases is ReadPhases.SIGNED or not (v < 0).any():
        return read_once(v)
    B = v.shape[0]
    both = np.concatenate([np.maximum(v, 0.0), np.maximum(-v, 0.0)])
    live = np.flatnonzero(both.max(axis=1) > 0)     # an all-zero phase carries 0 A
    i_out = np.zeros((2 * B, cols))
    if live.size:
        i_out[live] = read_once(both[live])
    return i_out[:B] - i_out[B:]


@dataclass
class _TileRead:
    """One tile's part of a shard's read (``_read_shard``)."""

    name: str
    xbar: object | None          # the Crossbar, the first time this shard reads the tile
    states: np.ndarray
    r0: int
    r1: int
    n0: int
    n1: int


#: In a shard process: each tile's Crossbar and read engine, kept between reads.
_SHARD_READERS: dict = {}


def _read_shard(payload) -> np.ndarray:
    """A shard's share of a layer's fast read: its tiles' outputs, summed in the layer's
    order into z (batch, n_out), zero in the other columns. Each tile's engine follows the
    states it is sent, as the backend's own engines do in one process."""
    ab, tiles, v_read_v, settings, phases, n_out = payload
    z = np.zeros((ab.shape[0], n_out))
    with one_blas_thread():
        for t in tiles:
            if t.xbar is not None:
                _SHARD_READERS[t.name] = FastReadEngine(t.xbar, **engine_options(settings))
            eng = _SHARD_READERS[t.name]
            eng.xbar.states = t.states
            t.xbar = eng.xbar
            i_out = _phased(lambda u: fast_read(eng.xbar, u, settings=settings, engine=eng,
                                                cell_voltages=False).i_out_a,
                            _row_inputs(ab, t, v_read_v), phases, eng.xbar.spec.cols)
            _add_tile_output(z, i_out, t, v_read_v)
    return z


@dataclass
class ProgramOutcome:
    """What the engine wrote for one program (over all of its writes)."""

    states_after: np.ndarray       # int8 (rows, cols)
    disturbed: np.ndarray          # bool: non-targets of the program whose state changed
    write_errors: np.ndarray       # bool: targets of the program not in the target state
    energy_j: float
    writes: int                    # engine calls (transients)
    time_points: int               # summed over the writes
    dynamic_mean: float            # mean number of cells with the switching model per write
    engine_s: float                # ngspice (or fast engine) time, summed


def _run_request(tile: Tile, req: SwitchRequest, plans, seeds, settings: WriteSettings,
                 engine: Engine, keep_records: bool, profile_on: bool):
    """The programs of one request on one tile, in order; the tile's states are what the
    engine returned after each. Returns (counters, records, profile rows)."""
    counters, records, profile = WriteCounters(), [], []
    for level, ((targets, p_col), seed) in enumerate(zip(plans, seeds)):
        t0 = time.perf_counter()
        planned = build_program(tile.xbar, req.direction, targets, p_col, settings)
        before = tile.xbar.states.copy()
        out = run_program(tile.xbar, planned.program, seed, engine,
                          settings.pulse_by_pulse)
        tile.xbar.states = out.states_after.copy()
        _tally(counters, records if keep_records else None, tile, req.direction, targets,
               p_col, planned.program, before, tile.xbar.states, out.energy_j)
        wall = time.perf_counter() - t0
        if profile_on:
            widths = planned.program.widths()
            profile.append({
                "tile": tile.name, "direction": req.direction.value, "level": level,
                "targets": int(targets.sum()), "pulses": len(widths),
                "writes": out.writes, "width_min_ns": min(widths) * 1e9,
                "width_max_ns": max(widths) * 1e9,
                "duration_ns": planned.program.duration_s * 1e9,
                "dynamic_mean": out.dynamic_mean, "time_points": out.time_points,
                "engine_s": out.engine_s, "wall_s": wall,
                "switched": int((out.states_after != before).sum()),
                "disturbs": int(out.disturbed.sum()),
                # to replay the program (e.g. in one transient)
                "program": planned.program, "seed": seed, "states_before": before})
    return counters, records, profile


def _run_tile(payload):
    """A process pool's task: one tile's requests of a phase, in order, on a copy of the tile;
    returns their results and the tile's states after them."""
    tile, requests, settings, engine, keep_records, profile_on = payload
    results = [_run_request(tile, req, plans, seeds, settings, engine, keep_records, profile_on)
               for req, plans, seeds in requests]
    return results, tile.xbar.states


#: Tiles per engine call in ``_run_tiles``: its arrays grow with the batch's pulses times
#: the most gated rows of any of them (its per-pulse arrays are padded to that).
BATCH_TILES = 128


def _run_tiles(payload):
    """The requests of several 1T1R tiles on the fast engine, with the results of
    ``_run_tile`` on each in turn (the same thresholds and outcomes; energies to rounding:
    tests/test_train.py), but the k-th programs of all tiles in one plan
    (``build_programs``) and one write (``ColumnBatch.write``) per direction: a 32x32
    program alone cost ~30 ms, nearly all of it per call. Returns per tile (per-request
    results, states)."""
    tile_requests, settings, keep_records = payload
    queues, results = [], []
    for tile, requests in tile_requests:
        queues.append([(r, req.direction, targets, p_col, seed)
                       for r, (req, plans, seeds) in enumerate(requests)
                       for (targets, p_col), seed in zip(plans, seeds)])
        results.append([(WriteCounters(), [], []) for _ in requests])
    tiles = [tile for tile, _ in tile_requests]
    for k in range(max((len(q) for q in queues), default=0)):
        for direction in Direction:
            wave = [(t, q[k]) for t, q in enumerate(queues)
                    if len(q) > k and q[k][1] is direction]
            for i in range(0, len(wave), BATCH_TILES):
                _write_wave(tiles, results, wave[i:i + BATCH_TILES], direction, settings,
                            keep_records)
    return [(res, tile.xbar.states) for tile, res in zip(tiles, results)]


def _write_wave(tiles, results, wave, direction, settings, keep_records) -> None:
    """One program on each of several tiles (``_run_tiles``), the tiles' states updated."""
    xbars = [tiles[t].xbar for t, _ in wave]
    planned = build_programs(xbars, direction, [e[2] for _, e in wave],
                             [e[3] for _, e in wave], settings)
    programs = [pl.program for pl in planned.programs]
    thresholds = [program_thresholds(x, prog, e[4], settings.pulse_by_pulse)
                  for x, prog, (_, e) in zip(xbars, programs, wave)]
    written = None
    if planned.columns is not None and all(th is not None for th in thresholds):
        written = planned.columns.write(programs, thresholds)
    for i, ((t, (r, _, targets, p_col, seed)), program) in enumerate(zip(wave, programs)):
        tile = tiles[t]
        before = tile.xbar.states.copy()
        if written is not None:
            after, energy_j = written.states[i].copy(), float(written.energy_j[i])
        else:            # one by one: not column programs, or a solve failed in the batch
            out = run_program(tile.xbar, program, seed, Engine.FAST, settings.pulse_by_pulse)
            after, energy_j = out.states_after, out.energy_j
        tile.xbar.states = after
        counters, records, _ = results[t][r]
        _tally(counters, records if keep_records else None, tile, direction, targets, p_col,
               program, before, after, energy_j)


def program_thresholds(xbar, program: PulseProgram, seed: int,
                       pulse_by_pulse: bool = True) -> dict | None:
    """The thresholds a fast-engine write of ``program`` uses in one batched write: the
    seed's (``cell_thresholds``), or pulse by pulse each cell those of the pulse that biases
    it (``_merged_thresholds``, None when a cell is biased by several: then only a
    write per pulse describes it). Pulse k uses ``seed`` (k = 0) or the k-th draw of
    ``default_rng(seed)``, as ``run_program`` does."""
    pulses = program.pulses()
    if not (pulse_by_pulse and len(pulses) > 1):
        return cell_thresholds(xbar, seed)
    return _merged_thresholds(xbar, program, _pulse_seeds(seed, len(pulses)))


def _pulse_seeds(seed: int, n: int) -> list[int]:
    extra = np.random.default_rng(seed).integers(0, 2 ** 31 - 1, size=n - 1)
    return [seed] + [int(s) for s in extra]


def run_program(xbar, program: PulseProgram, seed: int, engine: Engine,
                pulse_by_pulse: bool = True) -> ProgramOutcome:
    """Write ``program`` on ``xbar`` (its states are left unchanged): in one transient, or
    pulse by pulse, each pulse a write of its own from the states the previous one returned.
    Pulse k uses ``seed`` (k = 0) or the k-th draw of ``default_rng(seed)``. On the fast
    engine a pulse-by-pulse 1T1R column program runs as one batched write with those
    thresholds (``_merged_thresholds``): the same outcome, several times faster."""
    pulses = program.pulses()
    before = xbar.states.copy()
    if pulse_by_pulse and len(pulses) > 1:
        seeds = _pulse_seeds(seed, len(pulses))
        merged = (_merged_thresholds(xbar, program, seeds)
                  if Engine(engine) is Engine.FAST else None)
        if merged is not None:            # one batched write, each pulse's own thresholds
            r = quasi_static_write(xbar, program, seed, thresholds=merged, waveforms=False)
            changed = r.states_after != before
            return ProgramOutcome(
                states_after=r.states_after.copy(), disturbed=~program.targets & changed,
                write_errors=program.targets & (r.states_after != program.direction.target_state),
                energy_j=float(r.energy.energy_j), writes=1, time_points=0,
                dynamic_mean=float(r.dynamic.sum()), engine_s=float(r.timings_s["fast_s"]))
        subs = [dataclasses.replace(program, targets=program.targets & (r[:, None] & c[None, :]),
                                    widths_s=(w,))
                for (r, c), w in zip(pulses, program.widths())]
    else:
        seeds, subs = [seed], [program]
    states = before
    energy = engine_s = 0.0
    points = dynamic = 0
    try:
        for sub, s in zip(subs, seeds):
            xbar.states = states
            r = write(xbar, sub, s, engine=engine)
            states = np.asarray(r.states_after, dtype=np.int8).copy()
            if getattr(r, "energy", None) is not None:
                energy += float(r.energy.energy_j)
            points += r.n_time_points
            dynamic += int(np.asarray(r.dynamic).sum())
            engine_s += float(r.timings_s.get("ngspice_s", r.timings_s.get("fast_s", 0.0)))
    finally:
        xbar.states = before
    changed = states != before
    return ProgramOutcome(
        states_after=states, disturbed=~program.targets & changed,
        write_errors=program.targets & (states != program.direction.target_state),
        energy_j=energy, writes=len(subs), time_points=points,
        dynamic_mean=dynamic / len(subs), engine_s=engine_s)


def _merged_thresholds(xbar, program, seeds) -> dict | None:
    """The thresholds of a pulse-by-pulse run in one dict: each cell takes those of the one
    pulse that biases it (its pulse's seed). None when a cell is biased by several pulses
    (passive arrays: half-selected cells), which only the pulse-by-pulse run describes. The
    fast engine's 1T1R column programs then run in one batched write with the outcome of
    the pulse-by-pulse sequence (tests/test_train.py checks it)."""
    masks = pulse_dynamic_cells(xbar, program)
    if masks.sum(axis=0).max(initial=0) > 1:
        return None
    # the pulse that biases each cell (none: the first, as cell_thresholds(xbar, seeds[0]))
    return cell_thresholds_of_pulses(xbar, seeds, np.argmax(masks, axis=0))


def _tally(counters: WriteCounters, records: list | None, tile, direction: Direction, targets,
           p_col, program: PulseProgram, before, after, energy_j: float) -> None:
    """Count what one program did to ``tile`` (its states ``before`` and ``after``), and
    keep its record when ``records`` is a list."""
    tgt = direction.target_state
    disturbed = ~targets & (after != before)
    p = np.where(targets, np.nan_to_num(p_col)[None, :], 0.0)
    _count(counters, targets, p, before, after, tgt, disturbed, energy_j, program.duration_s)
    counters.programs += 1
    counters.pulses += len(program.pulses())
    if records is not None:
        records.append(_record(tile, direction, targets, p_col, before, after,
                               targets & (after != tgt), disturbed))


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
