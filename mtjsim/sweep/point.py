"""One sweep point: a pure function of its resolved configuration and seed.

``run_point(point)`` never raises for a failing simulation: it returns a record with
``status = "failed"`` and the error (with ngspice's output and the failing netlist's text),
so one bad point cannot stop a sweep. Every random draw comes from seeds derived from the
point's seed (``derive_seed(point.seed, tag, k)``), so the record does not depend on which
worker ran the point, or when.

Metrics (columns of the sweep table; a metric brings every column of its group):

device (always)
    ``r_p_ohm`` (RA / A), ``r_ap0_ohm``, ``delta``, ``i_c0_p2ap_a``, ``i_c0_ap2p_a``: the
    nominal device's analytic figures.
cell_resistance
    ``r_p_spice_ohm``, ``r_ap_spice_ohm``: V/I of one MTJ read at ``read.v_read_v`` in a 1x1
    array with no wire or driver resistance, solved by the engine; ``tmr_spice``.
read_margin
    One-hot reads: only row r driven at ``read.v_read_v``, the other rows held at 0 V by
    their drivers, bit lines at the sense. The far cell is (row 0, last column), farthest from
    the row drivers (left) and the sense (bottom); the near cell is (last row, column 0).
    With both cells in P, then both in AP (the other cells in ``read.background``), the
    sensed column current gives ``i_p_far_a``, ``i_ap_far_a`` (and ``_near_``) and
    ``read_margin_far = (I_P - I_AP) / I_P`` of the far cell's column (``read_margin_near``
    likewise). ``read_margin_ideal = 1 - R_P / R_AP(v_read)``, the same ratio without any
    parasitic. Wire resistance in series lowers the margin: (R_AP - R_P) / (R_AP + R_series).
read_current, feedforward_energy
    ``seeds`` reads of random states (fraction ``read.p_ap`` in AP), ``read.n_vectors`` input
    vectors each (every row at ``read.v_read_v``, or each row driven with probability
    ``read.p_input_on``). Percentiles of every sensed column current: ``i_read_p05_a``,
    ``_p50_``, ``_p95_``, ``i_read_mean_a``, ``i_read_std_a``, ``i_read_min_a``,
    ``i_read_max_a``; ``read_decision_error_rate``: fraction of (vector, column) whose
    comparator decision differs from the one without wires and drivers (ideal currents
    against the same reference). A transient read gives the energy:
    ``ff_energy_per_op_j`` (energy / (2 rows cols vectors)), ``ff_tops_per_w``.
write_error_rate, disturb_rate, update_energy
    ``seeds`` writes of the pulse program of ``[write]`` (targets ``write.target``), each with
    new switching thresholds, from initial states ``write.initial`` (default: every cell
    opposite to the target state, so every disturb goes the same way).
    ``write_error_rate``: fraction of (seed, target cell) not in the target state after the
    program; ``disturb_rate``: fraction of (seed, non-target cell) that switched;
    ``disturb_rate_half_selected``: the same over the non-target cells that saw a bias;
    ``_hi95`` columns: the upper end of the 95 % Wilson interval (useful when 0 errors are
    seen); ``i_write_peak_a``: mean peak current through a target cell;
    ``update_energy_per_op_j`` (an update of k cells is k operations), ``update_tops_per_w``,
    ``update_energy_per_switched_bit_j``.
tops_per_w
    both groups above (``ff_tops_per_w``, ``update_tops_per_w``).
train_accuracy
    a short training run of ``mtjsim.train`` on the point's arrays (``train.*`` keys: dataset,
    rule, epochs...): ``train_accuracy`` (test accuracy after the last epoch),
    ``train_baseline_accuracy`` (software baseline), ``train_gap_to_baseline``. Without a
    training module the point fails with "not available yet".
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import signal
import socket
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.devices.mtj import load_preset
from mtjsim.engines.ngspice import NgspiceError
from mtjsim.ops.read import ReadSettings, read
from mtjsim.ops.write import write
from mtjsim.ops.write_stats import wilson_interval
from mtjsim.sweep.config import Setup, build_setup
from mtjsim.sweep.spec import Metric, Point, derive_seed, engine_kwargs

NGSPICE_OUTPUT_LINES = 60


class MetricUnavailable(RuntimeError):
    """A metric whose implementation does not exist (yet)."""


def _sub_seed(point: Point, tag: str, k: int = 0) -> int:
    return derive_seed(point.seed, tag, k)


def _f(x) -> float:
    return float(x)


# --- metric groups ------------------------------------------------------------------------
def device_figures(setup: Setup) -> dict:
    d = setup.spec.device
    return {"r_p_ohm": d.r_p_ohm, "r_ap0_ohm": d.r_ap0_ohm, "delta": d.delta,
            "i_c0_p2ap_a": d.i_c0_p2ap_a, "i_c0_ap2p_a": d.i_c0_ap2p_a}


def _kw(fn, engine: str, scratch: Path | None) -> dict:
    """Keyword arguments of read()/write(): the engine, and the point's scratch folder for
    netlists (removed with the point; see ``_scratch``)."""
    return {**engine_kwargs(fn, engine), **({"workdir": scratch} if scratch else {})}


def cell_resistance(setup: Setup, engine: str, scratch: Path | None = None) -> dict:
    """R = V/I of a lone MTJ (1x1 array, no wire, driver or sense resistance)."""
    spec = ArraySpec(rows=1, cols=1, device=setup.spec.device, r_wire_ohm=0.0, c_wire_f=0.0,
                     r_driver_ohm=0.0)
    v = setup.read.v_read_v
    out = {}
    for state, key in ((0, "r_p_spice_ohm"), (1, "r_ap_spice_ohm")):
        r = read(Crossbar(spec, np.full((1, 1), state)), np.full((1, 1), v),
                 **_kw(read, engine, scratch))
        out[key] = _f(v / r.i_out_a[0, 0])
    out["tmr_spice"] = out["r_ap_spice_ohm"] / out["r_p_spice_ohm"] - 1
    return out


def _crossbar(setup: Setup, point: Point, states) -> Crossbar:
    return Crossbar(setup.spec, states, variation=setup.variation,
                    device_seed=_sub_seed(point, "devices"))


def read_margin(setup: Setup, point: Point, engine: str, scratch: Path | None = None) -> dict:
    spec, rd = setup.spec, setup.read
    rows, cols = spec.shape
    if rd.background == "random":
        rng = np.random.default_rng(_sub_seed(point, "margin_background"))
        background = (rng.random(spec.shape) < rd.p_ap).astype(np.int8)
    else:
        background = np.full(spec.shape, 1 if rd.background == "ap" else 0, dtype=np.int8)
    far, near = (0, cols - 1), (rows - 1, 0)
    one_hot = {}
    for name, row in (("far", 0), ("near", rows - 1)):
        v = np.zeros(rows)
        v[row] = rd.v_read_v
        one_hot[name] = v
    i = {}
    settings = ReadSettings(slot_s=rd.settings.slot_s, edge_s=rd.settings.edge_s)
    for state, tag in ((0, "p"), (1, "ap")):
        states = background.copy()
        states[far] = states[near] = state
        xbar = _crossbar(setup, point, states)
        # One DC operating point per vector: with Debian's KLU-less ngspice a .op costs about
        # a third of a two-slot transient on 32x32 and larger arrays.
        for name, col in (("far", cols - 1), ("near", 0)):
            r = read(xbar, one_hot[name], settings=settings, **_kw(read, engine, scratch))
            i[f"i_{tag}_{name}_a"] = _f(r.i_out_a[0, col])
    d = spec.device
    r_ap_v = 1.0 / d.conductance_s(rd.v_read_v, 1)
    out = {
        "read_margin_far": (i["i_p_far_a"] - i["i_ap_far_a"]) / i["i_p_far_a"],
        "read_margin_near": (i["i_p_near_a"] - i["i_ap_near_a"]) / i["i_p_near_a"],
        "read_margin_ideal": _f(1 - d.r_p_ohm / r_ap_v),
    }
    out.update(i)
    return out


def _ideal_currents(xbar: Crossbar, v_in: np.ndarray) -> np.ndarray:
    """Column currents with no wires, drivers or sense resistance: sum_i V_i G_ij(V_i)
    (with the access transistor's on-resistance in series for 1T1R)."""
    spec = xbar.spec
    out = np.empty((len(v_in), spec.cols))
    r_on = spec.transistor.r_on_ohm(spec.v_gate_v) if spec.kind is ArrayKind.ONE_T_ONE_R \
        else 0.0
    for b, v in enumerate(v_in):
        vv = np.broadcast_to(v[:, None], spec.shape)
        g = xbar.cells.conductance_s(vv, xbar.states)
        g = 1.0 / (1.0 / g + r_on)
        out[b] = (vv * g).sum(axis=0)
    return out


def random_reads(setup: Setup, point: Point, engine: str, energy: bool,
                 scratch: Path | None = None) -> tuple[dict, dict]:
    spec, rd = setup.spec, setup.read
    currents, wrong, ops, energy_j = [], [], 0, 0.0
    settings = ReadSettings(transient=energy, slot_s=rd.settings.slot_s,
                            edge_s=rd.settings.edge_s)
    for k in range(point.n_seeds):
        xbar = Crossbar.random(spec, _sub_seed(point, "read_states", k), p_ap=rd.p_ap,
                               variation=setup.variation,
                               device_seed=_sub_seed(point, "devices"))
        if rd.p_input_on >= 1:
            v_in = np.full((rd.n_vectors, spec.rows), rd.v_read_v)
        else:
            rng = np.random.default_rng(_sub_seed(point, "read_inputs", k))
            v_in = np.where(rng.random((rd.n_vectors, spec.rows)) < rd.p_input_on,
                            rd.v_read_v, 0.0)
        r = read(xbar, v_in, settings=settings, **_kw(read, engine, scratch))
        currents.append(r.i_out_a)
        ideal = _ideal_currents(xbar, r.v_in_v) > r.i_ref_a[:, None]
        wrong.append(r.decision.astype(bool) != ideal)
        if energy:
            if r.energy is None:
                raise ValueError(f"engine {engine!r} gave no energy report for a transient "
                                 f"read: feedforward_energy needs one")
            ops += r.energy.ops
            energy_j += r.energy.energy_j
    i = np.concatenate([c.ravel() for c in currents])
    p05, p50, p95 = np.percentile(i, [5, 50, 95])
    out = {"i_read_mean_a": _f(i.mean()), "i_read_std_a": _f(i.std()),
           "i_read_min_a": _f(i.min()), "i_read_p05_a": _f(p05), "i_read_p50_a": _f(p50),
           "i_read_p95_a": _f(p95), "i_read_max_a": _f(i.max()),
           "read_decision_error_rate": _f(np.mean(np.concatenate([w.ravel() for w in wrong])))}
    if energy:
        out["ff_energy_per_op_j"] = energy_j / ops
        out["ff_tops_per_w"] = ops / energy_j / 1e12 if energy_j > 0 else float("inf")
    details = {"i_read_a": np.stack(currents).tolist()}
    return out, details


def write_trials(setup: Setup, point: Point, engine: str, scratch: Path | None = None) -> dict:
    spec = setup.spec
    program = setup.program()
    targets = program.targets
    target_state = program.direction.target_state
    errors = disturbed = disturbed_half = n_half = 0
    peak, energy_j, ops, n_switched = [], 0.0, 0, 0
    for k in range(point.n_seeds):
        if setup.write.initial == "random":
            rng = np.random.default_rng(_sub_seed(point, "write_states", k))
            states = (rng.random(spec.shape) < 0.5).astype(np.int8)
        else:
            states = np.full(spec.shape, 1 - target_state, dtype=np.int8)
        xbar = _crossbar(setup, point, states)
        r = write(xbar, program, _sub_seed(point, "write", k), **_kw(write, engine, scratch))
        errors += int(r.write_errors.sum())
        disturbed += int(r.disturbed.sum())
        half = r.dynamic & ~targets
        disturbed_half += int((r.disturbed & half).sum())
        n_half += int(half.sum())
        peak.append(r.i_cell_peak_a[targets])
        n_switched += int(r.switched.sum())
        if r.energy is not None:
            energy_j += r.energy.energy_j
            ops += r.energy.ops
    n_t = int(targets.sum()) * point.n_seeds
    n_o = int((~targets).sum()) * point.n_seeds
    out = {
        "write_error_rate": errors / n_t,
        "write_error_rate_hi95": _f(wilson_interval(errors, n_t)[1]),
        "disturb_rate": disturbed / n_o if n_o else 0.0,
        "disturb_rate_hi95": _f(wilson_interval(disturbed, n_o)[1]) if n_o else 0.0,
        "disturb_rate_half_selected": disturbed_half / n_half if n_half else 0.0,
        "n_write_trials": n_t, "n_disturb_trials": n_o,
        "i_write_peak_a": _f(np.mean(np.concatenate(peak))),
    }
    if ops:
        out["update_energy_per_op_j"] = energy_j / ops
        out["update_tops_per_w"] = ops / energy_j / 1e12 if energy_j > 0 else float("inf")
        out["update_energy_per_switched_bit_j"] = energy_j / n_switched if n_switched \
            else float("nan")
    return out


def _import_training(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in ("mtjsim.train", "mtjsim.train.loop"):
            raise
        raise MetricUnavailable(f"metric 'train_accuracy' is not available yet: {name} does "
                                f"not exist; remove it from metrics") from None


def train_config(point: Point, seed: int):
    """The TrainConfig of ``mtjsim.train.loop`` for a point: device preset and diameter,
    array kind, wire and driver resistance, tile size (array rows and cols), diameter
    variation, read voltage and engine from the point's configuration; every ``train.*``
    key (dataset, rule, epochs, hidden, lr, batch_size, scheme...) as given."""
    loop = _import_training("mtjsim.train.loop")
    cfg = point.config
    preset = load_preset(cfg["device"]["preset"])
    for key, value in cfg["device"].items():
        if key not in ("preset", "diameter_m") and getattr(preset, key) != value:
            raise ValueError(f"train_accuracy: training takes device.preset and "
                             f"device.diameter_m only; device.{key}={value!r} differs from "
                             f"the preset ({getattr(preset, key)!r})")
    for key, value in cfg["variation"].items():
        if key != "diameter_sigma_d2d" and value != 0:
            raise ValueError(f"train_accuracy: training takes variation.diameter_sigma_d2d "
                             f"only; variation.{key}={value!r}")
    fields = {f.name for f in dataclasses.fields(loop.TrainConfig)}
    extra = dict(cfg.get("train", {}))
    unknown = set(extra) - fields
    if unknown:
        raise ValueError(f"train.{sorted(unknown)[0]}: not a training setting; allowed: "
                         f"{', '.join(sorted(fields))}")
    kw = {"device": cfg["device"]["preset"], "diameter_m": cfg["device"]["diameter_m"],
          "array": cfg["array"]["kind"], "r_wire_ohm": cfg["array"]["r_wire_ohm"],
          "r_driver_ohm": cfg["array"]["r_driver_ohm"], "tile_rows": cfg["array"]["rows"],
          "tile_cols": cfg["array"]["cols"],
          "variation_sigma": cfg["variation"]["diameter_sigma_d2d"],
          "v_read_v": cfg["read"]["v_read_v"], "engine": point.engine, "seed": seed}
    kw.update(extra)
    return loop.TrainConfig(**kw)


def train_accuracy(point: Point) -> dict:
    """A short training run on the point's arrays (``mtjsim.train``): ``train_accuracy``, the
    test accuracy after the last epoch, ``train_baseline_accuracy`` (the same network trained
    in software from the same start) and ``train_gap_to_baseline``. A training module may
    instead offer ``sweep_accuracy(config, *, seed, engine)`` returning the accuracy or a
    dict holding ``train_accuracy``; it is used when present."""
    seed = _sub_seed(point, "train") % 2**31
    train = _import_training("mtjsim.train")
    custom = getattr(train, "sweep_accuracy", None)
    if custom is not None:
        result = custom(point.config, seed=seed, engine=point.engine)
        if not isinstance(result, dict):
            result = {"train_accuracy": result}
        if "train_accuracy" not in result:
            raise ValueError("mtjsim.train.sweep_accuracy: its dict must hold 'train_accuracy'")
        return {k: _f(v) for k, v in result.items()}
    loop = _import_training("mtjsim.train.loop")
    if not hasattr(loop, "train"):
        raise MetricUnavailable("metric 'train_accuracy' is not available yet: "
                                "mtjsim.train.loop has no train()")
    result = loop.train(train_config(point, seed), None, progress=False)
    final = result.summary["final"]
    out = {"train_accuracy": _f(final["test_acc"])}
    if final.get("baseline_test_acc") is not None:
        out["train_baseline_accuracy"] = _f(final["baseline_test_acc"])
        out["train_gap_to_baseline"] = out["train_baseline_accuracy"] - out["train_accuracy"]
    return out


# --- the point ----------------------------------------------------------------------------
def _error_record(exc: BaseException, step: str, tb: str = "") -> dict:
    first = (str(exc).strip().splitlines() or [""])[0]
    rec = {"type": type(exc).__name__, "step": step, "message": str(exc)[:20000]}
    if isinstance(exc, NgspiceError):
        # The reason (not the message, which names a temporary path) keeps tables identical
        # from run to run.
        rec["summary"] = f"NgspiceError in {step}: {exc.reason}"
        rec["ngspice_output"] = "\n".join(exc.output.strip().splitlines()[-NGSPICE_OUTPUT_LINES:])
        path = exc.netlist_path
        if path.is_file():
            rec["netlist_name"] = path.name
            rec["netlist_text"] = path.read_text(errors="replace")
    else:
        rec["summary"] = f"{type(exc).__name__} in {step}: {first}"
        if not isinstance(exc, (ValueError, MetricUnavailable)):
            rec["traceback"] = tb[-8000:]
    return rec


def _killed(exc: NgspiceError) -> bool:
    """ngspice stopped by a signal from outside (SIGINT, SIGTERM, SIGKILL), not by the
    circuit: not a property of the point, so not recorded as its result."""
    return any(f"signal {int(n)})" in exc.reason for n in (signal.SIGINT, signal.SIGTERM,
                                                        signal.SIGKILL, signal.SIGHUP))


@contextmanager
def _scratch():
    """A folder for the point's netlists, removed when the point ends (a failing netlist is
    carried in the record, and the sweep copies it into its own folder). Inside a dask
    worker it lives in the worker's local directory, which dask purges when it finds it
    orphaned by a killed worker; elsewhere in the system's temporary folder."""
    base = None
    try:
        from distributed import get_worker
        base = get_worker().local_directory
    except (ImportError, ValueError):
        pass
    folder = Path(tempfile.mkdtemp(prefix="mtjsim-point-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def steps(point: Point) -> list[str]:
    """The metric groups a point runs, in order (cheap and deterministic first, training
    last)."""
    ms = {Metric(m) for m in point.metrics}
    out = ["device"]
    if Metric.CELL_RESISTANCE in ms:
        out.append("cell_resistance")
    if Metric.READ_MARGIN in ms:
        out.append("read_margin")
    if ms & {Metric.READ_CURRENT, Metric.FEEDFORWARD_ENERGY, Metric.TOPS_PER_W}:
        out.append("read_current")
    if ms & {Metric.WRITE_ERROR_RATE, Metric.DISTURB_RATE, Metric.UPDATE_ENERGY,
             Metric.TOPS_PER_W}:
        out.append("write")
    if Metric.TRAIN_ACCURACY in ms:
        out.append("train_accuracy")
    return out


def run_point(point: Point) -> dict:
    """Compute every metric of ``point``. Returns the point's record (JSON-able): ``status``
    "ok" with ``metrics``, or "failed" with ``error`` (and the metrics finished before)."""
    t0 = time.perf_counter()
    record = {"id": point.id, "index": point.index, "params": point.params, "seed": point.seed,
              "status": "ok", "metrics": {}, "details": {}, "error": None,
              "config": point.config, "engine": point.engine, "n_seeds": point.n_seeds,
              "requested_metrics": list(point.metrics)}
    timings = {}
    try:
        with _scratch() as scratch:
            _run_steps(point, record, timings, scratch)
    except _StepFailed as failed:
        if isinstance(failed.exc, NgspiceError) and _killed(failed.exc):
            raise failed.exc from None  # Ctrl-C or a kill reached ngspice: not a result
        record["status"] = "failed"
        record["error"] = failed.error
    record["metrics"] = {k: v if isinstance(v, int) and not isinstance(v, bool) else _f(v)
                         for k, v in record["metrics"].items()}
    record["timings_s"] = {**timings, "total_s": time.perf_counter() - t0}
    record["worker"] = {"host": socket.gethostname(), "pid": os.getpid()}
    return record


class _StepFailed(Exception):
    def __init__(self, exc: Exception, error: dict):
        super().__init__(error["summary"])
        self.exc, self.error = exc, error


def _run_steps(point: Point, record: dict, timings: dict, scratch: Path) -> None:
    step = "setup"
    try:
        setup = build_setup(point.config)
        ms = {Metric(m) for m in point.metrics}
        for step in steps(point):
            t1 = time.perf_counter()
            if step == "device":
                record["metrics"].update(device_figures(setup))
            elif step == "cell_resistance":
                record["metrics"].update(cell_resistance(setup, point.engine, scratch))
            elif step == "read_margin":
                record["metrics"].update(read_margin(setup, point, point.engine, scratch))
            elif step == "read_current":
                energy = bool(ms & {Metric.FEEDFORWARD_ENERGY, Metric.TOPS_PER_W})
                m, details = random_reads(setup, point, point.engine, energy, scratch)
                record["metrics"].update(m)
                record["details"].update(details)
            elif step == "write":
                record["metrics"].update(write_trials(setup, point, point.engine, scratch))
            elif step == "train_accuracy":
                record["metrics"].update(train_accuracy(point))
            timings[step] = time.perf_counter() - t1
    except Exception as exc:    # noqa: BLE001 - a failing point is a result, not a crash
        # The error record reads the failing netlist while the scratch folder still exists.
        raise _StepFailed(exc, _error_record(exc, step, traceback.format_exc())) from None
