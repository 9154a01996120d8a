"""The write network of a 1T1R column pulse reduced to its hot cells: the fast engine's
write path for the programs training issues (one pulse per column).

A column pulse of the 1T1R scheme drives one bit line (column j) to a level H and holds
every other line of the gated rows at one level L: the source lines of the gated rows and
the idle bit lines (SET: H = V, L = 0; RESET: H = 0, L = V). Only the k gated cells of
column j (the *hot* cells) see a bias. The other cells of the gated rows (*idle* cells) sit
at L on both sides and only carry what the IR drop of the hot currents along the source
lines pushes through them (microamps). The full network of such a pulse has ~1,500 unknowns
at 64x64 (``fast_network``); this one has 3k + 1 plus a tridiagonal solve per source line.

* **Hot cells, exact**: MTJ (bias-dependent TMR), level-1 NMOS and its two junctions, the
  selected bit line between them (merged segments, driver). Newton eliminates each row's
  drain and source (a 2x2 block touching only its bit-line node) and solves the remaining
  (k + 1)-node systems of a whole batch of (pulse, ramp fraction) items with one
  ``numpy.linalg.solve`` per iteration.
* **Source lines, linear**: each hot cell's source line is its driving-point impedance at
  column j, from the line itself (driver, segments) with every idle cell a linear shunt:
  the MTJ at zero bias in series with the channel at V_ds = 0 (the same level-1 equations,
  gate at its ramp fraction) and the bit-line path to that bit line's driver. The idle
  cells' bit lines take the shunt currents of every gated row: the line voltages and those
  bit-line voltages are solved together by block Jacobi (source lines | bit lines) to
  JACOBI_TOL of the idle currents (a few rounds: a bit line's path to its driver is tens of
  ohms, an idle cell kilo-ohms).
* The idle cells' currents (for the waveforms and the energy) follow from the same solve.

Neglected, against the full network: the idle cells' nonlinearity at their millivolt bias
(TMR bias dependence (v/V_h)^2 ~ 1e-4, the channel's V_ds/2 term, and, the largest, the IR
drop of the line lowering their gate overdrive), and the junction leakage of idle drains
and sources (~1e-14 A). Hot-cell currents stay within 2e-5 of the full network at 1-2 ohm
per segment, 6e-4 at 20 ohm (tests/test_fast_hot.py); the validation harness compares the
write with ngspice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dptsv, dpttrf, dpttrs

from mtjsim.circuit.crossbar import ArrayKind
from mtjsim.devices.mtj import mtj_conductance_s
from mtjsim.engines.fast import junction_current, mtj_current, nmos_current
from mtjsim.engines.fast_network import FastSolveError, Solution

R_MIN_OHM = 1e-3        # stands in for a 0-ohm wire or driver (SPICE merges those nodes)
JACOBI_TOL = 1e-4       # relative change of the idle currents at which the rounds stop
JACOBI_MAX_ROUNDS = 60


class HotColumnNetwork:
    """Solves 1T1R column pulses of one Crossbar, or of several of the same spec (tiles:
    independent circuits, an item's ``tile`` says whose); states are passed per call."""

    def __init__(self, xbars):
        xbars = list(xbars) if isinstance(xbars, (list, tuple)) else [xbars]
        spec = xbars[0].spec
        if spec.kind is not ArrayKind.ONE_T_ONE_R:
            raise ValueError("HotColumnNetwork: the array must be 1T1R")
        if any(x.spec != spec for x in xbars[1:]):
            raise ValueError("HotColumnNetwork: the tiles must share one ArraySpec")
        self.spec = spec
        ones = np.ones(spec.shape)

        def stacked(name):                                  # (tiles, rows, cols)
            return np.stack([np.asarray(getattr(x.cells, name), float) * ones for x in xbars])

        self.rp, self.tmr0, self.vh = (stacked(n) for n in ("r_p_ohm", "tmr0", "v_h_v"))
        # zero-bias MTJ conductances, P and AP (the idle cells')
        self.g0_p = mtj_conductance_s(0.0, 0.0, self.rp, self.tmr0, self.vh)
        self.g0_ap = mtj_conductance_s(0.0, 1.0, self.rp, self.tmr0, self.vh)
        tr = spec.transistor
        self.tr = tr
        self.beta = tr.kp_a_per_v2 * tr.w_m / tr.l_m
        self.r_w = max(spec.r_wire_ohm, R_MIN_OHM)
        self.r_d = max(spec.r_driver_ohm, R_MIN_OHM)

    # --- which pulses this network describes --------------------------------------------
    def column_pulse(self, v_row, v_col, v_gate):
        """(j, L, H, gated rows) when the levels are a column pulse as described above,
        else None (the caller solves the full network)."""
        return self.column_pulses(*(np.asarray(a, float)[None] for a in (v_row, v_col,
                                                                          v_gate)))[0]

    def column_pulses(self, v_row, v_col, v_gate) -> list:
        """``column_pulse`` of each of a batch of pulses' levels (P, rows) / (P, cols)."""
        floor = np.minimum(0.0, np.minimum(v_row.min(axis=1), v_col.min(axis=1)))
        gated = v_gate - self.tr.vto_v > floor[:, None]
        ar = np.arange(v_row.shape[0])
        level = v_row[ar, np.argmax(gated, axis=1)]           # the first gated row's level
        hot = v_col != level[:, None]
        ok = gated.any(axis=1) & (hot.sum(axis=1) == 1) & (
            (v_row == level[:, None]) | ~gated).all(axis=1)
        j = np.argmax(hot, axis=1)
        return [(int(j[p]), float(level[p]), float(v_col[p, j[p]]), np.flatnonzero(gated[p]))
                if ok[p] else None for p in ar]

    # --- the solve ------------------------------------------------------------------------
    def solve_fractions(self, states, fracs, v_row, v_col, v_gate, **kw) -> list[Solution]:
        """Solutions of one column pulse at the ramp fractions ``fracs`` of its levels (all
        lines and gates scaled together, as the netlist's PWL sources do)."""
        pulse = self.column_pulse(v_row, v_col, v_gate)
        if pulse is None:
            raise ValueError("not a 1T1R column pulse: use fast_network.WriteNetwork")
        j, lv, hv, rows = pulse
        floor = min(0.0, float(np.min(v_row)), float(np.min(v_col)))
        B = len(fracs)
        items = Items(rows=np.tile(rows, (B, 1)), j=np.full(B, j), lv=np.full(B, lv),
                      hv=np.full(B, hv), frac=np.asarray(fracs, float),
                      v_gate=np.tile(np.asarray(v_gate, float)[rows], (B, 1)),
                      floor=np.full(B, floor),
                      states=np.broadcast_to(np.asarray(states, float).reshape(
                          self.spec.shape)[rows], (B, rows.size, self.spec.cols)))
        out = self.solve_items(items, **kw)
        return [out.solution(q, self.spec.shape) for q in range(B)]

    def solve_items(self, it: "Items", idle: dict | None = None, *, tol_v=1e-8,
                    max_iter=60, max_step_v=0.2) -> "Solved":
        """Solve a batch of (pulse, fraction) items with the same number of gated rows.
        ``idle``: their ``idle_lines`` if already known (they do not depend on the states
        of the hot cells, so a flip does not change them). Newton stops at a step below
        ``tol_v``: it converges quadratically there, so the error left is ~1e-10 V."""
        spec = self.spec
        R, C = spec.shape
        B, k = it.rows.shape
        f = it.frac[:, None]                                         # (B, 1)
        vg = f * it.v_gate                                           # (B, k)
        on = vg - self.tr.vto_v > f * it.floor[:, None]              # rows in the network
        bi = np.arange(B)[:, None]
        t = it.tiles()[:, None]
        rp, tmr0, vh = (a[t, it.rows, it.j[:, None]] for a in (self.rp, self.tmr0, self.vh))
        cell_s = (it.hot if it.hot is not None
                  else it.states[bi, np.arange(k)[None, :], it.j[:, None]])   # (B, k)
        if idle is None:
            idle = self.idle_lines(it)

        # hot nodes: bit line at the gated rows 0..k-1, bottom k; drains; sources
        nb = k + 1
        b, d, so = np.arange(k), nb + np.arange(k), nb + k + np.arange(k)
        n = nb + 2 * k
        gaps = np.diff(np.concatenate([it.rows, np.full((B, 1), R)], axis=1), axis=1)
        g_seg = 1.0 / np.maximum(spec.r_wire_ohm * gaps, R_MIN_OHM)            # (B, k)
        # the bit line alone, driver at the bottom: tridiagonal (diagonal, coupling of node
        # i to i + 1; the last node's is 0, so the items stack into one tridiagonal system)
        g_d = 1.0 / self.r_d
        diag_bit = np.zeros((B, nb))
        diag_bit[:, :k] += g_seg
        diag_bit[:, 1:] += g_seg
        diag_bit[:, k] += g_d
        off_bit = np.zeros((B, nb))
        off_bit[:, :k] = -g_seg
        rhs_bit = np.zeros((B, nb))
        rhs_bit[:, k] = g_d * it.frac * it.hv
        g_tie = 1.0 / np.maximum(idle["z_ohm"], R_MIN_OHM)                     # (B, k)
        lv = f * it.lv[:, None]

        # start: bit line at H, sources at L, drains where the zero-bias MTJ and the
        # channel's on-resistance divide the cell voltage
        hv = f * it.hv[:, None]
        x = np.empty((B, n))
        x[:, :nb] = hv
        x[:, so] = lv
        g0 = mtj_conductance_s(0.0, cell_s, rp, tmr0, vh)
        g_on = self.beta * np.maximum(vg - np.minimum(hv, lv) - self.tr.vto_v, 1e-3)
        x[:, d] = lv + (hv - lv) * g0 / (g0 + g_on)
        # Newton with each row's drain and source eliminated (their 2x2 blocks touch only
        # their bit-line node): a tridiagonal (k + 1)-node system per item instead of 3k + 1,
        # symmetric positive definite (the elimination adds g_m (1 - g_m inv00) > 0 to the
        # bit line's diagonal), all items in one LAPACK call. An item stops at its first
        # step below tol_v; the others go on.
        act = np.arange(B)
        per_item = (cell_s, rp, tmr0, vh, vg, on, g_tie, lv, diag_bit, off_bit, rhs_bit)
        sub = per_item
        for iters in range(1, max_iter + 1):
            cs, rp_, tm_, vh_, vg_, on_, gt, lv_, dg, off, rhs_b = sub
            xa = x[act]
            xb, vd, vs = xa[:, :nb], xa[:, d], xa[:, so]
            i_m, g_m = mtj_current(xb[:, :k] - vd, cs, rp_, tm_, vh_)
            i_ch, a_d, a_s = nmos_current(vd, vs, vg_, self.tr)
            i_ch, a_d, a_s = (np.where(on_, v, 0.0) for v in (i_ch, a_d, a_s))
            j_d, gj_d = junction_current(vd)
            j_s, gj_s = junction_current(vs)
            r_b = dg * xb - rhs_b
            r_b[:, :-1] += off[:, :-1] * xb[:, 1:]
            r_b[:, 1:] += off[:, :-1] * xb[:, :-1]
            r_b[:, :k] += i_m
            r_d = -i_m + i_ch + j_d
            r_s = gt * (vs - lv_) + j_s - i_ch
            d00, d01 = g_m + a_d + gj_d, a_s                 # d(r_d, r_s)/d(v_d, v_s)
            d10, d11 = -a_d, gt + gj_s - a_s
            det = d00 * d11 - d01 * d10
            inv00, inv01 = d11 / det, -d01 / det
            diag = dg.copy()
            diag[:, :k] += g_m - g_m * g_m * inv00
            rhs = -r_b
            rhs[:, :k] += g_m * (-inv00 * r_d - inv01 * r_s)
            dx = np.empty(xa.shape)
            dx[:, :nb] = dptsv(diag.ravel(), off.ravel()[:-1], rhs.ravel())[2].reshape(-1, nb)
            u0, u1 = -r_d + g_m * dx[:, :k], -r_s
            dx[:, d] = (d11 * u0 - d01 * u1) / det
            dx[:, so] = (d00 * u1 - d10 * u0) / det
            step = np.abs(dx).max(axis=1)
            x[act] = xa + dx * np.minimum(1.0, max_step_v / np.maximum(step, 1e-300))[:, None]
            going = step >= tol_v
            if not going.any():
                break
            if not going.all():
                act = act[going]
                sub = tuple(a[act] for a in per_item)
        else:
            raise FastSolveError(f"fast write (hot cells): Newton did not converge in "
                                 f"{max_iter} iterations (last step {step.max():.3g} V)")
        i_m = mtj_current(x[:, b] - x[:, d], cell_s, rp, tmr0, vh, derivative=False)[0]
        i_ch = np.where(on, nmos_current(x[:, d], x[:, so], vg, self.tr,
                                         derivative=False)[0], 0.0)
        return self._results(it, x, np.where(on, i_m, 0.0), i_ch, idle, g_seg, iters)

    def idle_lines(self, it: "Items", w0=None) -> dict:
        """Source lines of the gated rows with their idle cells, linear, per item: node
        voltages (above L) per ampere injected at column j, the idle cells' currents per
        ampere, and the driving-point impedance at j. Block Jacobi between the lines
        (tridiagonal solves) and the idle bit lines (chains down to their drivers, shared by
        all gated rows), from the bit-line voltages ``w0`` (B, k, C) if given.

        Everything in the idle network is linear in the currents the hot cells inject, so
        its power is a quadratic form in them: ``p_row`` (B, k, 4) and ``p_pair``
        (B, k, k, 2) hold its coefficients (see ``_results``)."""
        spec = self.spec
        R, C = spec.shape
        f = it.frac[:, None]
        vg = f * it.v_gate
        on = vg - self.tr.vto_v > f * it.floor[:, None]
        B, k = vg.shape
        bi, ki = np.arange(B)[:, None], np.arange(k)[None, :]
        # idle cell conductance: zero-bias MTJ in series with the channel at V_ds = 0
        t = it.tiles()[:, None]
        g_m = (1 - it.states) * self.g0_p[t, it.rows] + it.states * self.g0_ap[t, it.rows]
        g_ch = np.where(on, self.beta * np.maximum(vg - f * it.lv[:, None] - self.tr.vto_v,
                                                   0.0), 0.0)                       # (B, k)
        with np.errstate(divide="ignore"):
            g_cell = np.where(g_ch[..., None] > 0,
                              1.0 / (1.0 / g_m + 1.0 / np.maximum(g_ch, 1e-300)[..., None]),
                              0.0)
        g_cell[bi, ki, it.j[:, None]] = 0.0                    # the hot cell is not idle
        # source lines: nodes 0 (driver output) .. C (cell C-1), stacked (B, k, C + 1) into
        # one symmetric positive definite tridiagonal system, factored once for the rounds
        gw, gd = 1.0 / self.r_w, 1.0 / self.r_d
        diag = np.zeros((B, k, C + 1))
        diag[..., 0] = gd
        diag[..., :-1] += gw
        diag[..., 1:] += gw + g_cell
        off = np.full((B, k, C + 1), -gw)
        off[..., -1] = 0.0                                     # no coupling between lines
        d_f, e_f, info = dpttrf(diag.ravel(), off.ravel()[:-1])
        if info:
            raise FastSolveError(f"fast write (hot cells): idle-line factorization failed "
                                 f"(info {info})")
        at_j = (bi, ki, it.j[:, None] + 1)                     # 1 A injected at column j
        # mutual impedance of an idle bit line between gated rows r1, r2 (to its driver)
        zb = spec.r_driver_ohm + spec.r_wire_ohm * (
            R - np.maximum(it.rows[:, :, None], it.rows[:, None, :]))            # (B, k, k)
        w = np.zeros((B, k, C)) if w0 is None else w0.copy()   # bit-line voltage above L
        rhs = np.zeros((B, k, C + 1))
        u = i_sh = None
        going = np.ones(B, bool)
        for _ in range(JACOBI_MAX_ROUNDS):
            np.multiply(g_cell, w, out=rhs[..., 1:])
            rhs[at_j] += 1.0
            u_new = dpttrs(d_f, e_f, rhs.ravel())[0].reshape(B, k, C + 1)
            sh_new = g_cell * (u_new[..., 1:] - w)             # line -> idle bit line
            if i_sh is None:
                u, i_sh, stop = u_new, sh_new, ~going
            else:
                # each item stops on its own change, so what it gets does not depend on
                # the other items of the batch (tiles batched differently agree exactly)
                stop = going & (np.abs(sh_new - i_sh).max(axis=(1, 2), initial=0.0) <= (
                    JACOBI_TOL * np.maximum(np.abs(sh_new).max(axis=(1, 2), initial=0.0),
                                            1e-300)))
                u[going], i_sh[going] = u_new[going], sh_new[going]
            w = np.where(going[:, None, None], zb @ i_sh, w)
            going &= ~stop
            if not going.any():
                break
        else:   # bit-line paths not small against the idle cells (very resistive wires)
            raise FastSolveError(f"fast write (hot cells): the idle lines did not converge "
                                 f"in {JACOBI_MAX_ROUNDS} rounds")
        # power per squared ampere injected, by category (POWER order of _results): idle
        # MTJs and channels, the source lines' segments and drivers per row; the idle bit
        # lines carry the shunt currents of several rows, so pairs of rows: the segment
        # below gated row m carries those of the gated rows at or above m, which gives each
        # pair its shared path to the driver (zb)
        sq = i_sh * i_sh
        p_row = np.zeros((B, k, 4))
        p_row[..., 0] = (sq / g_m).sum(axis=2)
        with np.errstate(divide="ignore"):
            p_row[..., 2] = sq.sum(axis=2) * np.where(g_ch > 0, 1.0 / g_ch, 0.0)
        p_pair = np.zeros((B, k, k, 2))
        q = np.einsum("bpc,bqc->bpq", i_sh, i_sh)
        if spec.r_wire_ohm > 0:
            p_row[..., 1] = (np.diff(u, axis=2) ** 2).sum(axis=2) / self.r_w
            p_pair[..., 0] = q * (zb - spec.r_driver_ohm)
        if spec.r_driver_ohm > 0:
            p_row[..., 3] = u[..., 0] ** 2 / self.r_d
            p_pair[..., 1] = q * spec.r_driver_ohm
        return {"i_sh": i_sh, "g_m": g_m, "w": w, "z_ohm": u[bi, ki, it.j[:, None] + 1],
                "p_row": p_row, "p_pair": p_pair}

    def _results(self, it, x, i_m, i_ch, idle, g_seg, iters) -> "Solved":
        spec = self.spec
        B, k = it.rows.shape
        nb = k + 1
        vb, vd, vs = x[:, :k], x[:, nb:nb + k], x[:, nb + k:]
        f = it.frac[:, None]
        # the current each hot cell pushes into its source line (the idle cells carry it
        # times their currents per ampere)
        inj = (vs - f * it.lv[:, None]) / np.maximum(idle["z_ohm"], R_MIN_OHM)  # (B, k)
        # power: hot cells and their bit line exactly, the idle network from its quadratic
        # form in the injected currents
        p_idle = (inj[..., None] ** 2 * idle["p_row"]).sum(axis=1)                # (B, 4)
        p_idle[:, [1, 3]] += np.einsum("bp,bpqm,bq->bm", inj, idle["p_pair"], inj)
        j_d, j_s = junction_current(vd)[0], junction_current(vs)[0]
        i_bitdrv = (it.frac * it.hv - x[:, k]) / self.r_d
        wires = np.zeros(B)
        if spec.r_wire_ohm > 0:
            bit_seg = np.diff(np.concatenate([vb, x[:, k:k + 1]], axis=1), axis=1)
            wires += (g_seg * bit_seg ** 2).sum(axis=1)
        power = {
            "delivered": it.frac * it.hv * i_bitdrv - it.frac * it.lv * inj.sum(axis=1),
            "array": ((vb - vd) * i_m).sum(axis=1) + p_idle[:, 0],
            "wires": wires + p_idle[:, 1],
            "periphery": i_bitdrv ** 2 * spec.r_driver_ohm + p_idle[:, 3],
            "access": ((vd - vs) * i_ch + vd * j_d + vs * j_s).sum(axis=1) + p_idle[:, 2],
        }
        return Solved(rows=it.rows, j=it.j, i_hot=i_m, v_hot=vb - vd, inj=inj,
                      idle={k: idle[k] for k in ("i_sh", "g_m") if k in idle}, x=x,
                      power=power, iterations=iters)


@dataclass
class Items:
    """A batch of (pulse, fraction) solves with the same number k of gated rows."""

    rows: np.ndarray       # (B, k) gated rows, ascending
    j: np.ndarray          # (B,) the driven column
    lv: np.ndarray         # (B,) level L of the gated source lines and idle bit lines, V
    hv: np.ndarray         # (B,) level H of the driven bit line, V
    frac: np.ndarray       # (B,) ramp fraction the levels are scaled by
    v_gate: np.ndarray     # (B, k) full gate levels of the gated rows, V
    floor: np.ndarray      # (B,) min(0, lowest line level) at full level, V
    states: np.ndarray | None = None   # (B, k, C) states of the gated rows' cells (idle lines)
    hot: np.ndarray | None = None      # (B, k) states of the hot cells (else from states)
    tile: np.ndarray | None = None     # (B,) which of the network's tiles (default: the first)

    def tiles(self) -> np.ndarray:
        return np.zeros(len(self.j), int) if self.tile is None else self.tile


@dataclass
class Solved:
    """Currents of a batch of items: only the gated rows carry current. The idle cells'
    (``i_rows``, ``v_rows``) are formed when asked: the current each hot cell injects into
    its source line times the idle lines' currents per ampere."""

    rows: np.ndarray       # (B, k)
    j: np.ndarray          # (B,) the driven column
    i_hot: np.ndarray      # (B, k) MTJ current t -> b of the hot cells
    v_hot: np.ndarray      # (B, k) their MTJ voltage t - b
    inj: np.ndarray        # (B, k) current the hot cells inject into their source lines
    idle: dict             # the idle lines' "i_sh" (per ampere) and "g_m" (B, k, C)
    x: np.ndarray          # (B, n) hot-network node voltages
    power: dict            # name -> (B,) watts: delivered, array, wires, access, periphery
    iterations: int

    @property
    def i_rows(self) -> np.ndarray:
        """(B, k, C) MTJ current t -> b of the gated rows' cells."""
        out = self.idle["i_sh"] * -self.inj[..., None]
        out[np.arange(out.shape[0])[:, None], np.arange(out.shape[1]), self.j[:, None]] = \
            self.i_hot
        return out

    @property
    def v_rows(self) -> np.ndarray:
        """(B, k, C) MTJ voltage t - b of the gated rows' cells."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.idle["i_sh"] * -self.inj[..., None] / self.idle["g_m"]
        out[np.arange(out.shape[0])[:, None], np.arange(out.shape[1]), self.j[:, None]] = \
            self.v_hot
        return out

    def solution(self, q: int, shape) -> Solution:
        i_cell, v_cell = np.zeros(shape), np.zeros(shape)
        i_cell[self.rows[q]] = self.i_rows[q]
        v_cell[self.rows[q]] = self.v_rows[q]
        return Solution(self.x[q].copy(), i_cell, v_cell,
                        {name: float(p[q]) for name, p in self.power.items()},
                        self.iterations)
