"""What a run leaves in its folder: result.json, netlists, waveforms, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.circuit.netlist import write_netlist
from mtjsim.ops.read import ReadResult, prepare_read
from mtjsim.energy.report import reports_from_json, write_energy_files
from mtjsim.runs import save_figure, write_json, write_npz


def read_record(xbar: Crossbar, r: ReadResult) -> dict:
    spec = xbar.spec
    return {
        "engine": "ngspice" if "ngspice_s" in r.timings_s else "fast",
        "i_out_a": r.i_out_a, "v_in_v": r.v_in_v, "r_cell_ohm": r.r_cell_ohm,
        "v_cell_v": r.v_cell_v, "decision": r.decision, "i_ref_a": r.i_ref_a,
        "states": r.states,
        "r_wire_ohm": spec.r_wire_ohm, "r_driver_ohm": spec.r_driver_ohm,
        "r_sense_ohm": spec.r_sense_ohm if spec.sense.value == "resistor" else 0.0,
        "conditions": spec.record(), "timings_s": r.timings_s,
    }


def _title(cond: dict, what: str) -> str:
    return f"{cond['array']} {cond['rows']}x{cond['cols']} {what}, r_wire {cond['r_wire_ohm']:g} ohm/segment"


def write_read_run(out: Path, xbar: Crossbar, r: ReadResult, prefix: str = "") -> None:
    from mtjsim.plots import read_figure
    out = Path(out)
    write_json(out / f"{prefix}result.json", read_record(xbar, r))
    if r.energy is not None:
        write_energy_files(out, [r.energy], prefix)
    if r.waveforms is not None:
        write_npz(out / f"{prefix}waveforms.npz", **r.waveforms)
    save_figure(read_figure(r, _title(xbar.spec.record(), "read")), out / "read.png")


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
    from mtjsim.ops.write import Direction, PulseProgram, WriteScheme, build
    for xbar, scheme, v, name in ((passive, WriteScheme.V_HALF, 0.5, "write_passive_4x4_v2.cir"),
                                  (one_t, WriteScheme.ONE_T_ONE_R, 1.2, "write_1t1r_4x4.cir")):
        prog = PulseProgram.single(xbar.spec.shape, 1, 2, scheme, Direction.SET, v_write_v=v,
                                   pulse_width_s=10e-9)
        circuit, analysis, _, _ = build(xbar, prog, seed=1)
        out.append(write_netlist(circuit, analysis, folder / name))
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
        "engine": "ngspice" if "ngspice_s" in r.timings_s else "fast", "seed": seed,
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
        "conditions": xbar.spec.record(), "timings_s": r.timings_s,
        "n_time_points": r.n_time_points,
    }


def write_write_run(out: Path, xbar: Crossbar, program, seed: int, r, prefix: str = "") -> None:
    from mtjsim.plots import write_figure
    out = Path(out)
    write_json(out / f"{prefix}result.json", write_record(xbar, program, seed, r))
    write_npz(out / f"{prefix}waveforms.npz", **r.waveforms)
    write_energy_files(out, [r.energy], prefix)
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
        "conditions": xbar.spec.record(),
    })
    spec = xbar.spec
    save_figure(write_stats_figure(stats, f"{spec.kind.value} {spec.rows}x{spec.cols} "
                                          f"{program.scheme.value} {program.direction.value}, "
                                          f"{program.v_write_v:g} V, "
                                          f"{program.pulse_width_s * 1e9:g} ns"),
                out / "write_stats.png")


def rerender(run_dir: Path) -> list[Path]:
    """Redraw the plots and energy tables of an earlier run from its JSON and .npz files."""
    import json
    from types import SimpleNamespace

    from mtjsim.plots import read_figure, write_figure
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    written = []
    for res_path in sorted(run_dir.glob("*result.json")):
        prefix = res_path.name[: -len("result.json")]
        data = json.loads(res_path.read_text())
        wave = run_dir / f"{prefix}waveforms.npz"
        waveforms = dict(np.load(wave)) if wave.exists() else None
        arrays = {k: np.asarray(v) for k, v in data.items() if isinstance(v, list)}
        r = SimpleNamespace(**{**data, **arrays, "waveforms": waveforms})
        cond = data["conditions"]
        if "switched" in data:
            r.targets = r.targets.astype(bool)
            r.disturbed = r.disturbed.astype(bool)
            r.write_errors = r.write_errors.astype(bool)
            p = data["program"]
            fig = write_figure(r, _title(cond, f"{p['scheme']} {p['direction']} write, "
                                               f"{p['v_write_v']:g} V"))
            written.append(save_figure(fig, run_dir / f"{prefix}write.png"))
        else:
            written.append(save_figure(read_figure(r, _title(cond, "read")),
                                       run_dir / "read.png"))
    for e_path in sorted(run_dir.glob("*energy.json")):
        prefix = e_path.name[: -len("energy.json")]
        reports = reports_from_json(json.loads(e_path.read_text()))
        write_energy_files(run_dir, reports, prefix)
        written += [run_dir / f"{prefix}energy.csv", run_dir / f"{prefix}energy.png"]
    if not written:
        raise FileNotFoundError(f"{run_dir}: no result.json or energy.json to render")
    return written
