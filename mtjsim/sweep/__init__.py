"""Sweeps of device, parasitic, array and pulse parameters: a TOML file in, one resumable
folder out (a JSON file per point, a CSV table, plots), run on dask.distributed.

    from mtjsim.sweep import load_sweep, run_sweep
    run = run_sweep(load_sweep("examples/sweep_diameter.toml"), "runs/diameter", workers=2)

See docs/sweeps.md for the file format and the metrics.
"""

from mtjsim.sweep.spec import Engine, Metric, Point, Sweep, load_sweep, parse_sweep

__all__ = ["Engine", "Metric", "Point", "Sweep", "load_sweep", "parse_sweep", "run_point",
           "run_sweep", "render_plots", "rerender_sweep"]


def __getattr__(name):
    # Lazy: importing the package must not import dask or matplotlib.
    if name == "run_sweep":
        from mtjsim.sweep.runner import run_sweep
        return run_sweep
    if name == "run_point":
        from mtjsim.sweep.point import run_point
        return run_point
    if name == "render_plots":
        from mtjsim.sweep.plots import render_plots
        return render_plots
    if name == "rerender_sweep":
        from mtjsim.sweep.cli import rerender_sweep
        return rerender_sweep
    raise AttributeError(f"module 'mtjsim.sweep' has no attribute {name!r}")
