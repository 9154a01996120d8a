"""``mtjsim sweep FILE --out DIR [--workers N | --scheduler ADDRESS]`` and the sweep half of
``mtjsim report DIR``.

Registered by mtjsim/cli.py (``add_sweep_parser(sub)``); also runs on its own as
``python -m mtjsim.sweep FILE --out DIR``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtjsim.sweep.store import is_sweep_dir

__all__ = ["add_sweep_parser", "cmd_sweep", "rerender_sweep", "is_sweep_dir", "main"]


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "sweep", help="run a parameter sweep (TOML file) on dask.distributed: resumable, "
                      "one table and plots",
        description="Run every point of a sweep file on a local Dask cluster (one worker "
                    "process per core) or an existing one. Finished points are written at "
                    "once to DIR/points/; run the same command again to resume. See "
                    "docs/sweeps.md for the file format.")
    add_sweep_args(p)
    p.set_defaults(func=cmd_sweep)
    return p


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="sweep file (TOML), e.g. examples/sweep_diameter.toml")
    p.add_argument("--out", type=Path, default=None,
                   help="sweep folder: points/, sweep.csv, plots/ (default runs/sweep-<name>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None,
                   help="local worker processes, one thread each (default: one per core)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (its "
                        "workers need mtjsim and ngspice installed)")
    p.add_argument("--retry-failed", action="store_true",
                   help="recompute the points recorded as failed (default: keep them)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="write the table only")


def cmd_sweep(a) -> int:
    from mtjsim.sweep.runner import run_sweep
    from mtjsim.sweep.spec import load_sweep
    sweep = load_sweep(a.file)
    out = a.out if a.out is not None else Path("runs") / f"sweep-{sweep.name}"
    n = len(sweep.points)
    where = f"scheduler {a.scheduler}" if a.scheduler else \
        f"local cluster, {a.workers or 'one per core'} worker(s)"
    print(f"sweep {sweep.name}: {n} points x {sweep.n_seeds} seeds, metrics "
          f"{', '.join(sweep.metrics)}, engine {sweep.engine}; {where}; out {out}",
          flush=True)
    run = run_sweep(sweep, out, workers=a.workers, scheduler=a.scheduler,
                    retry_failed=a.retry_failed, progress=not a.no_progress,
                    plots=not a.no_plots)
    ok = run.done - run.failed
    print(f"{run.done} of {n} points finished ({ok} ok, {run.failed} failed; {run.skipped} "
          f"from before, {run.computed} computed now"
          + (f", {run.lost} lost by the cluster" if run.lost else "") + f") in "
          f"{run.wall_s:.1f} s")
    if run.failed:
        print(f"failed points: see the error and netlist columns of {run.table}")
    print(f"wrote {run.table}" + "".join(f"\nwrote {p}" for p in run.plots))
    if run.interrupted or run.lost:
        print(f"interrupted: run the same command again to compute the "
              f"{n - run.done} remaining point(s)", file=sys.stderr)
        return 130 if run.interrupted else 1
    return 0


def rerender_sweep(sweep_dir: Path) -> list[Path]:
    """Rebuild ``sweep.csv`` from the finished points (when ``sweep.json`` is there) and
    redraw the plots; returns the files written. For ``mtjsim report DIR``."""
    from mtjsim.sweep import store
    from mtjsim.sweep.plots import render_plots
    sweep_dir = Path(sweep_dir)
    if not is_sweep_dir(sweep_dir):
        raise FileNotFoundError(f"{sweep_dir}: no {store.TABLE} or {store.SWEEP_JSON}: not a "
                                f"sweep folder")
    written = []
    if (sweep_dir / store.SWEEP_JSON).is_file():
        points = _points_from_json(sweep_dir)
        records = {p.id: r for p in points if (r := store.load_record(sweep_dir, p.id))}
        written.append(store.write_table(sweep_dir, points, records))
    return written + render_plots(sweep_dir)


def _points_from_json(sweep_dir: Path):
    """Lightweight points (index, id, params, seed) from sweep.json, enough for the table."""
    import json
    from types import SimpleNamespace
    from mtjsim.sweep import store
    data = json.loads((sweep_dir / store.SWEEP_JSON).read_text())
    return [SimpleNamespace(index=p["index"], id=p["id"], params=p["params"], seed=p["seed"])
            for p in data["points"]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtjsim.sweep",
                                description="Run a parameter sweep (see docs/sweeps.md).")
    add_sweep_args(p)
    a = p.parse_args(argv)
    from mtjsim.engines.ngspice import NgspiceError
    try:
        return cmd_sweep(a)
    except (ValueError, FileNotFoundError, NgspiceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
