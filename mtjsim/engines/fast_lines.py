"""Line-relaxation solver for exact reads of PASSIVE crossbars with wire resistance: warm-started
block SOR between the row-line layer and the bit-line layer, every line a tridiagonal system.

The network is the one of ``mtjsim.engines.fast`` (and of ``build_read_circuit``'s netlist):

* row line i, positions p = 0..cols (0 = driver output, j+1 = cell (i, j)), ``cols`` wire
  segments of ``r_wire_ohm``; the driver is the input behind ``r_driver_ohm`` (0 ohm: position
  0 held at the input; NaN input: driver disconnected, the line floats);
* bit line j, positions p = 0..rows (i = cell (i, j), rows = sense node), ``rows`` segments;
  the sense node held at 0 V (virtual ground) or loaded by ``r_sense_ohm``;
* MTJ (i, j) between row position j+1 of line i (t) and bit position i of line j (b):
  ``I(u) = G(u) u`` with the bias-dependent TMR of ``mtj_conductance_s``.

Given the bit-line voltages, every row line is an independent tridiagonal system (wires,
driver, cells as conductances to known voltages); all rows are stacked into one tridiagonal
system with zero coupling between lines and solved by one LAPACK call (``dpttrs``, the
matrix is symmetric positive definite); then likewise all bit lines given the row voltages.
That is block Gauss-Seidel on the 2x2 block system [[A, -D], [-D^T, B]]: a two-block system is
consistently ordered, so block SOR with ``omega = 2 / (1 + sqrt(1 - rho_GS))`` contracts at
``omega - 1`` instead of Gauss-Seidel's ``rho_GS`` (0.1 instead of 0.4 on a 128x128 array with
1 ohm wires and a 20 ohm driver); ``rho_GS`` is measured during the first (cold) solve of an
array and kept.

Nonlinear cells: each read freezes a linearization ``D`` (every cell's tangent conductance at
the starting voltages, with the current states) and factors the two stacked tridiagonal
matrices once; the cell currents are ``D u + N(u)`` with the remainder ``N`` re-evaluated once
per sweep (nonzero only for AP cells, a few % of their current at read voltages), so the fixed
point is the exact nonlinear KCL solution.

Stopping test, as for the chord iterations of the LU engine: the iteration contracts linearly,
so the remaining error is about ``rate / (1 - rate)`` times the last step; the last step of
the node voltages and of the column currents, scaled by that (rate: the larger of the last two
step ratios, and at least 1x), must be within ``tol_v`` and ``tol_rel`` x the largest column
current + ``abstol_a``. A solve that does not get there in ``max_sweeps`` sweeps (or whose
steps stop shrinking) reports ``converged=False`` and the caller falls back to the LU solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, SenseKind


@dataclass
class LineSolution:
    i_out_a: np.ndarray       # (cols,) current into each sense (= i(vsns_j))
    x_row: np.ndarray         # (rows, cols + 1) row-line node voltages
    x_bit: np.ndarray         # (cols, rows + 1) bit-line node voltages
    sweeps: int
    converged: bool
    step_v: float             # last node-voltage step, V
    step_a: float             # last change of the column currents, A

    def cell_voltages(self) -> np.ndarray:
        """(rows, cols) across each MTJ, t (row line) minus b (bit line)."""
        R = self.x_row.shape[0]
        return self.x_row[:, 1:] - self.x_bit[:, :R].T


def supported(spec: ArraySpec) -> bool:
    """The line solver handles passive arrays with wire resistance (merged lines, r_wire = 0,
    and 1T1R arrays stay on the LU path)."""
    return spec.kind is ArrayKind.PASSIVE and spec.r_wire_ohm > 0


class LineSolver:
    """Exact single-vector reads of one passive array (spec and per-cell devices fixed; the
    states are passed to every solve), warm-started from the previous solve.

    ``max_sweeps``: sweeps before giving up (``converged=False``). ``omega``: fixed SOR factor
    (None: 1 for the first solve, then from the Gauss-Seidel rate measured there)."""

    def __init__(self, spec: ArraySpec, r_p_ohm, tmr0, v_h_v, *, max_sweeps: int = 200,
                 omega: float | None = None, max_stale: int | None = None):
        if not supported(spec):
            raise ValueError("LineSolver: passive arrays with r_wire_ohm > 0 only")
        R, C = spec.rows, spec.cols
        self.spec, self.R, self.C = spec, R, C
        shape = (R, C)
        self.r_p = np.broadcast_to(np.asarray(r_p_ohm, float), shape).copy()
        self.tmr0 = np.broadcast_to(np.asarray(tmr0, float), shape).copy()
        self.v_h = np.broadcast_to(np.asarray(v_h_v, float), shape).copy()
        self.max_sweeps = int(max_sweeps)
        # states changed since the linearization before it is retaken (default: 1 % of cells)
        self.max_stale = max(1, R * C // 100) if max_stale is None else int(max_stale)
        self.n_factorizations = 0
        self._fact = None
        self.omega_fixed = omega
        self.rho_gs: float | None = None      # Gauss-Seidel rate, measured on a cold solve
        self.gw = 1.0 / spec.r_wire_ohm
        self.vg = spec.sense is SenseKind.VIRTUAL_GROUND
        self.g_drv = 1.0 / spec.r_driver_ohm if spec.r_driver_ohm > 0 else None
        gw = self.gw
        # wire part of the stacked tridiagonals: node degree x gw, -gw within a line, 0 across
        self.row_diag0 = np.full((R, C + 1), 2 * gw)
        self.row_diag0[:, 0] = self.row_diag0[:, C] = gw
        self.row_off0 = np.full((R, C + 1), -gw)
        self.row_off0[:, C] = 0.0
        self.bit_diag0 = np.full((C, R + 1), 2 * gw)
        self.bit_diag0[:, 0] = self.bit_diag0[:, R] = gw
        self.bit_off0 = np.full((C, R + 1), -gw)
        self.bit_off0[:, R] = 0.0
        if self.vg:                               # sense node held at 0 V: identity row
            self.bit_diag0[:, R] = 1.0
            self.bit_off0[:, R - 1] = 0.0
        else:
            self.bit_diag0[:, R] += 1.0 / spec.r_sense_ohm
        self._x_row = None                        # last solution: the next warm start
        self._x_bit = None

    # --- devices ------------------------------------------------------------------------------
    def _tangent(self, u, s):
        """dI/dV of every cell at voltages u (rows, cols), states s (float)."""
        r_p, t0, vh = self.r_p, self.tmr0, self.v_h
        q = 1.0 + (u / vh) ** 2
        den = q + t0
        g = (1 - s) / r_p + s * q / (r_p * den)
        return g + s * 2 * u * u * t0 / (vh * vh * r_p * den * den)

    def matches(self, spec: ArraySpec, r_p_ohm, tmr0, v_h_v) -> bool:
        """Built for this spec and these per-cell devices (cheaper than hashing them)."""
        return spec == self.spec and all(
            np.array_equal(np.broadcast_to(np.asarray(a, float), mine.shape), mine)
            for a, mine in ((r_p_ohm, self.r_p), (tmr0, self.tmr0), (v_h_v, self.v_h)))

    def reset(self) -> None:
        """Forget the warm start and the linearization."""
        self._x_row = self._x_bit = None
        self._fact = None

    # --- one read -----------------------------------------------------------------------------
    def solve(self, states, v_in, *, tol_rel: float = 1e-10, tol_v: float = 1e-9,
              abstol_a: float = 1e-15, max_sweeps: int | None = None) -> LineSolution:
        R, C, gw = self.R, self.C, self.gw
        max_sweeps = self.max_sweeps if max_sweeps is None else int(max_sweeps)
        s = np.asarray(states, float).reshape(R, C)
        v = np.asarray(v_in, float).reshape(R)
        driven = ~np.isnan(v)
        vz = np.where(driven, v, 0.0)

        cold = self._x_row is None
        if cold:
            x_row = np.repeat(vz[:, None], C + 1, axis=1)
            x_bit = np.zeros((C, R + 1))
        else:
            x_row, x_bit = self._x_row.copy(), self._x_bit.copy()

        # driver terms of the row lines
        row_diag = self.row_diag0.copy()
        row_off = self.row_off0.copy()
        row_rhs0 = np.zeros((R, C + 1))
        if self.g_drv is not None:
            row_diag[driven, 0] += self.g_drv
            row_rhs0[:, 0] = self.g_drv * vz
        else:                                     # ideal source on position 0: identity row
            row_diag[driven, 0] = 1.0
            row_off[driven, 0] = 0.0
            row_rhs0[:, 0] = vz
            row_rhs0[:, 1] += np.where(driven, gw * vz, 0.0)
            x_row[driven, 0] = vz[driven]

        # frozen linearization D and the LU (L D L^T) of both stacked tridiagonals, kept
        # across reads while the driven rows are the same and few states changed: a stale
        # tangent only slows the iteration a little (its error goes into the remainder N)
        fact = self._fact
        s_flat = s.ravel()
        if (fact is None or not np.array_equal(fact["driven"], driven)
                or int(np.count_nonzero(fact["s"] != s_flat)) > self.max_stale):
            u = x_row[:, 1:] - x_bit[:, :R].T
            D = self._tangent(u, s)
            row_diag[:, 1:] += D
            bit_diag = self.bit_diag0.copy()
            bit_diag[:, :R] += D.T
            rd, re, info1 = lapack.dpttrf(row_diag.ravel(), row_off.ravel()[:-1])
            bd, be, info2 = lapack.dpttrf(bit_diag.ravel(), self.bit_off0.ravel()[:-1])
            if info1 or info2:                    # not positive definite: let LU handle it
                self._fact = None
                return LineSolution(np.full(C, np.nan), x_row, x_bit, 0, False, np.inf,
                                    np.inf)
            fact = self._fact = dict(driven=driven.copy(), s=s_flat.copy(), D=D,
                                     rd=rd, re=re, bd=bd, be=be)
            self.n_factorizations += 1
        D, rd, re, bd, be = fact["D"], fact["rd"], fact["re"], fact["bd"], fact["be"]

        # remainder N(u) = I(u) - D u: nonzero for AP cells and for cells whose state changed
        # since D was taken
        nl = np.flatnonzero(((s_flat != 0) & (self.tmr0.ravel() != 0)) | (fact["s"] != s_flat))
        s_n = s_flat[nl]
        rp_n, t0_n, vh_n = self.r_p.ravel()[nl], self.tmr0.ravel()[nl], self.v_h.ravel()[nl]
        D_n = D.ravel()[nl]
        lin_n = (1 - s_n) / rp_n

        def remainder(u):
            un = u.ravel()[nl]
            q = 1.0 + (un / vh_n) ** 2
            g = lin_n + s_n * q / (rp_n * (q + t0_n))
            N = np.zeros(R * C)
            N[nl] = (g - D_n) * un
            return N.reshape(R, C)

        if self.omega_fixed is not None:
            omega = float(self.omega_fixed)
        elif self.rho_gs is None or cold:
            omega = 1.0
        else:
            omega = 2.0 / (1.0 + np.sqrt(max(1.0 - self.rho_gs, 0.0)))

        def out_current(xb):
            return gw * xb[:, R - 1] if self.vg else xb[:, R] / self.spec.r_sense_ohm

        i_prev = out_current(x_bit)
        steps = []
        converged = False
        step_v = step_a = np.inf
        k = 0
        N = remainder(x_row[:, 1:] - x_bit[:, :R].T) if nl.size else None
        rhs_r = row_rhs0.copy()
        rhs_b = np.zeros((C, R + 1))
        while k < max_sweeps:
            k += 1
            # row layer given the bit voltages
            cells_r = rhs_r[:, 1:]
            np.multiply(D, x_bit[:, :R].T, out=cells_r)
            if N is not None:
                cells_r -= N
            if self.g_drv is None:                # ideal driver: its wire into position 1
                rhs_r[:, 1] += row_rhs0[:, 1]
            xr_new, _ = lapack.dpttrs(rd, re, rhs_r.ravel())
            xr_new = xr_new.reshape(R, C + 1)
            dr = xr_new - x_row
            if omega != 1.0:
                dr *= omega
            x_row += dr
            # bit layer given the row voltages
            cells_b = rhs_b[:, :R]
            np.multiply(D.T, x_row[:, 1:].T, out=cells_b)
            if N is not None:
                cells_b += N.T
            xb_new, _ = lapack.dpttrs(bd, be, rhs_b.ravel())
            xb_new = xb_new.reshape(C, R + 1)
            db = xb_new - x_bit
            if omega != 1.0:
                db *= omega
            x_bit += db
            if N is not None:
                N = remainder(x_row[:, 1:] - x_bit[:, :R].T)
            i_new = out_current(x_bit)
            step_v = max(float(dr.max()), float(-dr.min()), float(db.max()), float(-db.min()))
            step_a = float(np.abs(i_new - i_prev).max())
            i_prev = i_new
            steps.append(step_v)
            if not np.isfinite(step_v):
                break
            if k >= 3:
                r1 = steps[-1] / steps[-2] if steps[-2] > 0 else 0.0
                r2 = steps[-2] / steps[-3] if steps[-3] > 0 else 0.0
                rate = max(r1, r2)
                if rate >= 1.0 and k > 8 and step_v > tol_v:
                    if r1 >= 1.0 and r2 >= 1.0:   # steps no longer shrinking: give up
                        break
                    continue
                amp = max(1.0, rate / (1.0 - rate)) if rate < 1 else np.inf
                tol_a = tol_rel * float(np.abs(i_new).max()) + abstol_a
                if step_v * amp <= tol_v and step_a * amp <= tol_a:
                    converged = True
                    break
        if cold and omega == 1.0 and len(steps) >= 6:
            # Gauss-Seidel rate: the steady ratio of successive steps
            ratios = [b / a for a, b in zip(steps[2:-1], steps[3:]) if a > 0]
            if ratios:
                self.rho_gs = float(min(max(np.median(ratios[-4:]), 0.0), 0.99))
        if converged:
            self._x_row, self._x_bit = x_row, x_bit

        return LineSolution(i_prev, x_row, x_bit, k, converged, step_v, step_a)
