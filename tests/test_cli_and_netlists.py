"""The CLI's run folders and the checked-in example netlists."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mtjsim.cli import main
from mtjsim.engines.ngspice import Backend, parse_raw
from mtjsim.circuit.crossbar import ArraySpec, Crossbar
from mtjsim.ops.read import read

pytestmark = pytest.mark.ngspice
REPO = Path(__file__).resolve().parents[1]


def test_read_cli_writes_run_folder(tmp_path):
    states = (np.arange(12).reshape(3, 4) % 2).astype(np.int8)
    np.save(tmp_path / "s.npy", states)
    inputs = np.array([[0.1, 0.0, 0.2], [0.05, 0.05, 0.05]])
    np.save(tmp_path / "x.npy", inputs)
    out = tmp_path / "run"
    assert main(["read", "--array", "passive", "--rows", "3", "--cols", "4", "--r-wire-ohm",
                 "2", "--diameter-nm", "50", "--states", str(tmp_path / "s.npy"), "--inputs",
                 str(tmp_path / "x.npy"), "--out", str(out)]) == 0
    r = json.loads((out / "result.json").read_text())
    assert np.shape(r["i_out_a"]) == (2, 4)
    assert np.shape(r["v_in_v"]) == (2, 3)
    assert np.shape(r["r_cell_ohm"]) == (3, 4)
    np.testing.assert_array_equal(r["states"], states)
    assert r["r_wire_ohm"] == 2.0 and r["r_driver_ohm"] == 20.0 and "r_sense_ohm" in r
    # 50 nm: R_P = RA / area
    rp = 5e-12 / (np.pi * (50e-9) ** 2 / 4)
    assert np.asarray(r["r_cell_ohm"])[states == 0] == pytest.approx(rp, rel=1e-9)
    assert (out / "read.png").stat().st_size > 10_000
    # the netlist in the folder is the one solved: rerun it and compare
    proc = subprocess.run(["ngspice", "-b", "-r", str(tmp_path / "o.raw"), str(out / "netlist.cir")],
                          capture_output=True, text=True, cwd="/", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _, vec = parse_raw(tmp_path / "o.raw")
    t_end = np.array([20e-9, 40e-9])
    i_col0 = np.interp(t_end, vec["time"], vec["i(vsns0)"])
    np.testing.assert_allclose(i_col0, np.asarray(r["i_out_a"])[:, 0], rtol=1e-9)


def test_cli_rejects_bad_values_with_message(capsys):
    assert main(["read", "--rows", "0", "--out", "/tmp/never"]) == 2
    assert "rows=0" in capsys.readouterr().err


def test_help_mentions_units(capsys):
    with pytest.raises(SystemExit):
        main(["read", "--help"])
    text = capsys.readouterr().out
    for opt in ["--r-wire-ohm", "--diameter-nm", "--states", "--inputs", "--out", "volts", "ohm"]:
        assert opt in text


@pytest.mark.parametrize("netlist", sorted((REPO / "netlists").glob("*.cir")), ids=lambda p: p.name)
def test_checked_in_netlists_run_in_plain_ngspice(netlist, tmp_path):
    proc = subprocess.run(["ngspice", "-b", "-r", str(tmp_path / "o.raw"), netlist.name],
                          capture_output=True, text=True, cwd=netlist.parent, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _, vec = parse_raw(tmp_path / "o.raw")
    assert any(k.startswith("i(v") for k in vec)          # source currents were solved
    if netlist.name.startswith("write"):                    # and the MTJ states evolved
        assert any(k.endswith(".s)") for k in vec)


def test_checked_in_netlists_are_current(tmp_path):
    from mtjsim.report import write_example_netlists
    for path in write_example_netlists(tmp_path):
        text = path.read_text().replace(str(tmp_path), "")
        checked_in = (REPO / "netlists" / path.name)
        assert checked_in.exists(), f"run `make netlists`: {path.name} missing"
        body = lambda t: [l for l in t.splitlines() if not l.startswith(".include")]  # noqa: E731
        assert body(text) == body(checked_in.read_text()), f"run `make netlists`: {path.name}"


def test_shared_library_backend_gives_same_currents():
    xb = Crossbar.random(ArraySpec(rows=5, cols=4), seed=2)
    x = np.random.default_rng(1).uniform(0, 0.2, (2, 5))
    a = read(xb, x, backend=Backend.SUBPROCESS).i_out_a
    b = read(xb, x, backend=Backend.SHARED).i_out_a
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_write_cli_writes_outcome_devices_waveforms_energy(tmp_path):
    out = tmp_path / "w"
    assert main(["write", "--array", "passive", "--rows", "4", "--cols", "5", "--scheme", "v3",
                 "--target-row", "1", "--target-col", "3", "--direction", "set",
                 "--v-write-v", "0.8", "--pulse-width-s", "10e-9", "--seed", "2",
                 "--out", str(out)]) == 0
    r = json.loads((out / "result.json").read_text())
    for key in ("switched", "states_before", "states_after", "i_cell_peak_a", "i_c0_a",
                "delta", "tau0_s"):
        assert np.shape(r[key]) == (4, 5), key
    assert r["states_after"][1][3] == 1 and r["states_before"][1][3] == 0
    np.testing.assert_array_equal(np.asarray(r["switched"]),
                                  np.asarray(r["states_after"]) != np.asarray(r["states_before"]))
    w = np.load(out / "waveforms.npz")
    assert w["state"].shape[:2] == (4, 5) and len(w["time_s"]) == w["state"].shape[2]
    e = json.loads((out / "energy.json").read_text())["reports"][0]
    assert e["operation"] == "update" and e["ops"] == 1 and e["energy_j"] > 0
    for f in ("netlist.cir", "write.png", "energy.csv", "energy.png"):
        assert (out / f).stat().st_size > 100, f
    # the run's plots and tables can be re-rendered from its files
    (out / "write.png").unlink()
    (out / "energy.csv").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "write.png").exists() and (out / "energy.csv").exists()


def test_read_cli_transient_writes_energy_report(tmp_path):
    out = tmp_path / "r"
    assert main(["read", "--array", "1t1r", "--rows", "3", "--cols", "3", "--transient",
                 "--out", str(out)]) == 0
    e = json.loads((out / "energy.json").read_text())["reports"][0]
    assert e["operation"] == "feedforward" and e["ops"] == 18
    assert set(e["breakdown"]) == {"array_j", "wires_j", "access_j", "periphery_j"}
    assert e["breakdown"]["access_j"] > 0
    assert e["tops_per_w"] == pytest.approx(18 / e["energy_j"] / 1e12)


def test_write_stats_cli(tmp_path):
    out = tmp_path / "s"
    assert main(["write-stats", "--array", "1t1r", "--rows", "3", "--cols", "3",
                 "--target-row", "0", "--target-col", "1", "--v-write-v", "1.2", "--seeds",
                 "6", "--workers", "2", "--out", str(out)]) == 0
    s = json.loads((out / "stats.json").read_text())
    p = np.asarray(s["p_switch"])
    assert p.shape == (3, 3) and p[0, 1] == 1.0 and p[1:].sum() == 0
    assert (out / "write_stats.png").stat().st_size > 10_000
