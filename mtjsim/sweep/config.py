"""The configuration one sweep point simulates: a nested dict of plain values (what a TOML
file holds), its defaults, its dotted paths, and the objects built from it.

Sections and their keys (SI units, the unit in the name)::

    device      preset (a name in mtjsim/devices/presets.toml) and any MTJParams field
    variation   Variation fields (fractional device-to-device sigmas, default 0)
    array       kind ("passive" | "1t1r"), size (sets rows = cols), rows, cols, r_wire_ohm,
                c_wire_f, r_driver_ohm, sense ("tia" | "resistor"), r_sense_ohm, r_tia_ohm,
                v_dd_v, v_gate_v
    transistor  w_m, l_m (the access NMOS of 1t1r arrays; the rest is models/nmos.lib)
    read        see READ_DEFAULTS
    write       see WRITE_DEFAULTS
    train       settings of the ``train_accuracy`` training run (TrainConfig fields of
                mtjsim.train.loop), checked when the point runs

``resolve`` fills every default in, so a resolved configuration says everything a point
depends on: its hash names the point. Values are validated only where the objects are built
(``build_setup``, inside the point), so an invalid combination fails that point alone.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, SenseKind
from mtjsim.devices.mosfet import NMOSParams
from mtjsim.devices.mtj import MTJParams, load_preset, preset_names
from mtjsim.devices.variation import Variation
from mtjsim.ops.read import ReadSettings
from mtjsim.ops.write import Direction, Parallelism, PulseProgram, WriteScheme
from mtjsim.validation import check_int, check_range

DEFAULT_PRESET = "pmtj_40nm"

# Read settings of the sweep metrics (see mtjsim/sweep/point.py for what each metric reads).
READ_DEFAULTS = {
    "v_read_v": 0.1,          # voltage of a driven row
    "n_vectors": 1,           # input vectors per random-state read (read_current, energy)
    "p_input_on": 1.0,        # probability that a row is driven (1: every row at v_read_v)
    "p_ap": 0.5,              # fraction of AP cells in the random states
    "background": "p",        # read_margin: state of the other cells: "p", "ap" or "random"
    "slot_s": ReadSettings.slot_s,
    "edge_s": ReadSettings.edge_s,
}
READ_BACKGROUNDS = ("p", "ap", "random")

# Write settings. "auto": v2 and 0.5 V for passive arrays, 1t1r and 1.2 V for 1t1r arrays
# (the defaults of `mtjsim write`).
WRITE_DEFAULTS = {
    "scheme": "auto",
    "direction": "set",
    "v_write_v": "auto",
    "pulse_width_s": 10e-9,
    "rise_s": 0.2e-9,
    "fall_s": 0.2e-9,
    "gap_s": 1e-9,
    "v_gate_write_v": 1.2,
    "parallel": "row",
    "target": "far_cell",     # which cells one write programs, see WRITE_TARGETS
    "initial": "opposite",    # initial states: "opposite" of the target state, or "random"
}
WRITE_TARGETS = ("far_cell", "near_cell", "center_cell", "first_row", "diagonal")
WRITE_INITIAL = ("opposite", "random")

_ARRAY_KEYS = ("kind", "size", "rows", "cols", "r_wire_ohm", "c_wire_f", "r_driver_ohm",
               "sense", "r_sense_ohm", "r_tia_ohm", "v_dd_v", "v_gate_v")
_DEVICE_KEYS = ("preset",) + tuple(f.name for f in dataclasses.fields(MTJParams)
                                   if f.name not in ("name", "source"))
_VARIATION_KEYS = tuple(f.name for f in dataclasses.fields(Variation))
_TRANSISTOR_KEYS = ("w_m", "l_m")

# Keys allowed in each section; None: free-form (handed on unchecked).
SECTIONS: dict[str, tuple[str, ...] | None] = {
    "device": _DEVICE_KEYS,
    "variation": _VARIATION_KEYS,
    "array": _ARRAY_KEYS,
    "transistor": _TRANSISTOR_KEYS,
    "read": tuple(READ_DEFAULTS),
    "write": tuple(WRITE_DEFAULTS),
    "train": None,
}

# Keys whose values must be integers (a float range such as 16.0 is turned into 16).
INT_KEYS = {"array.rows", "array.cols", "array.size", "read.n_vectors"}


def check_path(path: str) -> None:
    """Raise ValueError unless ``path`` (``section.key``) names a configuration value."""
    section, _, key = path.partition(".")
    if section not in SECTIONS:
        raise ValueError(f"parameter {path!r}: unknown section {section!r}; sections are "
                         f"{sorted(SECTIONS)}")
    allowed = SECTIONS[section]
    if not key or ("." in key and allowed is not None):
        raise ValueError(f"parameter {path!r}: must be section.key, e.g. 'device.diameter_m'")
    if allowed is not None and key not in allowed:
        raise ValueError(f"parameter {path!r}: unknown key {key!r} in [{section}]; allowed: "
                         f"{', '.join(allowed)}")


def canonical_value(path: str, value):
    """A plain, hashable-by-JSON value: ints for integer keys, floats rounded to 12
    significant digits (so 4.0000000000000003e-08 from a range is 4e-08), strings and bools
    as they are."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):   # numpy scalar
        value = value.item()
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if path in INT_KEYS and value.is_integer():
            return int(value)
        if math.isfinite(value) and value != 0:
            return float(f"{value:.12g}")
        return value
    raise ValueError(f"parameter {path!r}: value {value!r} must be a number, string or bool")


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, path + "."))
        else:
            out[path] = v
    return out


def set_path(config: dict, path: str, value) -> None:
    section, _, key = path.partition(".")
    config.setdefault(section, {})[key] = value


def resolve(base: dict, overrides: dict | None = None) -> dict:
    """The complete configuration of one point: defaults, then ``base`` (nested, as in the
    sweep file), then the point's ``overrides`` (dotted paths). Device fields come from the
    preset unless given; ``array.size`` sets rows and cols; ``auto`` write settings follow
    the array kind. Raises ValueError for unknown paths (not for bad values)."""
    flat = flatten(base)
    flat.update(overrides or {})
    for path in flat:
        check_path(path)
    for path in list(flat):
        if path.startswith("train."):
            continue
        flat[path] = canonical_value(path, flat[path])

    cfg: dict = {s: {} for s in SECTIONS}
    preset = flat.get("device.preset", DEFAULT_PRESET)
    if preset not in preset_names():
        raise ValueError(f"device.preset={preset!r}: unknown; choose one of {preset_names()}")
    dev = load_preset(preset)
    cfg["device"] = {"preset": preset, **{k: getattr(dev, k) for k in _DEVICE_KEYS[1:]}}
    cfg["variation"] = {f.name: f.default for f in dataclasses.fields(Variation)}
    cfg["array"] = {f.name: (f.default.value if isinstance(f.default, (ArrayKind, SenseKind))
                             else f.default)
                    for f in dataclasses.fields(ArraySpec) if f.name in _ARRAY_KEYS}
    tr = NMOSParams()
    cfg["transistor"] = {k: getattr(tr, k) for k in _TRANSISTOR_KEYS}
    cfg["read"] = dict(READ_DEFAULTS)
    cfg["write"] = dict(WRITE_DEFAULTS)
    for path, value in flat.items():
        if path == "array.size":
            continue
        set_path(cfg, path, value)
    if "array.size" in flat:
        cfg["array"]["rows"] = cfg["array"]["cols"] = flat["array.size"]
    passive = cfg["array"]["kind"] != ArrayKind.ONE_T_ONE_R.value
    if cfg["write"]["scheme"] == "auto":
        cfg["write"]["scheme"] = WriteScheme.V_HALF.value if passive else \
            WriteScheme.ONE_T_ONE_R.value
    if cfg["write"]["v_write_v"] == "auto":
        cfg["write"]["v_write_v"] = 0.5 if passive else 1.2
    return cfg


# --- objects built from a resolved configuration ------------------------------------------
@dataclass(frozen=True)
class ReadConfig:
    v_read_v: float
    n_vectors: int
    p_input_on: float
    p_ap: float
    background: str
    settings: ReadSettings


@dataclass(frozen=True)
class WriteConfig:
    target: str
    initial: str
    direction: Direction
    program_kw: dict


@dataclass(frozen=True)
class Setup:
    """What the metrics of one point need, built (and validated) from its configuration."""

    spec: ArraySpec
    variation: Variation
    read: ReadConfig
    write: WriteConfig

    def program(self) -> PulseProgram:
        check_scheme(self.write.program_kw["scheme"], self.spec.kind)
        return write_program(self.spec.shape, self.write)


def _enum(enum_type, path: str, value):
    try:
        return enum_type(value)
    except ValueError:
        raise ValueError(f"{path}={value!r}: must be one of "
                         f"{[e.value for e in enum_type]}") from None


def build_setup(cfg: dict) -> Setup:
    """Build and validate the objects of a resolved configuration (ValueError names the
    field, the value and the allowed range)."""
    d = dict(cfg["device"])
    preset = d.pop("preset")
    device = load_preset(preset, **d)
    variation = Variation(**cfg["variation"])
    a = dict(cfg["array"])
    spec = ArraySpec(kind=_enum(ArrayKind, "array.kind", a.pop("kind")),
                     sense=_enum(SenseKind, "array.sense", a.pop("sense")),
                     device=device, transistor=NMOSParams(**cfg["transistor"]), **a)
    r = cfg["read"]
    check_range("read.v_read_v", r["v_read_v"], lo=-5, hi=5, typical="0.05 to 0.2")
    check_int("read.n_vectors", r["n_vectors"], lo=1, hi=10_000)
    check_range("read.p_input_on", r["p_input_on"], lo=0, lo_open=True, hi=1,
                typical="0.5 or 1")
    check_range("read.p_ap", r["p_ap"], lo=0, hi=1, typical="0.5")
    if r["background"] not in READ_BACKGROUNDS:
        raise ValueError(f"read.background={r['background']!r}: must be one of "
                         f"{list(READ_BACKGROUNDS)}")
    read = ReadConfig(v_read_v=float(r["v_read_v"]), n_vectors=int(r["n_vectors"]),
                      p_input_on=float(r["p_input_on"]), p_ap=float(r["p_ap"]),
                      background=r["background"],
                      settings=ReadSettings(transient=True, slot_s=r["slot_s"],
                                            edge_s=r["edge_s"]))
    w = cfg["write"]
    if w["target"] not in WRITE_TARGETS:
        raise ValueError(f"write.target={w['target']!r}: must be one of {list(WRITE_TARGETS)}")
    if w["initial"] not in WRITE_INITIAL:
        raise ValueError(f"write.initial={w['initial']!r}: must be one of "
                         f"{list(WRITE_INITIAL)}")
    kw = dict(scheme=_enum(WriteScheme, "write.scheme", w["scheme"]),
              direction=_enum(Direction, "write.direction", w["direction"]),
              parallel=_enum(Parallelism, "write.parallel", w["parallel"]),
              v_write_v=w["v_write_v"], pulse_width_s=w["pulse_width_s"], rise_s=w["rise_s"],
              fall_s=w["fall_s"], gap_s=w["gap_s"], v_gate_write_v=w["v_gate_write_v"])
    write = WriteConfig(target=w["target"], initial=w["initial"], direction=kw["direction"],
                        program_kw=kw)
    # The pulse program itself is built (and validated) by the write metrics only, so a
    # read-only sweep over array kinds does not trip on a write scheme it never uses.
    return Setup(spec, variation, read, write)


def write_targets(shape: tuple[int, int], target: str):
    """The bool mask of the cells one write programs. Far cell: row 0, last column (farthest
    from the row drivers on the left and from the bit-line ends at the bottom); near cell:
    last row, column 0."""
    import numpy as np
    rows, cols = shape
    t = np.zeros(shape, dtype=bool)
    if target == "far_cell":
        t[0, cols - 1] = True
    elif target == "near_cell":
        t[rows - 1, 0] = True
    elif target == "center_cell":
        t[rows // 2, cols // 2] = True
    elif target == "first_row":
        t[0, :] = True
    elif target == "diagonal":
        k = np.arange(min(rows, cols))
        t[k, k] = True
    else:
        raise ValueError(f"write.target={target!r}: must be one of {list(WRITE_TARGETS)}")
    return t


def write_program(shape: tuple[int, int], w: WriteConfig) -> PulseProgram:
    kw = dict(w.program_kw)
    return PulseProgram(kw.pop("scheme"), kw.pop("direction"), write_targets(shape, w.target),
                        **kw)


def check_scheme(scheme: WriteScheme, kind: ArrayKind) -> None:
    if (kind is ArrayKind.ONE_T_ONE_R) != (scheme is WriteScheme.ONE_T_ONE_R):
        raise ValueError(f"write.scheme={scheme.value!r}: a {kind.value} array is written with "
                         f"{'1t1r' if kind is ArrayKind.ONE_T_ONE_R else 'v2 or v3'}")
