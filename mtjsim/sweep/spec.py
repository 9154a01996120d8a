"""Sweep files: a base configuration, the parameters to sweep by dotted path, the metrics,
the engine and the seeds. ``load_sweep(path)`` reads one; ``Sweep.points`` expands it.

    name = "diameter"
    engine = "ngspice"            # or "fast" (the nodal engine of mtjsim.engines.fast)
    seeds = 8                     # trials per point for the statistical metrics
    seed = 1                      # base seed
    metrics = ["write_error_rate", "disturb_rate", "update_energy"]

    [base]                        # nested tables or dotted keys: device.*, array.*, write.*
    device.preset = "pmtj_40nm"
    array = { kind = "passive", size = 8, r_wire_ohm = 1.0 }

    [sweep]
    mode = "grid"                 # "grid": every combination; "zip": the lists side by side
    "device.diameter_m" = { linspace = [20e-9, 100e-9, 5] }
    "array.r_wire_ohm" = { logrange = [0.1, 10, 3] }
    "write.scheme" = ["v2", "v3"]

    [[sweep.zip]]                 # grid mode: these lists move together, as one axis
    "write.v_write_v" = [0.5, 0.6]
    "write.pulse_width_s" = [20e-9, 10e-9]

Values: a list, ``{ values = [...] }``, ``{ range = [start, stop, step] }`` (stop included
when it falls on the grid), ``{ linspace = [start, stop, n] }`` or
``{ logrange = [start, stop, n] }`` (geometric, both ends included).

Each point is a pure function of its resolved configuration and its seed. The seed is
derived from the base seed and the point's swept values (not from its position), and the
point id is a hash of the resolved configuration, the metrics, the engine, the number of
seeds and the seed: a finished point is found again by id when the sweep is run again.
"""

from __future__ import annotations

import enum
import hashlib
import inspect
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtjsim.sweep.config import canonical_value, check_path, flatten, resolve
from mtjsim.validation import check_int

FORMAT_VERSION = 1
RANGE_KEYS = ("values", "range", "linspace", "logrange")
MAX_POINTS = 1_000_000


class Engine(enum.Enum):
    NGSPICE = "ngspice"
    FAST = "fast"


class Metric(enum.Enum):
    """What a point computes. A metric brings every column of its group (the runs are shared):
    see mtjsim/sweep/point.py and docs/sweeps.md for the exact definitions."""

    DEVICE = "device"                       # analytic device figures (always included)
    CELL_RESISTANCE = "cell_resistance"     # R_P, R_AP of one cell solved by the engine
    READ_MARGIN = "read_margin"             # far / near cell one-hot read margin
    READ_CURRENT = "read_current"           # column-current distribution, random states
    FEEDFORWARD_ENERGY = "feedforward_energy"
    WRITE_ERROR_RATE = "write_error_rate"   # over `seeds` writes
    DISTURB_RATE = "disturb_rate"
    UPDATE_ENERGY = "update_energy"
    TOPS_PER_W = "tops_per_w"               # feedforward and update TOPS/W
    TRAIN_ACCURACY = "train_accuracy"       # a short training run (mtjsim.train)


# Column order of the table, metric group by metric group (mtjsim/sweep/point.py computes
# them; docs/sweeps.md defines them).
COLUMNS = {
    "device": ("r_p_ohm", "r_ap0_ohm", "delta", "i_c0_p2ap_a", "i_c0_ap2p_a"),
    "cell_resistance": ("r_p_spice_ohm", "r_ap_spice_ohm", "tmr_spice"),
    "read_margin": ("read_margin_far", "read_margin_near", "read_margin_ideal", "i_p_far_a",
                    "i_ap_far_a", "i_p_near_a", "i_ap_near_a"),
    "read_current": ("i_read_mean_a", "i_read_std_a", "i_read_min_a", "i_read_p05_a",
                     "i_read_p50_a", "i_read_p95_a", "i_read_max_a",
                     "read_decision_error_rate"),
    "feedforward_energy": ("ff_energy_per_op_j", "ff_tops_per_w"),
    "write": ("write_error_rate", "write_error_rate_hi95", "disturb_rate", "disturb_rate_hi95",
              "disturb_rate_half_selected", "n_write_trials", "n_disturb_trials",
              "i_write_peak_a"),
    "update_energy": ("update_energy_per_op_j", "update_tops_per_w",
                      "update_energy_per_switched_bit_j"),
    "train_accuracy": ("train_accuracy", "train_baseline_accuracy", "train_gap_to_baseline"),
}
METRIC_COLUMNS = tuple(c for cols in COLUMNS.values() for c in cols)

READ_METRICS = {Metric.CELL_RESISTANCE, Metric.READ_MARGIN, Metric.READ_CURRENT,
                Metric.FEEDFORWARD_ENERGY, Metric.TOPS_PER_W}
WRITE_METRICS = {Metric.WRITE_ERROR_RATE, Metric.DISTURB_RATE, Metric.UPDATE_ENERGY,
                 Metric.TOPS_PER_W}


@dataclass(frozen=True)
class Point:
    """One sweep point: everything its result depends on, and nothing else."""

    index: int                    # position in the sweep (for the table order only)
    id: str                       # hash of the resolved configuration, metrics, engine, seeds
    params: dict                  # the swept values, by dotted path
    config: dict                  # the resolved configuration (every default filled in)
    seed: int
    n_seeds: int
    metrics: tuple[str, ...]
    engine: str


@dataclass
class Sweep:
    name: str
    base: dict                            # the [base] table as written
    axes: list[dict]                      # one dict per axis: {path: [values, ...]}
    mode: str = "grid"
    metrics: tuple[str, ...] = (Metric.READ_MARGIN.value,)
    engine: str = Engine.NGSPICE.value
    n_seeds: int = 4
    seed: int = 0
    description: str = ""
    source: str = ""                      # the TOML text the sweep was read from
    _points: list[Point] | None = field(default=None, repr=False)

    @property
    def param_paths(self) -> list[str]:
        return [p for axis in self.axes for p in axis]

    @property
    def points(self) -> list[Point]:
        if self._points is None:
            self._points = expand(self)
        return self._points

    def record(self) -> dict:
        """The sweep as plain data (sweep.json)."""
        return {
            "format_version": FORMAT_VERSION, "name": self.name,
            "description": self.description, "mode": self.mode, "engine": self.engine,
            "seeds": self.n_seeds, "seed": self.seed, "metrics": list(self.metrics),
            "params": self.param_paths,
            "axes": [{p: v for p, v in axis.items()} for axis in self.axes],
            "base": self.base,
            "points": [{"index": p.index, "id": p.id, "params": p.params, "seed": p.seed}
                       for p in self.points],
        }


# --- values of one parameter --------------------------------------------------------------
def _range_values(path: str, spec: dict) -> list:
    keys = [k for k in spec if k in RANGE_KEYS]
    if len(keys) != 1 or len(spec) != 1:
        raise ValueError(f"sweep {path!r}: {spec!r}: give exactly one of "
                         f"{', '.join(RANGE_KEYS)}")
    kind, args = keys[0], spec[keys[0]]
    if kind == "values":
        if not isinstance(args, list) or not args:
            raise ValueError(f"sweep {path!r}: values must be a non-empty list")
        return list(args)
    if not isinstance(args, list) or len(args) != 3 or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"sweep {path!r}: {kind} = {args!r}: must be three numbers "
                         f"[start, stop, {'step' if kind == 'range' else 'n'}]")
    start, stop, third = args
    if kind == "range":
        if third == 0 or (stop - start) * third < 0:
            raise ValueError(f"sweep {path!r}: range = {args!r}: the step must be non-zero "
                             f"and go from start towards stop")
        n = int(math.floor((stop - start) / third * (1 + 1e-12) + 1e-9)) + 1
        if n > MAX_POINTS:
            raise ValueError(f"sweep {path!r}: range = {args!r} gives {n} values")
        return [start + k * third for k in range(n)]
    if not isinstance(third, int) or isinstance(third, bool) or third < 1:
        raise ValueError(f"sweep {path!r}: {kind} = {args!r}: n must be an integer >= 1")
    if kind == "linspace":
        return [float(x) for x in np.linspace(start, stop, third)]
    if start <= 0 or stop <= 0:
        raise ValueError(f"sweep {path!r}: logrange = {args!r}: start and stop must be > 0")
    return [float(x) for x in np.geomspace(start, stop, third)]


def parameter_values(path: str, spec) -> list:
    """The values of one swept parameter, canonical (see config.canonical_value)."""
    check_path(path)
    if isinstance(spec, dict):
        values = _range_values(path, spec)
    elif isinstance(spec, list):
        if not spec:
            raise ValueError(f"sweep {path!r}: the list of values is empty")
        values = spec
    else:
        values = [spec]
    if path.startswith("train."):
        return list(values)
    return [canonical_value(path, v) for v in values]


def _is_values(node) -> bool:
    return not isinstance(node, dict) or any(k in RANGE_KEYS for k in node)


def _flatten_sweep(table: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in table.items():
        path = f"{prefix}{k}"
        if _is_values(v):
            out[path] = v
        else:
            out.update(_flatten_sweep(v, path + "."))
    return out


def _parse_axes(table: dict, mode: str) -> list[dict]:
    axes: list[dict] = []
    for key, node in table.items():
        if key == "mode":
            continue
        if key == "zip":
            if mode != "grid":
                raise ValueError("sweep: [[sweep.zip]] groups belong to mode = \"grid\" (in "
                                 "mode = \"zip\" every parameter moves together already)")
            groups = node if isinstance(node, list) else [node]
            for g in groups:
                if not isinstance(g, dict):
                    raise ValueError("sweep.zip: each [[sweep.zip]] must be a table")
                axes.append({p: parameter_values(p, v)
                             for p, v in _flatten_sweep(g).items()})
            continue
        for path, v in _flatten_sweep({key: node}).items():
            axes.append({path: parameter_values(path, v)})
    if mode == "zip":
        axes = [{p: v for axis in axes for p, v in axis.items()}] if axes else []
    seen = set()
    for axis in axes:
        lengths = {p: len(v) for p, v in axis.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"sweep: zipped parameters need lists of one length; got "
                             f"{lengths}")
        for p in axis:
            if p in seen:
                raise ValueError(f"sweep: parameter {p!r} is swept twice")
            seen.add(p)
    if "array.size" in seen and seen & {"array.rows", "array.cols"}:
        raise ValueError("sweep: array.size sets both rows and cols; do not also sweep "
                         "array.rows or array.cols")
    return axes


def parse_sweep(data: dict, *, name: str = "sweep", source: str = "") -> Sweep:
    """A Sweep from the parsed TOML tables (see the module docstring for the format)."""
    known = {"name", "description", "engine", "seeds", "seed", "metrics", "base", "sweep"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"sweep file: unknown top-level keys {sorted(unknown)}; allowed: "
                         f"{sorted(known)}")
    engine = data.get("engine", Engine.NGSPICE.value)
    try:
        Engine(engine)
    except ValueError:
        raise ValueError(f"engine={engine!r}: must be one of {[e.value for e in Engine]}") \
            from None
    metrics = data.get("metrics", [Metric.READ_MARGIN.value])
    if isinstance(metrics, str):
        metrics = [metrics]
    for m in metrics:
        try:
            Metric(m)
        except ValueError:
            raise ValueError(f"metrics: {m!r} is not a metric; choose from "
                             f"{[x.value for x in Metric]}") from None
    n_seeds = check_int("seeds", data.get("seeds", 4), lo=1, hi=1_000_000)
    seed = check_int("seed", data.get("seed", 0), lo=0)
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise ValueError("base: must be a table of sections (device, array, read, write...)")
    table = data.get("sweep", {})
    mode = table.get("mode", "grid")
    if mode not in ("grid", "zip"):
        raise ValueError(f"sweep.mode={mode!r}: must be \"grid\" or \"zip\"")
    axes = _parse_axes(table, mode)
    base_paths = set(flatten(base))
    if "array.size" in base_paths and any(p in ("array.rows", "array.cols")
                                          for a in axes for p in a):
        raise ValueError("base sets array.size (rows and cols); sweep array.size instead of "
                         "array.rows or array.cols")
    resolve(base)                       # unknown paths or presets fail here, before any run
    sweep = Sweep(name=str(data.get("name", name)), base=base, axes=axes, mode=mode,
                  metrics=tuple(dict.fromkeys(metrics)), engine=engine, n_seeds=n_seeds,
                  seed=seed, description=str(data.get("description", "")), source=source)
    n = math.prod(len(next(iter(a.values()))) for a in axes) if axes else 1
    if n > MAX_POINTS:
        raise ValueError(f"sweep: {n} points is more than {MAX_POINTS}")
    check_engine(sweep.engine, sweep.metrics)
    return sweep


def load_sweep(path: Path) -> Sweep:
    path = Path(path)
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    return parse_sweep(data, name=path.stem, source=text)


# --- points -------------------------------------------------------------------------------
def _canonical_json(x) -> str:
    return json.dumps(x, sort_keys=True, separators=(",", ":"), allow_nan=True)


def derive_seed(*parts) -> int:
    """A 63-bit seed from any JSON-able parts (stable across runs, machines and Pythons)."""
    digest = hashlib.sha256(_canonical_json(list(parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def point_id(config: dict, metrics, engine: str, n_seeds: int, seed: int) -> str:
    payload = {"format_version": FORMAT_VERSION, "config": config,
               "metrics": sorted(metrics), "engine": engine, "seeds": n_seeds, "seed": seed}
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()[:16]


def expand(sweep: Sweep) -> list[Point]:
    """Every point of the sweep, in grid order (the first axis varies slowest)."""
    columns = []
    for axis in sweep.axes:
        paths = list(axis)
        n = len(axis[paths[0]])
        columns.append([{p: axis[p][k] for p in paths} for k in range(n)])
    points = []
    for index, combo in enumerate(itertools.product(*columns) if columns else [()]):
        params: dict = {}
        for part in combo:
            params.update(part)
        config = resolve(sweep.base, params)
        seed = derive_seed(sweep.seed, params)
        pid = point_id(config, sweep.metrics, sweep.engine, sweep.n_seeds, seed)
        points.append(Point(index=index, id=pid, params=params, config=config, seed=seed,
                            n_seeds=sweep.n_seeds, metrics=tuple(sweep.metrics),
                            engine=sweep.engine))
    return points


# --- engines ------------------------------------------------------------------------------
def engine_kwargs(fn, engine: str) -> dict:
    """Keyword arguments selecting ``engine`` in ``fn`` (mtjsim.ops.read.read or write).
    ngspice is what they run by default; another engine is passed only when ``fn`` takes an
    ``engine`` argument, checked at run time."""
    if engine == Engine.NGSPICE.value:
        return {}
    if "engine" in inspect.signature(fn).parameters:
        return {"engine": engine}
    raise ValueError(f"engine {engine!r} is not available: {fn.__module__}.{fn.__name__}() "
                     f"takes no engine argument yet; use engine = \"ngspice\"")


def check_engine(engine: str, metrics) -> None:
    """Fail before any run when the engine cannot compute the requested metrics."""
    if engine == Engine.NGSPICE.value:
        return
    from mtjsim.ops.read import read
    from mtjsim.ops.write import write
    ms = {Metric(m) for m in metrics}
    if ms & READ_METRICS:
        engine_kwargs(read, engine)
    if ms & WRITE_METRICS:
        engine_kwargs(write, engine)
    if ms & {Metric.FEEDFORWARD_ENERGY, Metric.TOPS_PER_W} and not _gives_read_energy(engine):
        raise ValueError(f"engine {engine!r} gives no feedforward energy (its reads are DC "
                         f"solves, no waveforms): drop feedforward_energy and tops_per_w from "
                         f"metrics, or use engine = \"ngspice\"")


def _gives_read_energy(engine: str) -> bool:
    """Ask the engine itself: a transient read of a 1x1 array, with or without an energy
    report (milliseconds)."""
    import numpy as np

    from mtjsim.circuit.crossbar import ArraySpec, Crossbar
    from mtjsim.ops.read import ReadSettings, read
    xbar = Crossbar(ArraySpec(rows=1, cols=1), np.zeros((1, 1)))
    r = read(xbar, np.full((1, 1), 0.1), settings=ReadSettings(transient=True),
             **engine_kwargs(read, engine))
    return r.energy is not None
