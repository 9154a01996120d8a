"""Sweeps: file format, resumability, failures, worker-count independence, physics along a
sweep. One small sweep (4x4 passive arrays, 2 seeds) runs on ngspice through
dask.distributed and serves several tests: uninterrupted with 1 worker, with 2 workers, and
killed then restarted."""

from __future__ import annotations

import inspect
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mtjsim.sweep import load_sweep, parse_sweep
from mtjsim.sweep import store
from mtjsim.sweep.spec import engine_kwargs

REPO = Path(__file__).resolve().parents[1]

# Twelve points, zipped: six diameters (R_P ~ 1/d^2), four wire resistances at 40 nm (read
# margin falls), a negative diameter (invalid: fails in setup) and a device whose v_h_v
# makes ngspice fail (v_h_v^2 overflows in the B-source: "out of range").
SWEEP_TOML = """
name = "test"
seeds = 2
seed = 7
metrics = ["cell_resistance", "read_margin", "write_error_rate", "disturb_rate"]
[base]
array = { kind = "passive", size = 4 }
write = { target = "center_cell", v_write_v = 0.6 }
[sweep]
mode = "zip"
"device.diameter_m" = [20e-9, 30e-9, 45e-9, 60e-9, 80e-9, 100e-9,
                       40e-9, 40e-9, 40e-9, 40e-9, -40e-9, 40e-9]
"array.r_wire_ohm"  = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
                       0.2, 2.0, 10.0, 50.0, 1.0, 1.0]
"device.v_h_v"      = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
                       0.5, 0.5, 0.5, 0.5, 0.5, 1e200]
"""
N_POINTS = 12


def _rows(folder: Path) -> list[dict]:
    return store.read_table(folder / store.TABLE)[1]


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweepfile") / "test_sweep.toml"
    path.write_text(SWEEP_TOML)
    return path


@pytest.fixture(scope="module")
def reference(sweep_file, tmp_path_factory):
    """The sweep run once, uninterrupted, on one local worker (with plots)."""
    from mtjsim.sweep.runner import run_sweep
    out = tmp_path_factory.mktemp("ref")
    run = run_sweep(load_sweep(sweep_file), out, workers=1, progress=False)
    return SimpleNamespace(out=out, run=run)


# --- file format (no ngspice) -------------------------------------------------------------
def test_ranges_grid_and_zip():
    s = parse_sweep({
        "base": {"array": {"size": 4}},
        "sweep": {"device.diameter_m": {"linspace": [20e-9, 100e-9, 5]},
                  "array": {"r_wire_ohm": {"logrange": [0.1, 10, 3]}},
                  "array.size": {"range": [16, 64, 16]}}})
    assert s.param_paths == ["device.diameter_m", "array.r_wire_ohm", "array.size"]
    assert s.axes[0]["device.diameter_m"] == [2e-08, 4e-08, 6e-08, 8e-08, 1e-07]
    assert s.axes[1]["array.r_wire_ohm"] == [0.1, 1.0, 10.0]
    assert s.axes[2]["array.size"] == [16, 32, 48, 64]
    pts = s.points
    assert len(pts) == 5 * 3 * 4
    assert pts[0].params == {"device.diameter_m": 2e-08, "array.r_wire_ohm": 0.1,
                             "array.size": 16}
    assert pts[0].config["array"]["rows"] == pts[0].config["array"]["cols"] == 16
    assert len({p.id for p in pts}) == len(pts)

    z = parse_sweep({"sweep": {"mode": "zip", "write.v_write_v": [0.5, 0.6],
                               "write.pulse_width_s": [20e-9, 10e-9]}})
    assert [p.params for p in z.points] == [
        {"write.v_write_v": 0.5, "write.pulse_width_s": 2e-08},
        {"write.v_write_v": 0.6, "write.pulse_width_s": 1e-08}]
    g = parse_sweep({"sweep": {"write.scheme": ["v2", "v3"],
                               "zip": [{"write.v_write_v": [0.5, 0.6, 0.7],
                                        "write.pulse_width_s": [30e-9, 20e-9, 10e-9]}]}})
    assert len(g.points) == 6 and g.points[1].params["write.pulse_width_s"] == 2e-08


@pytest.mark.parametrize("data, match", [
    ({"sweep": {"device.diameter": [1e-8]}}, "unknown key 'diameter'"),
    ({"sweep": {"devices.diameter_m": [1e-8]}}, "unknown section"),
    ({"metrics": ["read_margins"]}, "not a metric"),
    ({"engine": "hspice"}, "engine='hspice'"),
    ({"sweep": {"mode": "zip", "array.rows": [4, 8], "array.cols": [4]}}, "one length"),
    ({"sweep": {"array.size": [4], "array.rows": [4]}}, "array.size"),
    ({"sweep": {"array.r_wire_ohm": {"range": [1, 0, 1]}}}, "step"),
    ({"base": {"device": {"preset": "nope"}}}, "device.preset"),
    ({"colour": "blue"}, "unknown top-level"),
])
def test_bad_sweep_files_name_the_problem(data, match):
    with pytest.raises(ValueError, match=match):
        parse_sweep(data)


def test_point_ids_and_seeds_depend_on_parameters_not_position():
    a = parse_sweep({"seed": 5, "sweep": {"array.r_wire_ohm": [1.0, 2.0]}}).points
    b = parse_sweep({"seed": 5, "sweep": {"array.r_wire_ohm": [3.0, 2.0, 0.5]}}).points
    assert (a[1].id, a[1].seed) == (b[1].id, b[1].seed)        # 2.0 ohm: same point
    assert a[0].id != b[0].id and a[0].seed != b[0].seed
    c = parse_sweep({"seed": 6, "sweep": {"array.r_wire_ohm": [1.0, 2.0]}}).points
    assert c[1].seed != a[1].seed                              # base seed matters
    d = parse_sweep({"seed": 5, "seeds": 9, "sweep": {"array.r_wire_ohm": [1.0, 2.0]}}).points
    assert d[1].seed == a[1].seed and d[1].id != a[1].id       # more seeds: another result


def test_engine_choice():
    def no_engine(xbar):
        return xbar

    def with_engine(xbar, *, engine="ngspice"):
        return xbar

    assert engine_kwargs(no_engine, "ngspice") == {}
    assert engine_kwargs(with_engine, "fast") == {"engine": "fast"}
    with pytest.raises(ValueError, match="engine 'fast' is not available"):
        engine_kwargs(no_engine, "fast")
    from mtjsim.ops.read import read
    if "engine" not in inspect.signature(read).parameters:
        with pytest.raises(ValueError, match="engine 'fast' is not available"):
            parse_sweep({"engine": "fast", "metrics": ["read_margin"]})


@pytest.mark.ngspice
def test_fast_engine_points_agree_with_ngspice():
    """The same point on both engines: reads to 1e-9, the write statistics (same seeds, so
    the same switching thresholds) exactly on this easy case."""
    from mtjsim.ops.read import read
    from mtjsim.sweep.point import run_point
    if "engine" not in inspect.signature(read).parameters:
        pytest.fail("mtjsim.ops.read.read takes no engine argument: no fast engine")
    data = {"seeds": 2, "metrics": ["cell_resistance", "read_margin", "write_error_rate"],
            "base": {"array": {"size": 6, "r_wire_ohm": 5.0}}}
    ref = run_point(parse_sweep({**data, "engine": "ngspice"}).points[0])["metrics"]
    fast = run_point(parse_sweep({**data, "engine": "fast"}).points[0])["metrics"]
    for key in ("r_p_spice_ohm", "read_margin_far", "i_p_far_a", "i_ap_far_a",
                "read_margin_near"):
        assert fast[key] == pytest.approx(ref[key], rel=1e-9), key
    assert fast["write_error_rate"] == ref["write_error_rate"]
    assert fast["disturb_rate"] == ref["disturb_rate"]
    with pytest.raises(ValueError, match="no feedforward energy"):
        parse_sweep({"engine": "fast", "metrics": ["feedforward_energy"]})


def test_train_accuracy_without_a_training_module_is_a_clear_failure(monkeypatch):
    from mtjsim.sweep.point import run_point
    monkeypatch.setitem(sys.modules, "mtjsim.train", None)     # as if it did not exist
    monkeypatch.setitem(sys.modules, "mtjsim.train.loop", None)
    (pt,) = parse_sweep({"metrics": ["train_accuracy"]}).points
    rec = run_point(pt)
    assert rec["status"] == "failed"
    assert "not available yet" in rec["error"]["summary"]
    assert rec["metrics"]["r_p_ohm"] > 0           # what finished before is kept in the JSON


def test_train_accuracy_runs_a_short_training():
    """One epoch of the Wine network on 15x15 passive tiles with the fast engine."""
    from mtjsim.sweep.point import run_point
    s = parse_sweep({"engine": "fast", "metrics": ["train_accuracy"], "base": {
        "array": {"size": 15}, "train": {"dataset": "wine", "epochs": 1}}})
    rec = run_point(s.points[0])
    assert rec["status"] == "ok", rec["error"]
    m = rec["metrics"]
    assert 0.0 <= m["train_accuracy"] <= 1.0 and m["train_accuracy"] > 0.4   # 3 classes
    assert m["train_gap_to_baseline"] == pytest.approx(
        m["train_baseline_accuracy"] - m["train_accuracy"])
    bad = parse_sweep({"metrics": ["train_accuracy"],
                       "base": {"train": {"epochz": 1}}}).points[0]
    assert "not a training setting" in run_point(bad)["error"]["summary"]


def test_plots_from_a_two_dimensional_table(tmp_path):
    """Heatmaps, lines and energy-versus-size from a table alone (what `mtjsim report`
    redraws); a failed point is a gap."""
    from mtjsim.sweep.cli import rerender_sweep
    s = parse_sweep({"sweep": {"device.diameter_m": [20e-9, 40e-9, 60e-9],
                               "array.r_wire_ohm": [0.1, 1.0, 10.0]}})
    records = {}
    for p in s.points:
        d, r = p.params["device.diameter_m"], p.params["array.r_wire_ohm"]
        records[p.id] = {"id": p.id, "status": "ok", "metrics": {
            "read_margin_far": 0.6 - 0.01 * r, "write_error_rate": d * 1e7 / 10,
            "ff_energy_per_op_j": d * d * 1e3, "update_energy_per_op_j": d * d * 1e5}}
    bad = s.points[4]
    records[bad.id] = {"id": bad.id, "status": "failed", "metrics": {},
                       "error": {"summary": "NgspiceError in write: boom"}}
    store.prepare(tmp_path, s)
    for rec in records.values():
        store.save_record(tmp_path, {**rec, "index": 0})
    written = rerender_sweep(tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["energy_vs_diameter.png", "heatmaps.png", "lines.png", "sweep.csv"]
    assert all(p.stat().st_size > 1000 for p in written)
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows].count("failed") == 1
    assert rows[4]["read_margin_far"] == "" and rows[4]["error"].startswith("NgspiceError")


# --- on ngspice through dask ----------------------------------------------------------------
@pytest.mark.ngspice
def test_failures_are_recorded_and_the_rest_carries_on(reference):
    rows = _rows(reference.out)
    assert len(rows) == N_POINTS
    status = [r["status"] for r in rows]
    assert status.count("ok") == N_POINTS - 2
    invalid, spice = rows[10], rows[11]
    assert invalid["status"] == "failed" and "diameter_m=-4e-08" in invalid["error"]
    assert invalid["netlist"] == ""
    assert spice["status"] == "failed" and spice["error"].startswith("NgspiceError")
    assert "out of range" in spice["error"]
    netlist = reference.out / spice["netlist"]
    assert netlist.is_file() and "vh=1e+200" in netlist.read_text()
    rec = json.loads(store.point_path(reference.out, spice["id"]).read_text())
    assert rec["error"]["type"] == "NgspiceError" and "out of range" in \
        rec["error"]["ngspice_output"]
    assert reference.run.failed == 2 and reference.run.computed == N_POINTS
    assert (reference.out / "plots" / "lines.png").is_file()


@pytest.mark.ngspice
def test_physics_along_the_sweep(reference):
    rows = _rows(reference.out)
    # R_P = RA / (pi d^2 / 4), solved by ngspice on a lone cell, falls as 1/d^2.
    sized = [r for r in rows[:6]]
    ra = 5e-12
    for r in sized:
        d = float(r["device.diameter_m"])
        r_p = float(r["r_p_spice_ohm"])
        assert r_p == pytest.approx(ra / (math.pi * d * d / 4), rel=1e-9)
    k = [float(r["r_p_spice_ohm"]) * float(r["device.diameter_m"]) ** 2 for r in sized]
    assert max(k) / min(k) - 1 < 1e-9
    # The far cell's read margin falls as the wire resistance rises (40 nm, 0.2 -> 50 ohm),
    # and stays below the margin without parasitics.
    wire = rows[6:10]
    r_wire = [float(r["array.r_wire_ohm"]) for r in wire]
    margin = [float(r["read_margin_far"]) for r in wire]
    assert r_wire == sorted(r_wire)
    assert all(a > b for a, b in zip(margin, margin[1:])), margin
    assert all(m < float(wire[0]["read_margin_ideal"]) for m in margin)
    # and the currents with it
    i_p = [float(r["i_p_far_a"]) for r in wire]
    assert all(a > b for a, b in zip(i_p, i_p[1:]))


@pytest.mark.ngspice
def test_one_and_two_workers_give_identical_tables(reference, sweep_file, tmp_path):
    from mtjsim.sweep.runner import run_sweep
    run = run_sweep(load_sweep(sweep_file), tmp_path, workers=2, progress=False, plots=False)
    assert run.workers == 2 and run.computed == N_POINTS
    assert (tmp_path / store.TABLE).read_bytes() == (reference.out / store.TABLE).read_bytes()


@pytest.mark.ngspice
def test_existing_cluster_by_scheduler_address(reference, sweep_file, tmp_path):
    """--scheduler ADDRESS: the same sweep on a cluster started elsewhere (here: in this
    process, two worker threads) gives the same table."""
    import logging

    from distributed import LocalCluster

    from mtjsim.sweep.runner import run_sweep
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        run = run_sweep(load_sweep(sweep_file), tmp_path, scheduler=cluster.scheduler_address,
                        progress=False, plots=False)
    assert run.computed == N_POINTS
    assert (tmp_path / store.TABLE).read_bytes() == (reference.out / store.TABLE).read_bytes()


@pytest.mark.ngspice
def test_killed_sweep_resumes_without_recomputing(reference, sweep_file, tmp_path):
    """Kill the whole sweep process group (driver, scheduler, workers, ngspice) once a few
    points are on disk; start again: the finished points are not recomputed and the table
    equals the uninterrupted run's."""
    from mtjsim.sweep.runner import run_sweep
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtjsim.sweep", str(sweep_file), "--out", str(out),
         "--workers", "1", "--no-progress", "--no-plots"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    points = out / store.POINTS
    deadline = time.monotonic() + 120
    try:
        while len(list(points.glob("*.json"))) < 3:
            assert proc.poll() is None, f"sweep ended early: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no points written within 120 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)          # the group this test started
        proc.wait(timeout=30)
        proc.stderr.close()
    done_before = {p.stem: p.stat().st_mtime_ns for p in points.glob("*.json")}
    assert 3 <= len(done_before) < N_POINTS, "kill came too late to test a resume"
    assert not (out / store.TABLE).exists()          # the killed run never got to its table

    run = run_sweep(load_sweep(sweep_file), out, workers=1, progress=False, plots=False)
    assert run.skipped == len(done_before)
    assert run.computed == N_POINTS - len(done_before)
    after = {p.stem: p.stat().st_mtime_ns for p in points.glob("*.json")}
    assert {k: after[k] for k in done_before} == done_before        # not rewritten
    log = store.read_log(out)
    sessions = list(dict.fromkeys(e["session"] for e in log))
    assert len(sessions) == 2
    recomputed = {e["id"] for e in log if e["session"] == sessions[1]} & set(done_before)
    assert not recomputed
    assert (out / store.TABLE).read_bytes() == (reference.out / store.TABLE).read_bytes()


@pytest.mark.ngspice
def test_rerun_of_a_finished_sweep_computes_nothing(reference, sweep_file):
    from mtjsim.sweep.runner import run_sweep
    before = (reference.out / store.TABLE).read_bytes()
    run = run_sweep(load_sweep(sweep_file), reference.out, workers=1, progress=False,
                    plots=False)
    assert (run.skipped, run.computed, run.workers) == (N_POINTS, 0, 0)
    assert (reference.out / store.TABLE).read_bytes() == before


def test_cli_reports_a_bad_file(tmp_path, capsys):
    from mtjsim.sweep.cli import main
    bad = tmp_path / "bad.toml"
    bad.write_text('metrics = ["nope"]\n')
    assert main([str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not a metric" in capsys.readouterr().err


def test_example_sweep_files_parse():
    for path in sorted((REPO / "examples").glob("sweep_*.toml")):
        s = load_sweep(path)
        assert s.points and s.engine in ("ngspice", "fast"), path
