"""The training loop: forward through the arrays, gradients, a plan of device steps, write
programs on the engine, weights read back from the states the engine returned.

Per mini-batch: one read call per tile (the whole batch in it), one plan, then phases: in
each phase every weight with a step left asks its pair for one device switch (which device
and direction follow from the pair's *realized* states), the requests of a tile go out as
column-parallel programs (SET, then RESET), and the next phase starts from what the engine
wrote. A deterministic step that did not happen is a failed write and ends that weight's
chain; a stochastic step that did not happen ends it too (that is the sampling).

The same loop runs the software baseline (``IdealBackend``) from the same initial weights,
on the same batches, side by side. Every epoch is checkpointed atomically (states, random
generators, table so far): a run resumes from its last completed epoch.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec
from mtjsim.devices.mtj import load_preset
from mtjsim.devices.variation import Variation
from mtjsim.engines import Engine
from mtjsim.ops.write import Direction, WriteScheme
from mtjsim.runs import write_json, write_npz
from mtjsim.train.backends import CircuitBackend, IdealBackend, ReadPhases, WriteCounters
from mtjsim.train.datasets import Dataset, DatasetName, Encoding, load_dataset
from mtjsim.train.network import ArrayNetwork, NetworkSpec, SteCenter
from mtjsim.train.programs import SwitchRequest, WriteSettings
from mtjsim.train.rules import (
    Plan, Rule, forward, gradients, gxnor_plan, predict, stochastic_binary_plan,
    train_binary_software,
)
from mtjsim.validation import check_int, check_range

#: Defaults that reach the targets in software (hidden sizes, batch, learning rate).
DEFAULT_HIDDEN = {DatasetName.WINE: (14,), DatasetName.DIGITS: (64,),
                  DatasetName.MNIST5K: (128,)}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. SI units; enums for options."""

    dataset: DatasetName = DatasetName.WINE
    rule: Rule = Rule.STOCHASTIC_BINARY
    array: ArrayKind = ArrayKind.PASSIVE
    tile_rows: int = 15
    tile_cols: int = 15
    r_wire_ohm: float = 1.0
    r_driver_ohm: float = 20.0
    device: str = "pmtj_40nm"
    diameter_m: float | None = None
    variation_sigma: float = 0.0           # device-to-device diameter sigma (fraction)
    hidden: tuple[int, ...] | None = None  # default per dataset (DEFAULT_HIDDEN)
    encoding: Encoding | None = None       # default: analog for Wine, ternary pixels else
    standardize_images: bool = False       # images: per-pixel standardized (centred) inputs
    epochs: int = 10
    batch_size: int = 42
    lr: float = 0.3
    lr_decay: float = 0.8                  # per epoch
    gxnor_m: float = 3.0
    ternary_act_threshold: float = 0.3     # hidden ternary activation at |z| > t sqrt(rows)
    ste_window: float = 1.0                # straight-through half-width, units of sqrt(rows)
    ste_center: SteCenter = SteCenter.ZERO  # window around 0, or around +-t (GXNOR)
    p_min: float = 0.01                    # requests below this probability are dropped
    seed: int = 0
    engine: Engine = Engine.FAST
    v_read_v: float = 0.1
    read_phases: ReadPhases | None = None  # default: two-phase on 1T1R, signed on passive
    sense_trim: bool = False               # sense gain trimmed (backends.sense_gain)
    read_tol: float = 5e-3                 # fast engine: estimated relative error of the
                                           # linear read above which a vector is solved exactly
    scheme: WriteScheme | None = None
    i_ratio: float | None = None
    v_set_v: float | None = None
    v_reset_v: float | None = None
    p_det: float = 0.999
    levels: int = 2                        # probability levels per column pulse
    baseline: bool = True
    verify_rounds: int = 0                 # ex-situ: write-verify rounds
    exsitu_lr: float = 0.01

    def __post_init__(self):
        for name, enum_type in (("dataset", DatasetName), ("rule", Rule), ("array", ArrayKind),
                                ("engine", Engine), ("ste_center", SteCenter)):
            v = getattr(self, name)
            if not isinstance(v, enum_type):
                object.__setattr__(self, name, enum_type(v))
        if self.encoding is not None and not isinstance(self.encoding, Encoding):
            object.__setattr__(self, "encoding", Encoding(self.encoding))
        if self.read_phases is not None and not isinstance(self.read_phases, ReadPhases):
            object.__setattr__(self, "read_phases", ReadPhases(self.read_phases))
        if self.scheme is not None and not isinstance(self.scheme, WriteScheme):
            object.__setattr__(self, "scheme", WriteScheme(self.scheme))
        if self.hidden is not None:
            object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        check_int("epochs", self.epochs, lo=0, hi=100_000)
        check_int("batch_size", self.batch_size, lo=1, hi=1_000_000)
        check_int("seed", self.seed, lo=0)
        check_int("verify_rounds", self.verify_rounds, lo=0, hi=100)
        check_range("lr", self.lr, lo=0, lo_open=True, hi=100, typical="0.05 to 0.5")
        check_range("lr_decay", self.lr_decay, lo=0, lo_open=True, hi=1, typical="0.8 to 1")
        check_range("read_tol", self.read_tol, lo=0, lo_open=True, hi=0.1,
                    typical="1e-3 to 2e-2")
        check_range("p_min", self.p_min, lo=0, hi=1, hi_open=True, typical="0 to 0.05")
        check_range("variation_sigma", self.variation_sigma, lo=0, hi=0.3, typical="0 to 0.05")

    def replace(self, **kw) -> "TrainConfig":
        return dataclasses.replace(self, **kw)

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return self.hidden if self.hidden is not None else DEFAULT_HIDDEN[self.dataset]

    @property
    def input_phases(self) -> ReadPhases:
        """Signed inputs in one read on passive arrays (the MTJ's I-V is odd, so the
        linearized map holds for both signs), in two non-negative phases on 1T1R arrays
        (``ReadPhases``)."""
        if self.read_phases is not None:
            return self.read_phases
        return ReadPhases.TWO_PHASE if self.array is ArrayKind.ONE_T_ONE_R else ReadPhases.SIGNED

    @property
    def input_encoding(self) -> Encoding:
        if self.encoding is not None:
            return self.encoding
        return Encoding.ANALOG if self.dataset is DatasetName.WINE else Encoding.TERNARY

    def record(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return json.loads(json.dumps(d, default=lambda x: x.value if isinstance(x, enum.Enum)
                                     else list(x) if isinstance(x, tuple) else str(x)))

    def key(self) -> str:
        """Identity of a run for resuming: everything but the engine and the number of epochs
        (a run can be resumed on another engine, or extended)."""
        d = self.record()
        d.pop("engine")
        d.pop("epochs")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def load_data(cfg: TrainConfig) -> Dataset:
    """The dataset, split and encoding ``cfg`` asks for."""
    return load_dataset(cfg.dataset, cfg.input_encoding, seed=cfg.seed,
                        standardize_images=cfg.standardize_images)


def array_spec(cfg: TrainConfig) -> ArraySpec:
    over = {} if cfg.diameter_m is None else {"diameter_m": cfg.diameter_m}
    return ArraySpec(kind=cfg.array, rows=cfg.tile_rows, cols=cfg.tile_cols,
                     device=load_preset(cfg.device, **over), r_wire_ohm=cfg.r_wire_ohm,
                     r_driver_ohm=cfg.r_driver_ohm)


def write_settings(cfg: TrainConfig) -> WriteSettings:
    return WriteSettings(scheme=cfg.scheme, i_ratio=cfg.i_ratio, v_set_v=cfg.v_set_v,
                         v_reset_v=cfg.v_reset_v, p_det=cfg.p_det, levels=cfg.levels)


def build_network(cfg: TrainConfig, data: Dataset) -> ArrayNetwork:
    spec = NetworkSpec(sizes=(data.n_features, *cfg.hidden_sizes, data.n_classes),
                       weight_kind=cfg.rule.weight_kind, tile_rows=cfg.tile_rows,
                       tile_cols=cfg.tile_cols, ternary_act_threshold=cfg.ternary_act_threshold,
                       ste_window=cfg.ste_window, ste_center=cfg.ste_center)
    var = Variation(diameter_sigma_d2d=cfg.variation_sigma)
    return ArrayNetwork(spec, array_spec(cfg), variation=var, device_seed=cfg.seed * 1000)


# --- executing a plan ---------------------------------------------------------------------
def _pair_step(w_plus, w_minus, d):
    """Which device moves a weight one state in direction d, from the pair's states.
    Returns (device: 0 plus / 1 minus / -1 none, direction: SET/RESET as bool is_set)."""
    # d = -1: plus device in P -> SET it; else (plus in AP) minus in AP -> RESET minus.
    # d = +1: minus device in P -> SET it; else plus in AP -> RESET plus.
    down = d < 0
    up = d > 0
    dev = np.full(d.shape, -1, dtype=np.int8)
    is_set = np.zeros(d.shape, dtype=bool)
    dev = np.where(down & (w_plus == 0), 0, dev)
    is_set = np.where(down & (w_plus == 0), True, is_set)
    dev = np.where(down & (w_plus == 1) & (w_minus == 1), 1, dev)
    dev = np.where(up & (w_minus == 0), 1, dev)
    is_set = np.where(up & (w_minus == 0), True, is_set)
    dev = np.where(up & (w_minus == 1) & (w_plus == 1), 0, dev)
    return dev, is_set


def apply_plan(net: ArrayNetwork, plan: Plan, backend, counters: WriteCounters) -> None:
    """Run the plan's device steps as write programs, phase by phase, from realized states."""
    before = [w.copy() for w in net.weights()]
    n_steps = max(p.shape[0] for p in plan.probs)
    step = [np.zeros(p.shape[1:], dtype=int) for p in plan.probs]
    active = [(p[0] > 0) & (d != 0) for p, d in zip(plan.probs, plan.direction)]
    for _ in range(n_steps):
        if not any(a.any() for a in active):
            break
        attempts, items = [], []
        for li, layer in enumerate(net.layers):
            probs, d = plan.probs[li], plan.direction[li]
            for t in layer.tiles:
                sl = (slice(t.r0, t.r1), slice(t.n0, t.n1))
                act = active[li][sl]
                if not act.any():
                    continue
                n = t.n1 - t.n0
                r = t.r1 - t.r0
                s = t.xbar.states
                sp, sm = s[:r, 0:2 * n:2], s[:r, 1:2 * n:2]
                dev, is_set = _pair_step(sp, sm, np.where(act, d[sl], 0))
                k = step[li][sl]
                p_now = np.take_along_axis(probs[:, sl[0], sl[1]].transpose(1, 2, 0),
                                           np.minimum(k, probs.shape[0] - 1)[..., None], 2)[..., 0]
                go = act & (dev >= 0)
                # at a bound: nothing to do, chain ends
                active[li][sl] &= go
                rows, cols = np.nonzero(go)
                phys_col = 2 * cols + dev[rows, cols]
                for direction, want_set in ((Direction.SET, True), (Direction.RESET, False)):
                    m = is_set[rows, cols] == want_set
                    if not m.any():
                        continue
                    targets = np.zeros(t.xbar.spec.shape, dtype=bool)
                    p = np.zeros(t.xbar.spec.shape)
                    targets[rows[m], phys_col[m]] = True
                    p[rows[m], phys_col[m]] = p_now[rows[m], cols[m]]
                    items.append((t, SwitchRequest(direction, targets, p)))
                    attempts.append((li, t, rows[m], cols[m], phys_col[m],
                                     direction.target_state, p_now[rows[m], cols[m]]))
        # a phase's requests in their order; the backend may run different tiles at once
        backend.execute_many(items, counters)
        for li, t, rows, cols, phys_col, tgt, p_now in attempts:
            ok = t.xbar.states[rows, phys_col] == tgt
            gi, gj = rows + t.r0, cols + t.n0
            step[li][gi[ok], gj[ok]] += 1
            nxt = np.minimum(step[li][gi, gj], plan.probs[li].shape[0] - 1)
            more = ok & (step[li][gi, gj] < plan.probs[li].shape[0]) & \
                (plan.probs[li][nxt, gi, gj] > 0)
            active[li][gi, gj] = more
    counters.updates += 1
    counters.intended_flips += plan.intended_flips
    counters.realized_flips += int(sum((a != b).sum() for a, b in zip(before, net.weights())))


# --- evaluation ---------------------------------------------------------------------------
def evaluate(net: ArrayNetwork, backend, x: np.ndarray, y: np.ndarray,
             counters: WriteCounters) -> float:
    cache = forward(net.spec, lambda k, a: backend.forward(net.layers[k], a, counters), x)
    return float((cache.z[-1].argmax(axis=1) == y).mean())


# --- the run ------------------------------------------------------------------------------
@dataclass
class TrainResult:
    config: TrainConfig
    rows: list[dict]                 # per-epoch table
    summary: dict
    network: ArrayNetwork
    baseline: ArrayNetwork | None
    out: Path | None = None
    extras: dict = field(default_factory=dict)


COLUMNS = ("epoch", "lr", "loss", "train_acc", "test_acc", "baseline_train_acc",
           "baseline_test_acc", "updates", "programs", "pulses", "requested_switches",
           "expected_switches", "realized_switches", "failed_writes", "disturbs",
           "intended_flips", "realized_flips", "baseline_intended_flips",
           "baseline_realized_flips", "energy_j", "pulse_time_s", "write_wall_s",
           "read_wall_s", "wall_s")


def _make_backends(cfg: TrainConfig, keep_records=False):
    circuit = CircuitBackend(cfg.seed + 1, engine=cfg.engine, v_read_v=cfg.v_read_v,
                             settings=write_settings(cfg), keep_records=keep_records,
                             read_phases=cfg.input_phases, read_tol=cfg.read_tol,
                             sense_trim=cfg.sense_trim)
    ideal = IdealBackend(cfg.seed + 2, levels=cfg.levels, keep_records=keep_records)
    return circuit, ideal


def train(cfg: TrainConfig, out: Path | None = None, *, progress: bool = True,
          resume: bool = True, data: Dataset | None = None,
          writes: IdealBackend | None = None) -> TrainResult:
    """Run ``cfg``; with ``out`` write the run folder (and resume from its checkpoint).

    ``writes`` replaces the circuit by another backend, e.g. ``IdealBackend`` with a seed of
    its own: a replica of the baseline that differs from it only in the switching draws, so
    the gap between the two is the rule's own run-to-run noise (examples/05_wine_seeds.py).
    Such a run has no run folder: its record would name the circuit's engine."""
    if writes is not None and out is not None:
        raise ValueError("out: must be None with writes= (a run without the circuit is not "
                         "recorded as one)")
    data = data or load_data(cfg)
    if cfg.rule is Rule.EXSITU_BINARY:
        return train_exsitu(cfg, out, data=data, progress=progress)
    net = build_network(cfg, data)
    base = build_network(cfg, data) if cfg.baseline else None
    init = net.random_weights(np.random.default_rng(cfg.seed))
    net.set_weights(init)
    if base is not None:
        base.set_weights(init)
    circuit, ideal = _make_backends(cfg)
    if writes is not None:
        circuit.close()
        circuit = writes
    batch_rng = np.random.default_rng(cfg.seed + 3)
    rows: list[dict] = []
    start = 0
    ckpt = None if out is None else Path(out) / "checkpoint.npz"
    if resume and ckpt is not None and ckpt.exists():
        start, rows = _load_checkpoint(ckpt, cfg, net, base, circuit, ideal, batch_rng)
    if out is not None:
        write_json(Path(out) / "config.json", {"config": cfg.record(), "data": data.record(),
                                               "tiling": net.tiling(),
                                               "array": array_spec(cfg).record()})
    n_batches = -(-len(data.y_train) // cfg.batch_size)
    bar = _progress(progress, total=cfg.epochs * n_batches, initial=start * n_batches,
                    desc=f"train {cfg.dataset.value} {cfg.rule.value} {cfg.engine.value}")
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        lr = cfg.lr * cfg.lr_decay ** epoch
        c, cb = WriteCounters(), WriteCounters()
        order = batch_rng.permutation(len(data.y_train))
        losses = []
        for b in range(0, len(order), cfg.batch_size):
            idx = order[b:b + cfg.batch_size]
            x, y = data.x_train[idx], data.y_train[idx]
            losses.append(_update(cfg, net, circuit, x, y, lr, c))
            if base is not None:
                _update(cfg, base, ideal, x, y, lr, cb)
            bar.update(1)
        row = {"epoch": epoch + 1, "lr": lr, "loss": float(np.mean(losses)),
               "train_acc": evaluate(net, circuit, data.x_train, data.y_train, c),
               "test_acc": evaluate(net, circuit, data.x_test, data.y_test, c)}
        if base is not None:
            row["baseline_train_acc"] = evaluate(base, ideal, data.x_train, data.y_train, cb)
            row["baseline_test_acc"] = evaluate(base, ideal, data.x_test, data.y_test, cb)
            row["baseline_intended_flips"] = cb.intended_flips
            row["baseline_realized_flips"] = cb.realized_flips
        row.update({k: v for k, v in c.as_dict().items() if k in COLUMNS})
        row["wall_s"] = time.perf_counter() - t0
        rows.append(row)
        bar.set_postfix(test=f"{row['test_acc']:.3f}",
                        base=f"{row.get('baseline_test_acc', float('nan')):.3f}")
        if out is not None:
            _save_checkpoint(ckpt, cfg, epoch + 1, rows, net, base, circuit, ideal, batch_rng)
            write_epoch_table(Path(out) / "epochs.csv", rows)
    bar.close()
    circuit.close()
    result = TrainResult(cfg, rows, _summary(cfg, data, net, rows), net, base, out)
    if out is not None:
        from mtjsim.train.report import write_run
        write_run(result)
    return result


def _update(cfg, net, backend, x, y, lr, counters) -> float:
    cache = forward(net.spec, lambda k, a: backend.forward(net.layers[k], a, counters), x)
    weights = net.weights()
    grads, loss = gradients(net.spec, cache, y, weights)
    if cfg.rule is Rule.GXNOR:
        plan = gxnor_plan(weights, grads, lr, cfg.gxnor_m, cfg.p_min)
    else:
        plan = stochastic_binary_plan(weights, grads, lr, cfg.p_min)
    apply_plan(net, plan, backend, counters)
    return loss


def _summary(cfg: TrainConfig, data: Dataset, net: ArrayNetwork, rows: list[dict]) -> dict:
    last = rows[-1] if rows else {}
    tot = {k: float(sum(r.get(k, 0) for r in rows)) for k in
           ("requested_switches", "expected_switches", "realized_switches", "failed_writes",
            "disturbs", "intended_flips", "realized_flips", "energy_j", "wall_s", "write_wall_s",
            "read_wall_s")}
    return {
        "config": cfg.record(), "data": data.record(), "tiling": net.tiling(),
        "epochs_done": len(rows),
        "final": {k: last.get(k) for k in ("train_acc", "test_acc", "baseline_train_acc",
                                           "baseline_test_acc")},
        "best_test_acc": max((r["test_acc"] for r in rows), default=None),
        "gap_to_baseline": (None if last.get("baseline_test_acc") is None
                            else last["baseline_test_acc"] - last["test_acc"]),
        "totals": tot,
    }


# --- checkpoints --------------------------------------------------------------------------
def _save_checkpoint(path, cfg, epoch, rows, net, base, circuit, ideal, batch_rng):
    arrays = {f"net/{k}": v for k, v in net.states().items()}
    if base is not None:
        arrays.update({f"base/{k}": v for k, v in base.states().items()})
    meta = {"key": cfg.key(), "epoch": epoch, "rows": rows, "rng": {
        "circuit": circuit.state(), "ideal": ideal.state(),
        "batch": batch_rng.bit_generator.state}}
    arrays["meta"] = np.array(json.dumps(meta, default=float))
    write_npz(path, **arrays)


def _load_checkpoint(path, cfg, net, base, circuit, ideal, batch_rng):
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        if meta["key"] != cfg.key():
            raise ValueError(f"{path}: checkpoint of another configuration (key {meta['key']}, "
                             f"this run {cfg.key()}); use another --out or remove it")
        net.load_states({k[4:]: z[k] for k in z.files if k.startswith("net/")})
        if base is not None:
            base.load_states({k[5:]: z[k] for k in z.files if k.startswith("base/")})
    circuit.set_state(meta["rng"]["circuit"])
    ideal.set_state(meta["rng"]["ideal"])
    batch_rng.bit_generator.state = meta["rng"]["batch"]
    return int(meta["epoch"]), list(meta["rows"])


def write_epoch_table(path: Path, rows: list[dict]) -> None:
    import csv
    import io
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in COLUMNS})
    from mtjsim.runs import _atomic
    _atomic(path, lambda p: p.write_text(buf.getvalue()))


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def _progress(enabled: bool, **kw):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(**kw)


# --- ex-situ --------------------------------------------------------------------------------
def write_weights(net: ArrayNetwork, weights, backend, counters: WriteCounters, *,
                  verify_rounds: int = 0, only_changed: bool = False) -> None:
    """Write target weights into the arrays: per tile a deterministic SET program (cells that
    must be AP), then a RESET program (cells that must be P); ``only_changed`` writes only
    cells not already right (a read before the write). Write-verify: up to ``verify_rounds``
    more rounds on the cells still wrong."""
    for t in net.tiles:
        w = np.asarray(weights[t.layer])[t.r0:t.r1, t.n0:t.n1]
        want = _tile_states(t, w)
        used = _used_mask(t)
        for rnd in range(verify_rounds + 1):
            cur = t.xbar.states
            wrong = used & (cur != want)
            if rnd > 0 and not wrong.any():
                break
            for direction in (Direction.SET, Direction.RESET):
                tgt = direction.target_state
                sel = used & (want == tgt)
                if rnd > 0 or only_changed:
                    sel &= t.xbar.states != want
                if sel.any():
                    backend.execute(t, SwitchRequest(direction, sel, np.where(sel, 1.0, 0.0)),
                                    counters)


def _tile_states(t, w) -> np.ndarray:
    from mtjsim.train.network import encode_pairs
    sp, sm = encode_pairs(w)
    s = np.ones(t.xbar.spec.shape, dtype=np.int8)
    n = t.n1 - t.n0
    s[:t.r1 - t.r0, 0:2 * n:2] = sp
    s[:t.r1 - t.r0, 1:2 * n:2] = sm
    return s


def _used_mask(t) -> np.ndarray:
    m = np.zeros(t.xbar.spec.shape, dtype=bool)
    m[:t.r1 - t.r0, :2 * (t.n1 - t.n0)] = True
    return m


def write_fidelity(net: ArrayNetwork, weights) -> float:
    """Fraction of the used cells in the state the weights ask for."""
    ok = total = 0
    for t in net.tiles:
        want = _tile_states(t, np.asarray(weights[t.layer])[t.r0:t.r1, t.n0:t.n1])
        used = _used_mask(t)
        ok += int((t.xbar.states == want)[used].sum())
        total += int(used.sum())
    return ok / total


def exsitu_write(cfg: TrainConfig, data: Dataset, weights, *, seed: int,
                 init_states_seed: int | None = None, keep_records: bool = False) -> dict:
    """Write one trained weight set into fresh arrays (random initial states) and measure:
    write fidelity, software accuracy (ideal), circuit accuracy after the write, counters."""
    net = build_network(cfg, data)
    rng = np.random.default_rng(seed if init_states_seed is None else init_states_seed)
    for t in net.tiles:
        t.xbar.states = rng.integers(0, 2, t.xbar.spec.shape).astype(np.int8)
    circuit = CircuitBackend(seed, engine=cfg.engine, v_read_v=cfg.v_read_v,
                             settings=write_settings(cfg), keep_records=keep_records,
                             read_phases=cfg.input_phases, read_tol=cfg.read_tol,
                             sense_trim=cfg.sense_trim)
    c = WriteCounters()
    write_weights(net, weights, circuit, c, verify_rounds=cfg.verify_rounds)
    circuit.close()
    c.updates += 1
    realized = net.weights()
    c.realized_flips = int(sum((a != np.asarray(b)).sum() for a, b in zip(realized, weights)))
    sw = (predict(net.spec, weights, data.x_test) == data.y_test).mean()
    sw_train = (predict(net.spec, weights, data.x_train) == data.y_train).mean()
    return {
        "fidelity": write_fidelity(net, weights),
        "weights_wrong": int(sum((a != np.asarray(b)).sum() for a, b in zip(realized, weights))),
        "software_test_acc": float(sw), "software_train_acc": float(sw_train),
        "circuit_test_acc": evaluate(net, circuit, data.x_test, data.y_test, c),
        "circuit_train_acc": evaluate(net, circuit, data.x_train, data.y_train, c),
        "counters": c.as_dict(), "network": net, "records": circuit.records,
    }


def train_exsitu(cfg: TrainConfig, out: Path | None, *, data: Dataset,
                 progress: bool = True) -> TrainResult:
    """Ex-situ binary: train in software, write to the arrays (optionally write-verify),
    report fidelity and accuracy before (software) and after (circuit)."""
    spec = NetworkSpec(sizes=(data.n_features, *cfg.hidden_sizes, data.n_classes),
                       tile_rows=cfg.tile_rows, tile_cols=cfg.tile_cols)
    t0 = time.perf_counter()
    weights = train_binary_software(spec, data.x_train, data.y_train, epochs=cfg.epochs,
                                    seed=cfg.seed, lr=cfg.exsitu_lr, batch_size=cfg.batch_size)
    res = exsitu_write(cfg, data, weights, seed=cfg.seed)
    c = res["counters"]
    row = {"epoch": cfg.epochs, "lr": cfg.exsitu_lr, "loss": float("nan"),
           "train_acc": res["circuit_train_acc"], "test_acc": res["circuit_test_acc"],
           "baseline_train_acc": res["software_train_acc"],
           "baseline_test_acc": res["software_test_acc"],
           **{k: v for k, v in c.items() if k in COLUMNS},
           "wall_s": time.perf_counter() - t0}
    net = res["network"]
    summary = _summary(cfg, data, net, [row])
    summary["exsitu"] = {k: res[k] for k in ("fidelity", "weights_wrong", "software_test_acc",
                                             "software_train_acc", "circuit_test_acc",
                                             "circuit_train_acc")}
    result = TrainResult(cfg, [row], summary, net, None, out, extras={"weights": weights})
    if out is not None:
        write_epoch_table(Path(out) / "epochs.csv", [row])
        write_json(Path(out) / "config.json", {"config": cfg.record(), "data": data.record(),
                                               "tiling": net.tiling(),
                                               "array": array_spec(cfg).record()})
        from mtjsim.train.report import write_run
        write_run(result)
    return result
