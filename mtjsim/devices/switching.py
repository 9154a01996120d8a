"""STT-MTJ switching statistics under a constant current (numpy only, no SPICE).

The same equations as the ngspice subcircuit ``models/mtj_stt.lib`` (shared/PHYSICS.md):

* thermal activation (Neel-Brown), ``i = I/I_c0 < 1``:
  rate ``1/tau(I) = exp(-Delta (1 - i)) / tau0``, ``P_sw = 1 - exp(-t/tau(I))``;
* precession (Sun), ``i >= 1``: ``t_sw = tau_D ln(pi/(2 theta0)) / (i - 1)`` with
  ``theta0 = sqrt(E/Delta)``, ``E ~ Exp(1)``, so
  ``P_sw = exp(-(pi^2 Delta/4) exp(-2 (i - 1) t / tau_D))``.

Per device and pulse, one ``E ~ Exp(1)`` gives both thresholds: the device switches when
``integral rate/E dt + integral (i-1)+/(tau_D lnth) dt`` reaches 1 (``lnth = ln(pi/(2 theta0))``).
The regimes are switched at ``i = 1`` (the SPICE model blends them over about +-0.5 % of
I_c0 with a tanh): Neel-Brown gives ~1/tau0 as i -> 1-, Sun's rate -> 0 as i -> 1+.

Currents are signed along the switching direction being asked about: pass ``|I|`` with the
I_c0 of that direction (``MTJParams.i_c0_p2ap_a`` or ``i_c0_ap2p_a``); a negative value means
current that stabilises the state (it still enters the Neel-Brown rate, as in the model).
"""

from __future__ import annotations

import math

import numpy as np

from mtjsim.validation import check_range

#: Smallest ln(pi/(2 theta0)) written to the netlist: a larger theta0 than pi/2 has no
#: meaning in Sun's model (it happens with probability exp(-Delta pi^2/4 e^-0.02)).
LNTH_MIN = 0.01
#: Smallest thermal threshold E: keeps rate/E finite in SPICE (P(E < 1e-12) = 1e-12).
E_MIN = 1e-12


def _check(name: str, value, **kw) -> np.ndarray:
    """check_range on the extremes of an array (NaN propagates to min/max and is caught)."""
    arr = np.asarray(value, dtype=float)
    if arr.size:
        check_range(name, float(arr.min()), **kw)
        check_range(name, float(arr.max()), **kw)
    return arr


def _check_device(i_c0_a, delta, tau0_s, tau_d_s) -> None:
    check_range("i_c0_a", i_c0_a, lo=0, lo_open=True, hi=1.0, typical="10e-6 to 200e-6")
    check_range("delta", delta, lo=0, lo_open=True, hi=1000, typical="40 to 80")
    check_range("tau0_s", tau0_s, lo=0, lo_open=True, hi=1.0, typical="1e-9")
    check_range("tau_d_s", tau_d_s, lo=0, lo_open=True, hi=1.0, typical="1e-9 to 3e-9")


def progress_rate(i_a, i_c0_a: float, delta: float, tau0_s: float, tau_d_s: float, e, lnth):
    """Switching progress per second (1/s) of devices with thresholds ``e`` and ``lnth``.

    Hard switch at ``i = 1``; a device switches when the time integral reaches 1. This is
    what the SPICE model integrates, for a quasi-static (fast-engine) update or to predict
    each device's outcome under a constant current: ``switched = rate * t >= 1``.
    """
    _check_device(i_c0_a, delta, tau0_s, tau_d_s)
    i = np.asarray(i_a, dtype=float) / i_c0_a
    e = np.maximum(np.asarray(e, dtype=float), E_MIN)
    lnth = np.maximum(np.asarray(lnth, dtype=float), LNTH_MIN)
    thermal = np.exp(-delta * (1.0 - np.minimum(i, 1.0))) / (tau0_s * e)
    precess = np.maximum(i - 1.0, 0.0) / (tau_d_s * lnth)
    return np.where(i < 1.0, thermal, precess)


def p_switch(i_a, pulse_width_s, i_c0_a: float, delta: float, tau0_s: float, tau_d_s: float):
    """Probability that a constant current ``i_a`` (A) of width ``pulse_width_s`` (s) switches.

    Thermal (``i_a < i_c0_a``): ``1 - exp(-t/tau)``, ``1/tau = exp(-delta(1 - I/I_c0))/tau0``.
    Precessional (``i_a >= i_c0_a``): ``exp(-(pi^2 delta/4) exp(-2 (I/I_c0 - 1) t/tau_D))``,
    zero while ``(I/I_c0 - 1) t/tau_D < LNTH_MIN`` (the clamp applied to thresholds).
    Broadcasts over ``i_a`` and ``pulse_width_s``.
    """
    _check_device(i_c0_a, delta, tau0_s, tau_d_s)
    i = _check("i_a", i_a, lo=-1.0, hi=1.0, typical="|I| up to a few I_c0") / i_c0_a
    t = _check("pulse_width_s", pulse_width_s, lo=0, hi=1e6, typical="1e-9 to 1e-6")
    with np.errstate(over="ignore", under="ignore"):
        p_th = -np.expm1(-t * np.exp(-delta * (1.0 - np.minimum(i, 1.0))) / tau0_s)
        drive = np.maximum(i - 1.0, 0.0) * t / tau_d_s
        p_pr = np.exp(-(math.pi ** 2 * delta / 4.0) * np.exp(-2.0 * drive))
        p_pr = np.where(drive < LNTH_MIN, 0.0, p_pr)
    out = np.where(i < 1.0, p_th, p_pr)
    return out[()] if out.ndim == 0 else out


def pulse_width_for_probability(p, i_a, i_c0_a: float, delta: float, tau0_s: float,
                                tau_d_s: float):
    """Pulse width (s) at constant current ``i_a`` (A) for switching probability ``p``.

    Closed-form inverse of :func:`p_switch`: thermal ``t = -tau ln(1 - p)``; precessional
    ``t = tau_D ln((pi^2 delta/4) / -ln p) / (2 (I/I_c0 - 1))``, at least
    ``LNTH_MIN tau_D/(I/I_c0 - 1)`` (the shortest pulse that can switch at all once the
    thresholds are clamped). ``p = 0`` gives 0 s; ``i_a == i_c0_a`` gives ``inf`` (Sun's
    rate vanishes there). Broadcasts over ``p`` and ``i_a``.
    """
    _check_device(i_c0_a, delta, tau0_s, tau_d_s)
    p = _check("p", p, lo=0, hi=1, hi_open=True, typical="0 to 0.99")
    i = _check("i_a", i_a, lo=-1.0, hi=1.0, typical="|I| up to a few I_c0") / i_c0_a
    p, i = np.broadcast_arrays(p, i)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        tau = tau0_s * np.exp(delta * (1.0 - np.minimum(i, 1.0)))
        t_th = -tau * np.log1p(-p)
        a = math.pi ** 2 * delta / 4.0
        neg_ln_p = -np.log(np.where(p > 0, p, 1.0))
        t_pr = tau_d_s * np.log(a / neg_ln_p) / (2.0 * (i - 1.0))
        # the clamp of lnth: switching needs at least this much drive
        t_pr = np.maximum(t_pr, LNTH_MIN * tau_d_s / (i - 1.0))
        t_pr = np.where(i == 1.0, np.inf, t_pr)
    out = np.where(p == 0, 0.0, np.where(i < 1.0, t_th, t_pr))
    return out[()] if out.ndim == 0 else out


def draw_thresholds(rng: np.random.Generator, delta: float, shape=()):
    """Per-device, per-pulse thresholds ``(e, lnth)`` for the SPICE model.

    ``e ~ Exp(1)`` (floored at ``E_MIN``) is the thermal threshold; ``lnth =
    ln(pi/(2 theta0))`` with ``theta0 = sqrt(e/delta)`` from the same draw (floored at
    ``LNTH_MIN``). Draw one pair per direction you need (``ethp, lnthp`` and ``ethap, lnthap``).
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng={rng!r}: must be a numpy.random.Generator "
                         "(numpy.random.default_rng(seed))")
    return thresholds_of(rng.exponential(1.0, shape), delta)


def thresholds_of(e, delta):
    """``draw_thresholds`` from given Exp(1) draws ``e``."""
    delta = _check("delta", delta, lo=0, lo_open=True, hi=1000, typical="40 to 80")
    e = np.maximum(e, E_MIN)
    lnth = np.maximum(math.log(math.pi / 2) - 0.5 * np.log(e / delta), LNTH_MIN)
    return e, lnth


def p_switch_progress(q, d, delta, iterations: int = 16):
    """Probability that a pulse switches a device, from what the pulse integrates: thermal
    progress ``q`` (``integral exp(-Delta (1 - i))/tau0 dt`` over the pulse, dimensionless)
    and precessional drive ``d`` (``integral (i - 1)+ dt / tau_D``). The model switches when
    ``q/E + d/lnth >= 1``, with ``E`` and ``lnth(E)`` of one draw (``draw_thresholds``):
    ``q/E`` falls and ``d/lnth`` rises with ``E``, so it switches for ``E <= e0`` (thermal: a
    small ``E``) or ``E >= e1`` (precession), ``P = 1 - exp(-e0) + exp(-e1)``, or 1 where no
    ``E`` stays below the threshold.

    A pulse with a flat top above I_c0 has ``q`` only from its edges, where the current
    passes I_c0 at ~1/tau0: a 0.2 ns edge to 1.6 I_c0 gives q ~ 2e-3, which adds ~0.003 to a
    requested 0.05 (measured on the engines: +5 %). ``q = 0`` gives ``p_switch``'s
    precessional law, ``d = 0`` its thermal one.

    Roots by Newton on convex functions, each started on its side of the minimum so that it
    converges monotonically: ``e0`` in ``u = ln E`` from one fixed-point step from ``E = q``,
    ``e1`` in ``lnth`` from ``d`` (its root without ``q``). An iterate that passes the
    minimum with the function still positive means no root (P = 1). With ``d < LNTH_MIN``
    precession never switches (``lnth`` is clamped there). Quadratic convergence except
    where the roots nearly meet (P near 1): on q 1e-6..0.9, d 0..8, 8 steps leave 4e-8 of
    P, 12 nothing."""
    q, d = np.broadcast_arrays(np.asarray(q, float), np.asarray(d, float))
    delta = np.asarray(delta, float)
    c0 = math.log(math.pi / 2) + 0.5 * np.log(delta)        # lnth = c0 - ln(E)/2
    always = np.zeros(q.shape, bool)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        # e0: h(u) = q exp(-u) + d / (c0 - u/2) - 1 = 0, the root left of the minimum
        u = np.log(np.maximum(q, 1e-300))
        rest = 1.0 - d / (c0 - 0.5 * u)                # a fixed-point step: still left of it
        u = np.where(rest > 0, u - np.log(np.where(rest > 0, rest, 1.0)), u)
        for _ in range(iterations):
            lnth = c0 - 0.5 * u
            th = q * np.exp(-u)
            h = th + d / lnth - 1.0
            dh = -th + 0.5 * d / lnth ** 2
            always |= (h > 0) & ((dh >= 0) | (lnth <= LNTH_MIN))
            step = np.where(always | (h <= 0), 0.0, h / np.where(dh < 0, dh, -1.0))
            u = u - step
            if not (np.abs(step) > 1e-13).any():
                break
        e0 = np.where(q > 0, np.exp(u), 0.0)
        # e1: H(L) = d / L + q exp(2L - 2 c0) - 1 = 0, the smallest root (largest E)
        L = np.maximum(d, LNTH_MIN)              # the root without q: left of it
        none = d < LNTH_MIN                      # lnth >= LNTH_MIN: starting right of the root
        for _ in range(iterations):
            ex = q * np.exp(2.0 * (L - c0))
            H = d / L + ex - 1.0
            dH = -d / L ** 2 + 2.0 * ex
            always |= (H > 0) & (dH >= 0) & ~none
            step = np.where(always | none | (H <= 0), 0.0, H / np.where(dH < 0, dH, -1.0))
            L = L - step
            if not (np.abs(step) > 1e-13).any():
                break
        e1 = np.where(none | (d <= 0), np.inf, np.exp(2.0 * (c0 - L)))
        p = -np.expm1(-e0) + np.exp(-e1)
    out = np.where(always | (e0 >= e1), 1.0, np.clip(p, 0.0, 1.0))
    return out[()] if out.ndim == 0 else out
