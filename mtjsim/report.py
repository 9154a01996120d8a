"""What a run leaves in its folder: result.json, netlists, waveforms, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.circuit.netlist import write_netlist
from mtjsim.ops.read import ReadResult, prepare_read
from mtjsim.runs import save_figure, write_json, write_npz


def spec_record(spec: ArraySpec) -> dict:
    """The conditions of a run, as plain data (with the device's derived figures)."""
    return {
        "array": spec.kind.value, "rows": spec.rows, "cols": spec.cols,
        "r_wire_ohm": spec.r_wire_ohm, "c_wire_f": spec.c_wire_f,
        "r_driver_ohm": spec.r_driver_ohm, "sense": spec.sense.value,
        "r_sense_ohm": spec.r_sense_ohm if spec.sense.value == "resistor" else 0.0,
        "r_tia_ohm": spec.r_tia_ohm, "v_gate_v": spec.v_gate_v,
        "device": {**{k: v for k, v in vars(spec.device).items()}, **spec.device.summary()},
        "transistor": vars(spec.transistor) if spec.kind is ArrayKind.ONE_T_ONE_R else None,
    }


def read_record(xbar: Crossbar, r: ReadResult) -> dict:
    spec = xbar.spec
    return {
        "engine": "ngspice",
        "i_out_a": r.i_out_a, "v_in_v": r.v_in_v, "r_cell_ohm": r.r_cell_ohm,
        "v_cell_v": r.v_cell_v, "decision": r.decision, "i_ref_a": r.i_ref_a,
        "states": r.states,
        "r_wire_ohm": spec.r_wire_ohm, "r_driver_ohm": spec.r_driver_ohm,
        "r_sense_ohm": spec.r_sense_ohm if spec.sense.value == "resistor" else 0.0,
        "conditions": spec_record(spec), "timings_s": r.timings_s,
    }


def write_read_run(out: Path, xbar: Crossbar, r: ReadResult, prefix: str = "") -> None:
    from mtjsim.plots import read_figure
    out = Path(out)
    write_json(out / f"{prefix}result.json", read_record(xbar, r))
    if r.waveforms is not None:
        write_npz(out / f"{prefix}waveforms.npz", **r.waveforms)
    spec = xbar.spec
    save_figure(read_figure(r, f"{spec.kind.value} {spec.rows}x{spec.cols} read, "
                               f"r_wire {spec.r_wire_ohm:g} ohm/segment"), out / "read.png")


def write_read_netlist(xbar: Crossbar, inputs_v, path: Path) -> Path:
    prep = prepare_read(xbar, inputs_v)
    return write_netlist(prep.circuit, prep.analysis, Path(path))


def write_example_netlists(folder: Path) -> list[Path]:
    """The checked-in examples of netlists/: small enough to read, each runs in ngspice -b."""
    folder = Path(folder)
    rng = np.random.default_rng(1)
    out = []
    passive = Crossbar.random(ArraySpec(rows=4, cols=4, r_wire_ohm=2.0), seed=1)
    out.append(write_read_netlist(passive, None, folder / "read_passive_4x4.cir"))
    one_t = Crossbar.random(ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=4, cols=4), seed=2)
    out.append(write_read_netlist(one_t, rng.uniform(0, 0.2, (3, 4)),
                                  folder / "read_1t1r_4x4_batch3.cir"))
    return out
