"""Stochastic STT-MTJ: models/mtj_stt.lib in ngspice against mtjsim.devices.switching.

Monte Carlo: each device gets its own thresholds (E, ln(pi/(2 theta0))) from a seeded
generator and its own ideal current source, so the current through it is exact. Two checks
per case:

* the fraction switched lies in the binomial 99 % interval of the analytic ``p_switch``
  (the model reproduces the textbook statistics);
* every device switched exactly when its own progress ``rate * t`` reached 1 (ngspice
  integrates the progress correctly), except devices within 0.5 % of the threshold.

Devices go in netlists of ``CHUNK``. One netlist of all N would give the same answer, but
its cost grows much faster than N: every flip shortens the time step of every device in the
netlist, and the cost per device and Newton iteration rises about 4x from 100 to 400
behavioural devices (their expression trees no longer fit the cache). docs/models.md has the
measurements.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from mtjsim.devices import load_preset
from mtjsim.devices.switching import (
    draw_thresholds, p_switch, progress_rate, pulse_width_for_probability,
)

LIB = Path(__file__).resolve().parents[1] / "models" / "mtj_stt.lib"
# Delta = 42.6: thermal switching is measurable with pulses below a few microseconds.
DEV = load_preset("pmtj_30nm_lowra")
IC_P, IC_AP = DEV.i_c0_p2ap_a, DEV.i_c0_ap2p_a
ARGS = (DEV.delta, DEV.tau0_s, DEV.tau_d_s)
N = 400
# Devices per netlist. Measured, 400 devices at 0.8 I_c0 for 1 us: 40 netlists of 10 take
# 1.4 s, 10 of 40 take 3.7 s, one of 400 takes 47 s.
CHUNK = 10
SETTLE_S = 0.5e-9   # a flip completes in ~0.2 ns (20 ps state time constant)
TIMEOUT_S = 120


# -- ngspice helper (kept local: the package engine is written elsewhere) ----------------------
def _read_raw(path: Path) -> tuple[list[str], np.ndarray]:
    """Binary ngspice raw file -> (vector names, array (points, variables))."""
    header, _, body = path.read_bytes().partition(b"Binary:\n")
    head, _, var_lines = header.decode().partition("Variables:\n")
    fields = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    n_var, n_pts = int(fields["No. Variables"]), int(fields["No. Points"])
    names = [line.split()[1] for line in var_lines.splitlines() if line.strip()]
    return names, np.frombuffer(body[:8 * n_var * n_pts], dtype="<f8").reshape(n_pts, n_var)


def _run_ngspice(cir: Path) -> tuple[list[str], np.ndarray]:
    raw = cir.with_suffix(".raw")
    res = subprocess.run(["ngspice", "-b", "-r", str(raw), str(cir)], capture_output=True,
                         text=True, timeout=TIMEOUT_S)
    assert res.returncode == 0 and raw.exists(), f"ngspice failed on {cir}:\n{res.stdout}"
    return _read_raw(raw)


def _pulse(current_a: float, width_s: float) -> str:
    """Rectangular current pulse with 1 ps edges (its integral is current_a * width_s)."""
    return f"PULSE(0 {current_a:.9g} 0 1p 1p {width_s - 1e-12:.9g} 1)"


def _netlist(wave: str, s0: int, th, tstop: float, tmax: float, options: str) -> str:
    """Devices, each in series with its own ideal current source of waveform ``wave``."""
    lines = ["* mtj_stt Monte Carlo", f".include {LIB}", f".options {options}"]
    for k in range(len(th[0])):
        lines += [
            f"I{k} 0 n{k} {wave}",
            f"X{k} n{k} 0 mtj_stt rp={DEV.r_p_ohm:.9g} tmr0={DEV.tmr0:g} vh={DEV.v_h_v:g} s0={s0}"
            f" ic0p={IC_P:.9g} ic0ap={IC_AP:.9g} delta={DEV.delta:.9g} tau0={DEV.tau0_s:.9g}"
            f" taud={DEV.tau_d_s:.9g} ethp={th[0][k]:.17g} lnthp={th[1][k]:.17g}"
            f" ethap={th[2][k]:.17g} lnthap={th[3][k]:.17g}",
        ]
    lines.append(".save " + " ".join(f"v(x{k}.s)" for k in range(len(th[0]))))
    lines += [f".tran {tstop / 200:.6g} {tstop:.6g} 0 {tmax:.6g}", ".end", ""]
    return "\n".join(lines)


def _simulate(tmp_path: Path, current_a: float, width_s: float, s0: int, th, hold_s: float,
              wave: str | None = None, options: str = "method=gear"):
    """States after the pulse (+SETTLE_S) and at the end of the hold, one per device.

    ``wave`` replaces the rectangular pulse (it must end by ``width_s``).
    """
    tstop = width_s + hold_s
    wave = wave or _pulse(current_a, width_s)
    jobs = []
    for j in range(0, len(th[0]), CHUNK):
        cir = tmp_path / f"mc_{j}.cir"
        cir.write_text(_netlist(wave, s0, [a[j:j + CHUNK] for a in th], tstop,
                                tmax=tstop / 20, options=options))
        jobs.append(cir)

    with ThreadPoolExecutor(max_workers=2) as pool:     # one ngspice per core
        waves = [data for _, data in pool.map(_run_ngspice, jobs)]
    t_read = width_s + SETTLE_S
    s_pulse = np.concatenate([[np.interp(t_read, w[:, 0], w[:, c]) for c in range(1, w.shape[1])]
                              for w in waves])
    s_end = np.concatenate([w[-1, 1:] for w in waves])
    return s_pulse, s_end


def _thresholds(seed: int):
    rng = np.random.default_rng(seed)
    e_p, l_p = draw_thresholds(rng, DEV.delta, N)
    e_ap, l_ap = draw_thresholds(rng, DEV.delta, N)
    return e_p, l_p, e_ap, l_ap


def _check_binomial(n_switched: int, p: float, label: str) -> None:
    lo, hi = binom.interval(0.99, N, p)
    assert lo <= n_switched <= hi, (
        f"{label}: {n_switched}/{N} switched, p_switch = {p:.4f}, 99 % interval [{lo:g}, {hi:g}]")


# -- (a) Monte Carlo against p_switch ------------------------------------------------------------
# (direction, I/I_c0, pulse widths): thermal, near I_c0, precessional; then AP -> P.
CASES = [
    ("p2ap", 0.80, (0.3e-6, 1e-6, 3e-6)),
    ("p2ap", 0.92, (10e-9, 25e-9, 50e-9)),
    ("p2ap", 2.00, (2.5e-9, 3.5e-9, 5e-9)),
    ("ap2p", 0.85, (300e-9,)),
    ("ap2p", 1.50, (6e-9, 8e-9)),
]
PARAMS = [pytest.param(d, r, w, 100 + n, id=f"{d}-i{r:g}-{w * 1e9:g}ns")
          for n, (d, r, w) in enumerate((d, r, w) for d, r, widths in CASES for w in widths)]


@pytest.mark.ngspice
@pytest.mark.parametrize("direction, ratio, width_s, seed", PARAMS)
def test_monte_carlo_matches_p_switch(tmp_path, direction, ratio, width_s, seed):
    p2ap = direction == "p2ap"
    i_c0 = IC_P if p2ap else IC_AP
    th = _thresholds(seed)
    e, lnth = (th[0], th[1]) if p2ap else (th[2], th[3])
    s_pulse, s_end = _simulate(tmp_path, (1 if p2ap else -1) * ratio * i_c0, width_s,
                               0 if p2ap else 1, th, hold_s=max(2e-9, width_s))
    switched = s_pulse > 0.5 if p2ap else s_pulse < 0.5

    _check_binomial(int(switched.sum()), float(p_switch(ratio * i_c0, width_s, i_c0, *ARGS)),
                    f"{direction} I/Ic0={ratio} t={width_s:g}s")

    progress = progress_rate(ratio * i_c0, i_c0, *ARGS, e, lnth) * width_s
    clear = np.abs(progress - 1) > 5e-3
    wrong = np.flatnonzero(clear & (switched != (progress >= 1)))
    assert wrong.size == 0, f"devices {wrong} disagree with their own progress {progress[wrong]}"

    # every device ends on a rail and keeps the state it had right after the pulse
    assert np.all(np.minimum(np.abs(s_end), np.abs(s_end - 1)) < 1e-3), s_end
    assert np.array_equal(s_end > 0.5, s_pulse > 0.5)


# -- (b) sub-critical read current ---------------------------------------------------------------
@pytest.mark.ngspice
def test_read_current_never_switches_and_state_holds(tmp_path):
    """0.1 V across the junction for 1 us, then 1 us without current: nothing moves."""
    th = _thresholds(seed=11)
    i_read_p = 0.1 / DEV.r_p_ohm                                  # P state, P -> AP direction
    i_read_ap = 0.1 * float(DEV.conductance_s(0.1, 1.0))          # AP state, AP -> P direction
    for current, s0, i_c0 in ((i_read_p, 0, IC_P), (-i_read_ap, 1, IC_AP)):
        assert p_switch(abs(current), 1e-6, i_c0, *ARGS) < 1e-5     # the physics says: never
        s_pulse, s_end = _simulate(tmp_path, current, 1e-6, s0, th, hold_s=1e-6)
        assert np.max(np.abs(s_pulse - s0)) < 1e-6, "state moved during the read"
        assert np.max(np.abs(s_end - s0)) < 1e-6, "state drifted after the read"


# -- (c) asymmetry of the critical currents --------------------------------------------------------
@pytest.mark.ngspice
def test_same_current_switches_ap2p_but_not_p2ap(tmp_path):
    """|I| = 0.7 I_c0(P->AP) = 1.49 I_c0(AP->P) for 10 ns: eta_AP > eta_P makes AP -> P easy."""
    current, width = 0.7 * IC_P, 10e-9
    th = _thresholds(seed=12)
    p_p2ap = float(p_switch(current, width, IC_P, *ARGS))
    p_ap2p = float(p_switch(current, width, IC_AP, *ARGS))
    assert p_p2ap < 1e-3 and p_ap2p > 0.85
    s_p, _ = _simulate(tmp_path, current, width, 0, th, hold_s=2e-9)
    s_ap, _ = _simulate(tmp_path, -current, width, 1, th, hold_s=2e-9)
    n_p2ap, n_ap2p = int((s_p > 0.5).sum()), int((s_ap < 0.5).sum())
    _check_binomial(n_p2ap, p_p2ap, "P->AP")
    _check_binomial(n_ap2p, p_ap2p, "AP->P")
    assert n_p2ap <= 2 and n_ap2p > 0.8 * N


# -- a current that is not constant: the progress integral itself -------------------------------
@pytest.mark.ngspice
def test_triangle_current_integrates_progress(tmp_path):
    """20 ns triangle up to 1.15 I_c0: thermal, then both regimes, then thermal again.

    Each device must switch iff the integral of its rate along the waveform (fine quadrature
    of progress_rate) reaches 1. The thermal rate grows e-fold every 0.2 ns here; with the
    default trtol=7 ngspice lets the progress drift by 5-20 % (6 of 200 devices wrong),
    trtol=1 brings it to about 1 % (the test allows 2 %; the hard regime switch of
    progress_rate against the model's tanh gate accounts for ~0.1 % of it).
    """
    n, width, peak = 200, 20e-9, 1.15 * IC_P
    th = [a[:n] for a in _thresholds(seed=13)]
    wave = f"PWL(0 0 {width / 2:g} {peak:.9g} {width:g} 0)"
    s_pulse, _ = _simulate(tmp_path, 0.0, width, 0, th, hold_s=2e-9, wave=wave,
                           options="method=gear trtol=1")
    t = np.linspace(0.0, width, 200_001)
    current = peak * (1 - np.abs(2 * t / width - 1))
    progress = np.array([np.trapezoid(progress_rate(current, IC_P, *ARGS, th[0][k], th[1][k]), t)
                         for k in range(n)])
    switched = s_pulse > 0.5
    assert 0.2 < switched.mean() < 0.5                         # a test with both outcomes
    clear = np.abs(progress - 1) > 2e-2
    wrong = np.flatnonzero(clear & (switched != (progress >= 1)))
    assert wrong.size == 0, f"devices {wrong}: progress {progress[wrong]}, " \
                            f"switched {switched[wrong]}"


# -- same electrical branch as mtj_static ----------------------------------------------------------
@pytest.mark.ngspice
def test_conductance_equals_mtj_static(tmp_path):
    """P and AP from -0.6 V to 0.6 V: mtj_stt, mtj_static and MTJParams give one current.

    One operating point with a biased copy per voltage (a .dc sweep would not do: ngspice
    sets `time` to the previous sweep value there, which wakes the switching dynamics).
    """
    p = f"rp={DEV.r_p_ohm:.9g} tmr0={DEV.tmr0:g} vh={DEV.v_h_v:g}"
    volts = np.linspace(-0.6, 0.6, 13)
    lines = ["* mtj_stt vs mtj_static", f".include {LIB}", f".include {LIB.with_name('mtj.lib')}"]
    for k, v in enumerate(volts):
        for s in (0, 1):   # the current of each device is that of its own source
            lines += [f"Vstt{s}_{k} n{s}_{k} 0 {v:.6g}",
                      f"Xstt{s}_{k} n{s}_{k} 0 mtj_stt {p} s0={s}",
                      f"Vsta{s}_{k} m{s}_{k} 0 {v:.6g}",
                      f"Xsta{s}_{k} m{s}_{k} 0 mtj_static {p} s={s}"]
    cir = tmp_path / "op.cir"
    cir.write_text("\n".join(lines + [".op", ".end", ""]))
    names, data = _run_ngspice(cir)
    for s in (0, 1):
        # ngspice's source current flows + -> -, through the source: minus the device current
        i_stt = -np.array([data[0, names.index(f"i(vstt{s}_{k})")] for k in range(len(volts))])
        i_sta = -np.array([data[0, names.index(f"i(vsta{s}_{k})")] for k in range(len(volts))])
        np.testing.assert_allclose(i_stt, i_sta, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(i_stt, volts * DEV.conductance_s(volts, s), rtol=1e-9,
                                   atol=1e-15)


# -- switching.py without SPICE --------------------------------------------------------------------
def test_pulse_width_inverts_p_switch_in_both_regimes():
    for i_c0 in (IC_P, IC_AP):
        for ratio in (0.6, 0.8, 0.95, 1.2, 2.0, 3.0):
            p = np.array([1e-3, 0.1, 0.5, 0.9, 0.999])
            t = pulse_width_for_probability(p, ratio * i_c0, i_c0, *ARGS)
            np.testing.assert_allclose(p_switch(ratio * i_c0, t, i_c0, *ARGS), p, rtol=1e-9)
    assert pulse_width_for_probability(0.0, 0.5 * IC_P, IC_P, *ARGS) == 0.0


def test_thresholds_reproduce_p_switch():
    """The thresholds drawn for SPICE give p_switch through the progress rule (numpy MC)."""
    e, lnth = draw_thresholds(np.random.default_rng(0), DEV.delta, 200_000)
    for ratio, t in ((0.8, 1e-6), (0.92, 25e-9), (2.0, 3.5e-9), (1.2, 10e-9)):
        frac = np.mean(progress_rate(ratio * IC_P, IC_P, *ARGS, e, lnth) * t >= 1)
        p = p_switch(ratio * IC_P, t, IC_P, *ARGS)
        assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / e.size) + 1e-9


def test_p_switch_limits():
    # thermal: Neel-Brown with tau = tau0 exp(delta (1 - i))
    tau = DEV.tau0_s * np.exp(DEV.delta * 0.2)
    assert p_switch(0.8 * IC_P, tau, IC_P, *ARGS) == pytest.approx(1 - np.exp(-1))
    # monotone in width and current, 0 at zero width
    t = np.geomspace(1e-10, 1e-5, 50)
    for ratio in (0.7, 1.5):
        assert np.all(np.diff(p_switch(ratio * IC_P, t, IC_P, *ARGS)) >= 0)
    assert p_switch(2 * IC_P, 0.0, IC_P, *ARGS) == 0.0
    assert p_switch(0.5 * IC_P, 0.0, IC_P, *ARGS) == 0.0


@pytest.mark.parametrize("call, name", [
    (lambda: p_switch(1e-5, -1e-9, IC_P, *ARGS), "pulse_width_s"),
    (lambda: p_switch(1e-5, 1e-9, 0.0, *ARGS), "i_c0_a"),
    (lambda: p_switch(1e-5, 1e-9, IC_P, -1, 1e-9, 1e-9), "delta"),
    (lambda: pulse_width_for_probability(1.0, 1e-5, IC_P, *ARGS), "p"),
    (lambda: pulse_width_for_probability(0.5, np.nan, IC_P, *ARGS), "i_a"),
    (lambda: draw_thresholds(np.random.default_rng(0), 0.0, 3), "delta"),
])
def test_errors_name_parameter_and_range(call, name):
    with pytest.raises(ValueError, match=rf"^{name}=.*must be"):
        call()
