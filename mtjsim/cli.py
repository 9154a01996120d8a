"""Command line: mtjsim demo | netlist | read | write | write-stats | validate | sweep | train |
report.
Units are in option names; SI inside."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar, SenseKind
from mtjsim.devices.mtj import load_preset, preset_names
from mtjsim.engines import Engine
from mtjsim.engines.ngspice import Backend, NgspiceError


def add_array_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("array")
    g.add_argument("--array", choices=[k.value for k in ArrayKind], default="passive",
                   help="passive (0T1R) or 1t1r crossbar (default: passive)")
    g.add_argument("--rows", type=int, default=16, help="word lines (1..1024, default 16)")
    g.add_argument("--cols", type=int, default=16, help="bit lines (1..1024, default 16)")
    g.add_argument("--r-wire-ohm", type=float, default=1.0,
                   help="wire resistance per cell segment, ohm (default 1)")
    g.add_argument("--c-wire-f", type=float, default=0.1e-15,
                   help="wire capacitance per cell segment to ground, farad (default 1e-16)")
    g.add_argument("--r-driver-ohm", type=float, default=20.0,
                   help="output resistance of each line driver, ohm (default 20)")
    g.add_argument("--sense", choices=[k.value for k in SenseKind], default="tia",
                   help="tia: virtual ground (ideal TIA); resistor: sense resistor (default tia)")
    g.add_argument("--r-sense-ohm", type=float, default=100.0,
                   help="sense resistor, ohm, with --sense resistor (default 100)")
    g.add_argument("--v-gate-v", type=float, default=1.2,
                   help="1T1R gate (word-line) voltage of selected rows, volts (default 1.2)")
    g.add_argument("--engine", choices=["ngspice", "fast"], default="ngspice",
                   help="ngspice (the reference, writes the netlist) or the fast nodal engine "
                        "(exact DC reads, quasi-static writes; see docs/fast_engine.md)")
    g = p.add_argument_group("device")
    g.add_argument("--device", choices=preset_names(), default="pmtj_40nm",
                   help="MTJ preset (mtjsim/devices/presets.toml; default pmtj_40nm)")
    g.add_argument("--diameter-nm", type=float, default=None,
                   help="override the preset's MTJ diameter, nm (sets R_P, I_c0 and Delta)")
    g = p.add_argument_group("state")
    g.add_argument("--states", type=Path, default=None,
                   help=".npy file (rows x cols) of states, 0 = P, 1 = AP")
    g.add_argument("--seed", type=int, default=0,
                   help="seed for random states when --states is not given, and for writes the "
                        "seed of the switching thresholds (default 0)")


def spec_from_args(a) -> ArraySpec:
    overrides = {} if a.diameter_nm is None else {"diameter_m": a.diameter_nm * 1e-9}
    return ArraySpec(kind=ArrayKind(a.array), rows=a.rows, cols=a.cols,
                     device=load_preset(a.device, **overrides), r_wire_ohm=a.r_wire_ohm,
                     c_wire_f=a.c_wire_f, r_driver_ohm=a.r_driver_ohm,
                     sense=SenseKind(a.sense), r_sense_ohm=a.r_sense_ohm, v_gate_v=a.v_gate_v)


def crossbar_from_args(a) -> Crossbar:
    spec = spec_from_args(a)
    if a.states is not None:
        return Crossbar(spec, np.load(a.states))
    return Crossbar.random(spec, a.seed)


def add_read_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("read")
    g.add_argument("--inputs", type=Path, default=None,
                   help=".npy file (batch x rows, volts) of input vectors on the row drivers")
    g.add_argument("--v-read-v", type=float, default=0.1,
                   help="read voltage on every row when --inputs is not given (default 0.1 V)")
    g.add_argument("--transient", action="store_true",
                   help="solve as a transient even for a single input vector: waveforms and "
                        "the energy report (energy.json, energy.csv, energy.png)")
    g.add_argument("--backend", choices=[b.value for b in Backend], default="subprocess",
                   help="ngspice as a subprocess (default) or as PySpice's shared library")


def inputs_from_args(a, rows: int) -> np.ndarray:
    if a.inputs is not None:
        return np.load(a.inputs)
    return np.full((1, rows), a.v_read_v)


def cmd_read(a) -> int:
    from mtjsim.ops.read import ReadSettings, read
    from mtjsim.report import write_read_run
    xbar = crossbar_from_args(a)
    t0 = time.perf_counter()
    result = read(xbar, inputs_from_args(a, xbar.spec.rows),
                  settings=ReadSettings(transient=a.transient), workdir=a.out,
                  netlist_name="netlist.cir", backend=Backend(a.backend),
                  engine=Engine(a.engine))
    wall = time.perf_counter() - t0
    write_read_run(a.out, xbar, result)
    t = result.timings_s
    engine = f"ngspice ({a.backend})" if a.engine == "ngspice" else "fast"
    print(f"engine: {engine}; {xbar.spec.kind.value} {xbar.spec.rows}x"
          f"{xbar.spec.cols}, {result.i_out_a.shape[0]} input vector(s)")
    if a.engine == "ngspice":
        print(f"wall {wall:.3f} s = build {t['build_s']:.3f} + write {t['netlist_write_s']:.3f} "
              f"+ ngspice {t['ngspice_s']:.3f} + parse {t['parse_s']:.3f} s")
    else:
        print(f"wall {wall:.3f} s (no netlist: the fast engine solves the network directly)")
    print(f"i_out (uA), vector 0: {np.array2string(result.i_out_a[0] * 1e6, precision=3)}")
    if result.energy is not None:
        print_energy([result.energy])
    print(f"wrote {a.out}/netlist.cir, result.json, read.png"
          + (", energy.json, energy.csv, energy.png" if result.energy is not None else ""))
    return 0


def add_write_args(p: argparse.ArgumentParser) -> None:
    from mtjsim.ops.write import Direction, Parallelism, WriteScheme
    g = p.add_argument_group("write pulse program")
    g.add_argument("--scheme", choices=[s.value for s in WriteScheme], default=None,
                   help="v2 or v3 half-select (passive), 1t1r (gate select); default: v2 for "
                        "passive, 1t1r for 1t1r arrays")
    g.add_argument("--target-row", type=int, default=0, help="row of the cell to write")
    g.add_argument("--target-col", type=int, default=0, help="column of the cell to write")
    g.add_argument("--targets", type=Path, default=None,
                   help=".npy mask (rows x cols, 0/1) of cells to write (instead of one cell)")
    g.add_argument("--direction", choices=[d.value for d in Direction], default="set",
                   help="set: P -> AP; reset: AP -> P (default set)")
    g.add_argument("--parallel", choices=[q.value for q in Parallelism], default="row",
                   help="row: one pulse per row, its target columns at once; column: one "
                        "pulse per column (default row)")
    g.add_argument("--v-write-v", type=float, default=None,
                   help="write voltage, volts (default 0.5 passive, 1.2 for 1t1r)")
    g.add_argument("--pulse-width-s", type=float, default=10e-9,
                   help="pulse width (flat top), seconds (default 10e-9)")
    g.add_argument("--rise-s", type=float, default=0.2e-9,
                   help="rise and fall time, seconds (default 0.2e-9)")
    g.add_argument("--v-gate-write-v", type=float, default=1.2,
                   help="1t1r: gate voltage of the selected row during a write, volts")
    g.add_argument("--initial", choices=["opposite", "random", "p", "ap"], default="opposite",
                   help="initial states without --states: opposite of the target state "
                        "(default), random from --seed, all P or all AP")
    g.add_argument("--threshold-seed", type=int, default=None,
                   help="seed of the per-pulse switching thresholds (default: --seed)")


def write_setup(a):
    """(crossbar, program, threshold seed) from the write options."""
    from mtjsim.ops.write import Direction, Parallelism, PulseProgram, WriteScheme
    spec = spec_from_args(a)
    direction = Direction(a.direction)
    if a.states is not None:
        xbar = Crossbar(spec, np.load(a.states))
    elif a.initial == "random":
        xbar = Crossbar.random(spec, a.seed)
    else:
        fill = {"p": 0, "ap": 1, "opposite": 1 - direction.target_state}[a.initial]
        xbar = Crossbar(spec, np.full(spec.shape, fill, dtype=np.int8))
    passive = spec.kind is ArrayKind.PASSIVE
    scheme = WriteScheme(a.scheme or ("v2" if passive else "1t1r"))
    v_write = a.v_write_v if a.v_write_v is not None else (0.5 if passive else 1.2)
    kw = dict(v_write_v=v_write, pulse_width_s=a.pulse_width_s, rise_s=a.rise_s,
              fall_s=a.rise_s, parallel=Parallelism(a.parallel), v_gate_write_v=a.v_gate_write_v)
    if a.targets is not None:
        program = PulseProgram(scheme, direction, np.load(a.targets), **kw)
    else:
        program = PulseProgram.single(spec.shape, a.target_row, a.target_col, scheme, direction,
                                      **kw)
    seed = a.seed if a.threshold_seed is None else a.threshold_seed
    return xbar, program, seed


def cmd_write(a) -> int:
    from mtjsim.ops.write import write
    from mtjsim.report import write_write_run
    xbar, program, seed = write_setup(a)
    r = write(xbar, program, seed, workdir=a.out, netlist_name="netlist.cir",
              engine=Engine(a.engine))
    write_write_run(a.out, xbar, program, seed, r)
    print(f"engine: {a.engine}; {xbar.spec.kind.value} {xbar.spec.rows}x{xbar.spec.cols}, "
          f"{program.scheme.value} {program.direction.value}, {program.v_write_v:g} V, "
          f"{program.pulse_width_s * 1e9:g} ns, {len(program.pulses())} pulse(s), seed {seed}")
    print(f"targets {int(program.targets.sum())}, switched {int(r.switched.sum())}, write errors "
          f"{int(r.write_errors.sum())}, disturbed {int(r.disturbed.sum())}")
    for i, j in np.argwhere(r.disturbed)[:10]:
        print(f"  disturb at ({i},{j}): peak {r.i_cell_peak_a[i, j] * 1e6:.1f} uA")
    print_energy([r.energy])
    secs = r.timings_s.get("ngspice_s", r.timings_s.get("fast_s", 0.0))
    print(f"{a.engine} {secs:.2f} s, {r.n_time_points} time points; wrote {a.out}/"
          + ("netlist.cir, " if a.engine == "ngspice" else "")
          + "result.json, waveforms.npz, write.png, energy.json/.csv/.png")
    return 0


def cmd_write_stats(a) -> int:
    from mtjsim.ops.write_stats import write_stats
    from mtjsim.report import write_stats_run
    xbar, program, seed = write_setup(a)
    stats = write_stats(xbar, program, a.seeds, first_seed=seed, workers=a.workers,
                        confidence=a.confidence, engine=Engine(a.engine))
    write_stats_run(a.out, xbar, program, stats)
    t = program.targets
    print(f"engine: {a.engine}; {a.seeds} seeds from {seed}, {a.workers} worker(s)")
    print(f"target cells: P_sw mean {stats.p_switch[t].mean():.3f}; write error rate "
          f"{stats.write_error_rate:.4f}; disturb rate {stats.disturb_rate:.4g}")
    print(f"wrote {a.out}/stats.json, write_stats.png")
    return 0


def print_energy(reports) -> None:
    print(f"{'operation':<12}{'ops':>8}{'energy (pJ)':>13}{'fJ/op':>10}{'TOPS/W':>9}"
          f"{'array':>8}{'wires':>8}{'access':>8}{'periph.':>8}  (share of dissipated)")
    for r in reports:
        total = sum(r.breakdown.values())
        share = [r.breakdown[k] / total for k in ("array_j", "wires_j", "access_j", "periphery_j")]
        print(f"{r.operation:<12}{r.ops:>8}{r.energy_j * 1e12:>13.4g}"
              f"{r.energy_per_op_j * 1e15:>10.4g}{r.tops_per_w:>9.3g}"
              + "".join(f"{x:>8.1%}" for x in share))


def cmd_validate(a) -> int:
    from mtjsim import validate
    if a.quick:
        checks, ok = validate.run(sizes=(4, 8), r_wires=(0.0, 5.0), n_seeds=4, write_sizes=(4,))
    else:
        checks, ok = validate.run()
    print("fast engine against ngspice (the reference), same arrays, same seeds")
    print(validate.format_table(checks))
    print(f"{sum(c.ok for c in checks)} passed, {sum(not c.ok for c in checks)} failed")
    return 0 if ok else 1


def cmd_report(a) -> int:
    from mtjsim.sweep.cli import is_sweep_dir, rerender_sweep
    if is_sweep_dir(a.run_dir):
        paths = rerender_sweep(a.run_dir)
    else:
        from mtjsim.report import rerender
        paths = rerender(a.run_dir)
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_netlist(a) -> int:
    from mtjsim.report import write_example_netlists, write_read_netlist
    if a.all_examples:
        for path in write_example_netlists(a.out):
            print(f"wrote {path}")
        return 0
    xbar = crossbar_from_args(a)
    path = write_read_netlist(xbar, inputs_from_args(a, xbar.spec.rows), a.out)
    print(f"wrote {path}  (run it with: ngspice -b {path})")
    return 0


def cmd_demo(a) -> int:
    from mtjsim.demo import run_demo
    return run_demo(a.out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mtjsim",
        description="Circuit-level simulation of MTJ crossbar arrays, solved by ngspice. "
                    "All physical values are SI unless the option name says otherwise.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="default 1T1R array: feedforward read, summary, plots")
    d.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    d.set_defaults(func=cmd_demo)

    n = sub.add_parser("netlist", help="write the standalone ngspice netlist of a read")
    add_array_args(n)
    add_read_args(n)
    n.add_argument("--out", type=Path, default=Path("netlist.cir"),
                   help="netlist file (or folder with --all-examples)")
    n.add_argument("--all-examples", action="store_true",
                   help="write every example netlist of netlists/ into the --out folder")
    n.set_defaults(func=cmd_netlist)

    r = sub.add_parser("read", help="solve a feedforward read in ngspice")
    add_array_args(r)
    add_read_args(r)
    r.add_argument("--out", type=Path, default=Path("runs/read"),
                   help="output folder: netlist.cir, result.json, read.png")
    r.set_defaults(func=cmd_read)

    w = sub.add_parser("write", help="simulate a write pulse program in ngspice: which cells "
                                     "switch, disturbs, currents")
    add_array_args(w)
    add_write_args(w)
    w.add_argument("--out", type=Path, default=Path("runs/write"),
                   help="output folder: netlist.cir, result.json, waveforms.npz, write.png")
    w.set_defaults(func=cmd_write)

    ws = sub.add_parser("write-stats", help="repeat a write over many seeds: switching "
                                            "probability per cell, write error and disturb rates")
    add_array_args(ws)
    add_write_args(ws)
    ws.add_argument("--seeds", type=int, default=50, help="number of seeds (default 50)")
    ws.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    ws.add_argument("--confidence", type=float, default=0.95,
                    help="confidence of the per-cell interval (default 0.95)")
    ws.add_argument("--out", type=Path, default=Path("runs/write-stats"),
                    help="output folder: stats.json, write_stats.png")
    ws.set_defaults(func=cmd_write_stats)

    v = sub.add_parser("validate", help="run the fast engine against ngspice on random arrays "
                                        "(reads and writes); exits 1 on disagreement")
    v.add_argument("--quick", action="store_true", help="small arrays and few seeds (~1 min)")
    v.set_defaults(func=cmd_validate)

    from mtjsim.sweep.cli import add_sweep_parser
    from mtjsim.train.cli import add_train_parser
    add_sweep_parser(sub)
    add_train_parser(sub)

    rp = sub.add_parser("report", help="re-render the plots and energy tables of an earlier run")
    rp.add_argument("run_dir", type=Path, help="a run folder (with result.json / energy.json)")
    rp.set_defaults(func=cmd_report)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NgspiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
