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


def program_record(program) -> dict:
    return {"scheme": program.scheme.value, "direction": program.direction.value,
            "v_write_v": program.v_write_v, "pulse_width_s": program.pulse_width_s,
            "rise_s": program.rise_s, "fall_s": program.fall_s,
            "parallel": program.parallel.value, "gap_s": program.gap_s,
            "v_gate_write_v": program.v_gate_write_v, "n_pulses": len(program.pulses())}


def write_record(xbar: Crossbar, program, seed: int, r) -> dict:
    """result.json of a write: outcome, currents and each cell's device parameters."""
    cells = xbar.cells
    set_ = program.direction.value == "set"
    return {
        "engine": "ngspice", "seed": seed,
        "switched": r.switched, "states_before": r.states_before, "states_after": r.states_after,
        "targets": r.targets.astype(int), "write_errors": r.write_errors.astype(int),
        "disturbed": r.disturbed.astype(int),
        "n_switched": int(r.switched.sum()), "n_write_errors": int(r.write_errors.sum()),
        "n_disturbed": int(r.disturbed.sum()),
        "i_cell_peak_a": r.i_cell_peak_a, "i_cell_mean_a": r.i_cell_mean_a,
        # the critical current of the direction this program writes
        "i_c0_a": cells.i_c0_p2ap_a if set_ else cells.i_c0_ap2p_a,
        "i_c0_p2ap_a": cells.i_c0_p2ap_a, "i_c0_ap2p_a": cells.i_c0_ap2p_a,
        "delta": cells.delta, "tau0_s": cells.tau0_s, "tau_d_s": cells.tau_d_s,
        "r_p_ohm": cells.r_p_ohm, "thresholds": r.thresholds, "dynamic": r.dynamic.astype(int),
        "program": program_record(program),
        "variation": xbar.variation, "device_seed": xbar.device_seed,
        "conditions": spec_record(xbar.spec), "timings_s": r.timings_s,
        "n_time_points": r.n_time_points,
    }


def write_write_run(out: Path, xbar: Crossbar, program, seed: int, r, prefix: str = "") -> None:
    from mtjsim.plots import write_figure
    out = Path(out)
    write_json(out / f"{prefix}result.json", write_record(xbar, program, seed, r))
    write_npz(out / f"{prefix}waveforms.npz", **r.waveforms)
    spec = xbar.spec
    save_figure(write_figure(r, f"{spec.kind.value} {spec.rows}x{spec.cols} "
                                f"{program.scheme.value} {program.direction.value} write, "
                                f"{program.v_write_v:g} V, {program.pulse_width_s * 1e9:g} ns, "
                                f"seed {seed}"), out / f"{prefix}write.png")


def write_stats_run(out: Path, xbar: Crossbar, program, stats) -> None:
    from mtjsim.plots import write_stats_figure
    out = Path(out)
    write_json(out / "stats.json", {
        **{k: getattr(stats, k) for k in stats.__dataclass_fields__},
        "program": program_record(program),
        "conditions": spec_record(xbar.spec),
    })
    spec = xbar.spec
    save_figure(write_stats_figure(stats, f"{spec.kind.value} {spec.rows}x{spec.cols} "
                                          f"{program.scheme.value} {program.direction.value}, "
                                          f"{program.v_write_v:g} V, "
                                          f"{program.pulse_width_s * 1e9:g} ns"),
                out / "write_stats.png")
