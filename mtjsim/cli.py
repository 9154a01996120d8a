"""Command line: mtjsim demo | netlist | read. Units are in option names; SI inside."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar, SenseKind
from mtjsim.devices.mtj import load_preset, preset_names
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
    g = p.add_argument_group("device")
    g.add_argument("--device", choices=preset_names(), default="pmtj_40nm",
                   help="MTJ preset (mtjsim/devices/presets.toml; default pmtj_40nm)")
    g.add_argument("--diameter-nm", type=float, default=None,
                   help="override the preset's MTJ diameter, nm (sets R_P, I_c0 and Delta)")
    g = p.add_argument_group("state")
    g.add_argument("--states", type=Path, default=None,
                   help=".npy file (rows x cols) of states, 0 = P, 1 = AP")
    g.add_argument("--seed", type=int, default=0,
                   help="seed for random states when --states is not given (default 0)")


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
                   help="solve as a transient (waveforms) even for a single input vector")
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
                  netlist_name="netlist.cir",
                  backend=Backend(a.backend))
    wall = time.perf_counter() - t0
    write_read_run(a.out, xbar, result)
    t = result.timings_s
    print(f"engine: ngspice ({a.backend}); {xbar.spec.kind.value} {xbar.spec.rows}x"
          f"{xbar.spec.cols}, {result.i_out_a.shape[0]} input vector(s)")
    print(f"wall {wall:.3f} s = build {t['build_s']:.3f} + write {t['netlist_write_s']:.3f} + "
          f"ngspice {t['ngspice_s']:.3f} + parse {t['parse_s']:.3f} s")
    print(f"i_out (uA), vector 0: {np.array2string(result.i_out_a[0] * 1e6, precision=3)}")
    print(f"wrote {a.out}/netlist.cir, result.json, read.png")
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
