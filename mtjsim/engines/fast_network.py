"""DC solve of a crossbar with every line driven (the write network), for the fast engine's
quasi-static writes: the network of ``build_write_circuit`` with capacitors open.

Row lines: source ``v_row[i]`` behind ``r_driver_ohm`` (or ideal at the line's first node),
``cols`` wire segments. Bit lines: ``rows`` segments down to the bottom node, driven there by
``v_col[j]`` behind ``r_driver_ohm``. MTJs with the states given; 1T1R access NMOS with the
gate of row i at ``v_gate[i]`` (gate lines carry no DC current), using the same level-1 and
junction equations as the fast read engine (mtjsim.engines.fast).

Speed comes from solving only what carries current, and from reusing factorizations:

* **Rows whose access transistors are provably off drop out** (1T1R). Node voltages of a
  network of resistors, MTJs, transistors and grounded junctions lie between the lowest and
  the highest source level (0 V included), so a gate with ``V_g - VTO <= min(levels, 0)``
  keeps every transistor of its row in cutoff, where level 1 gives exactly zero channel
  current. Such a row's source line then carries no current (every node at its driver
  level), its cells' drains float at their bit line's voltage, and the bit line segments
  between the rows that are left carry one current each, so they merge into one conductance.
  Neglected: the reverse-bias leakage of those rows' junctions (IS + gmin V, about 1e-12 A
  per junction, the same order as ngspice's own gmin). A column-parallel 1T1R pulse on a
  64x64 array with 6 target rows solves ~1,200 unknowns instead of ~12,500.
* **Chord iterations** reuse the LU of the last Jacobian for the next solve of the same
  reduced network (the next ramp point, the network after a flip); a fresh Jacobian is
  factored only when the chord contracts too slowly. The Jacobian's sparse pattern (CSC) is
  built once per reduced network; each refactorization only refills its values.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mtjsim.circuit.crossbar import ArrayKind, Crossbar
from mtjsim.engines.fast import (_nested_dissection, junction_current, mtj_current,
                                 nmos_current)


class FastSolveError(RuntimeError):
    """Newton did not converge on the write network."""


@dataclass
class Solution:
    x: np.ndarray              # node voltages of the reduced network it was solved on
    i_cell_a: np.ndarray       # (rows, cols) MTJ current t -> b
    v_cell_v: np.ndarray       # (rows, cols) MTJ voltage t - b
    power_w: dict              # delivered, array, wires, access, periphery
    iterations: int

    @property
    def i_flat(self) -> np.ndarray:
        """MTJ currents flattened row-major (a view)."""
        return self.i_cell_a.ravel()


class _Reduced:
    """The write network restricted to the rows ``act`` (all rows of a passive array): node
    numbering (free nodes first, then the fixed source nodes), linear conductances, device
    terminals, the Jacobian's CSC pattern, and the last factorization."""

    def __init__(self, spec, act: np.ndarray):
        R, C = spec.rows, spec.cols
        self.spec = spec
        self.one_t = spec.kind is ArrayKind.ONE_T_ONE_R
        self.rows = np.flatnonzero(act)                   # active rows, ascending
        k = self.rows.size
        wire, drv = spec.r_wire_ohm > 0, spec.r_driver_ohm > 0
        gw = 1.0 / spec.r_wire_ohm if wire else 0.0

        # free nodes, each with a grid position (row, col) for the elimination order
        pos_r, pos_c = [], []

        def new(r, c):
            r, c = np.broadcast_arrays(np.asarray(r), np.asarray(c))
            start = sum(p.size for p in pos_r)
            pos_r.append(r.ravel())
            pos_c.append(c.ravel())
            return start + np.arange(r.size).reshape(r.shape)

        # row lines of the active rows: position 0 = driver output, j + 1 = cell (i, j)
        if wire:
            row_node = new(self.rows[:, None], np.arange(-1, C)[None, :])     # (k, C + 1)
        else:
            row_node = np.repeat(new(self.rows, -1)[:, None], C + 1, axis=1)
        # bit lines: kept positions are the active rows and the bottom (driven) end R
        if wire:
            keep = np.append(self.rows, R)
            bit_node = new(keep[None, :], np.arange(C)[:, None])              # (C, k + 1)
        else:
            bit_node = np.repeat(new(R, np.arange(C))[:, None], k + 1, axis=1)
        drain = new(self.rows[:, None], np.arange(C)[None, :]) if self.one_t else None
        n_int = sum(p.size for p in pos_r)
        pos_r, pos_c = np.concatenate(pos_r), np.concatenate(pos_c)

        if drv:    # the sources sit behind the drivers: every internal node is free
            n_free, n = n_int, n_int + k + C
            fixed_row, fixed_col = n_int + np.arange(k), n_int + k + np.arange(C)
        else:      # ideal drivers: the lines' first/bottom nodes are the sources; number
            fixed = np.unique(np.concatenate([row_node[:, 0], bit_node[:, -1]]))
            is_free = np.ones(n_int, bool)      # them behind the free nodes
            is_free[fixed] = False
            n_free, n = int(is_free.sum()), n_int
            renum = np.empty(n_int, int)
            renum[is_free] = np.arange(n_free)
            renum[fixed] = n_free + np.arange(fixed.size)
            row_node, bit_node = renum[row_node], renum[bit_node]
            drain = None if drain is None else renum[drain]
            pos_r, pos_c = pos_r[is_free], pos_c[is_free]
            fixed_row, fixed_col = row_node[:, 0], bit_node[:, -1]

        lin_a, lin_b, lin_g, group = [], [], [], []
        if wire:
            lin_a += [row_node[:, :-1].ravel(), bit_node[:, :-1].ravel()]
            lin_b += [row_node[:, 1:].ravel(), bit_node[:, 1:].ravel()]
            gaps = np.diff(keep)                 # bit line segments merged between kept rows
            lin_g += [np.full(k * C, gw), np.tile(gw / gaps, C)]
            group += ["wires"] * (2 * k * C)
        if drv:
            gd = 1.0 / spec.r_driver_ohm
            lin_a += [fixed_row, fixed_col]
            lin_b += [row_node[:, 0], bit_node[:, -1]]
            lin_g += [np.full(k + C, gd)]
            group += ["periphery"] * (k + C)
        self.n, self.n_free = n, n_free
        self.fixed = np.concatenate([fixed_row, fixed_col])
        self.lin_a = np.concatenate(lin_a).astype(int) if lin_a else np.zeros(0, int)
        self.lin_b = np.concatenate(lin_b).astype(int) if lin_b else np.zeros(0, int)
        self.lin_g = np.concatenate(lin_g) if lin_g else np.zeros(0)
        self.lin_group = np.array(group)
        self.G = sp.csr_matrix((np.concatenate([self.lin_g, self.lin_g, -self.lin_g,
                                                -self.lin_g]),
                                (np.concatenate([self.lin_a, self.lin_b, self.lin_a,
                                                 self.lin_b]),
                                 np.concatenate([self.lin_a, self.lin_b, self.lin_b,
                                                 self.lin_a]))), shape=(n, n))

        # devices: cells of the active rows, flattened (row of self.rows, col)
        self.cell = (self.rows[:, None] * C + np.arange(C)[None, :]).ravel()   # R*C index
        cell_row = row_node[:, 1:]                                # (k, C) row-line node
        cell_bit = bit_node[:, :k].T                              # (k, C) bit-line node
        if self.one_t:
            self.t, self.b = cell_bit.ravel(), drain.ravel()
            self.d, self.s = drain.ravel(), cell_row.ravel()
        else:
            self.t, self.b = cell_row.ravel(), cell_bit.ravel()
        m = self.t.size
        idx = np.arange(m)
        inc_r, inc_c = [self.t, self.b], [idx, idx]
        inc_v = [np.ones(m), -np.ones(m)]
        dev_r, dev_c = [self.t, self.b, self.t, self.b], [self.t, self.b, self.b, self.t]
        if self.one_t:
            inc_r += [self.d, self.s]
            inc_c += [m + idx, 2 * m + idx]
            inc_v += [np.ones(m), np.ones(m)]
            dev_r += [self.d, self.d, self.s, self.s]
            dev_c += [self.d, self.s, self.d, self.s]
        self.inc = sp.csr_matrix((np.concatenate(inc_v),
                                  (np.concatenate(inc_r), np.concatenate(inc_c))),
                                 shape=(n, m * (3 if self.one_t else 1)))

        # Jacobian on the free nodes: COO entries (G, then device stamps) -> CSC slots
        g = self.G.tocoo()
        self._g_vals = g.data
        r_all = np.concatenate([g.row] + dev_r)
        c_all = np.concatenate([g.col] + dev_c)
        self._keep = (r_all < n_free) & (c_all < n_free)
        key = c_all[self._keep] * n_free + r_all[self._keep]
        uniq, self._slot = np.unique(key, return_inverse=True)
        self._indices = (uniq % n_free).astype(np.int32)
        self._indptr = np.searchsorted(uniq // n_free, np.arange(n_free + 1)).astype(np.int32)
        self._nnz = uniq.size

        # Elimination order: nested dissection on the grid positions when no bit line was
        # merged (then every element joins equal or neighbouring positions); else MMD.
        self._perm = None
        if wire and k == R and n_free > 64:
            self._perm = _nested_dissection(pos_r, pos_c)
            self._iperm = np.empty_like(self._perm)
            self._iperm[self._perm] = np.arange(self._perm.size)
        self.lu = None
        self.x_last = None                       # warm start for the next solve
        # (LU, solution) per drive level: a pulse's fall revisits its rise's levels, and the
        # gate level sets the transistors' conductance, so that LU fits best
        self.by_level: OrderedDict = OrderedDict()

    def jacobian(self, dev_vals) -> sp.csc_matrix:
        vals = np.concatenate([self._g_vals] + dev_vals)[self._keep]
        data = np.bincount(self._slot, weights=vals, minlength=self._nnz)
        J = sp.csc_matrix((data, self._indices, self._indptr), shape=(self.n_free,) * 2)
        if self._perm is not None:
            J = J[self._perm][:, self._perm].tocsc()
        return J

    def factor(self, J):
        try:
            if self._perm is not None:
                self.lu = spla.splu(J, permc_spec="NATURAL", diag_pivot_thresh=0.01)
            else:
                self.lu = spla.splu(J, permc_spec="MMD_AT_PLUS_A")
        except RuntimeError as e:
            raise FastSolveError(f"fast write solve: singular Jacobian ({e})") from e

    def lu_solve(self, rhs):
        if self._perm is None:
            return self.lu.solve(rhs)
        return self.lu.solve(rhs[self._perm])[self._iperm]


class WriteNetwork:
    """The write network of one Crossbar; ``solve`` picks (and caches) the reduced network
    of the rows that can carry current."""

    _MAX_SYSTEMS = 16

    def __init__(self, xbar: Crossbar):
        spec = xbar.spec
        self.spec, self.cells = spec, xbar.cells
        self.one_t = spec.kind is ArrayKind.ONE_T_ONE_R
        self.rp = np.asarray(self.cells.r_p_ohm, float).ravel()
        self.tmr0 = np.asarray(self.cells.tmr0, float).ravel()
        self.vh = np.asarray(self.cells.v_h_v, float).ravel()
        self._systems: OrderedDict = OrderedDict()
        self.n_factorizations = 0

    def _active_rows(self, v_row, v_col, v_gate) -> np.ndarray:
        if not self.one_t:
            return np.ones(self.spec.rows, bool)
        floor = min(0.0, float(np.min(v_row)), float(np.min(v_col)))
        return np.asarray(v_gate, float) - self.spec.transistor.vto_v > floor

    def _system(self, act) -> _Reduced:
        key = np.packbits(act).tobytes()
        sysm = self._systems.get(key)
        if sysm is None:
            sysm = _Reduced(self.spec, act)
            self._systems[key] = sysm
            while len(self._systems) > self._MAX_SYSTEMS:
                self._systems.popitem(last=False)
        else:
            self._systems.move_to_end(key)
        return sysm

    def _devices(self, sysm: _Reduced, x, s, vg, jac: bool):
        """Device currents (in the order of sysm.inc's columns) and, if asked, the Jacobian
        stamps (in the order of sysm's device pattern)."""
        cell = sysm.cell
        v = x[sysm.t] - x[sysm.b]
        i_m, g_m = mtj_current(v, s[cell], self.rp[cell], self.tmr0[cell], self.vh[cell],
                               derivative=jac)
        if not sysm.one_t:
            return [i_m], ([g_m, g_m, -g_m, -g_m] if jac else None)
        vd, vs = x[sysm.d], x[sysm.s]
        i_d, a, c = nmos_current(vd, vs, vg, self.spec.transistor, derivative=jac)
        j_d, gj_d = junction_current(vd)
        j_s, gj_s = junction_current(vs)
        cur = [i_m, i_d + j_d, j_s - i_d]
        if not jac:
            return cur, None
        return cur, [g_m, g_m, -g_m, -g_m, a + gj_d, c, -a, gj_s - c]

    def solve(self, states, v_row, v_col, v_gate=None, *, tol_v=1e-9,
              max_iter=60, max_step_v=0.2, chord_rate=0.5) -> Solution:
        """Node voltages for fixed line voltages: chord iterations from the last solution
        of the same reduced network, with its last LU, refactored at the current
        point whenever the chord contracts slower than ``chord_rate``; steps limited to
        ``max_step_v`` (exponential junctions)."""
        C = self.spec.cols
        s = np.asarray(states, float).ravel()
        v_row = np.asarray(v_row, float)
        v_col = np.asarray(v_col, float)
        vg_rows = None if not self.one_t else np.asarray(v_gate, float)
        act = self._active_rows(v_row, v_col, vg_rows)
        sysm = self._system(act)
        nf = sysm.n_free
        vg = None if not self.one_t else np.repeat(vg_rows[sysm.rows], C)
        fixed = np.concatenate([v_row[sysm.rows], v_col])
        level = round(max(np.abs(fixed).max(initial=0.0),
                          0.0 if vg is None else np.abs(vg).max(initial=0.0)), 9)
        if level in sysm.by_level:
            sysm.lu, sysm.x_last = sysm.by_level[level]
        x = np.zeros(sysm.n) if sysm.x_last is None else sysm.x_last.copy()
        x[sysm.fixed] = fixed

        it, prev, step = 0, np.inf, np.inf
        fresh = False                         # the LU is the Jacobian at the current point
        while it < max_iter:
            it += 1
            cur, stamps = self._devices(sysm, x, s, vg, jac=sysm.lu is None)
            res = sysm.G @ x + sysm.inc @ np.concatenate(cur)
            if sysm.lu is None:
                sysm.factor(sysm.jacobian(stamps))
                self.n_factorizations += 1
                fresh = True
            dx = -sysm.lu_solve(res[:nf]) if nf else np.zeros(0)
            step = float(np.abs(dx).max()) if dx.size else 0.0
            if step > max_step_v:
                dx *= max_step_v / step
            x[:nf] += dx
            if step < tol_v:
                break
            if not fresh and (step > chord_rate * prev or it % 8 == 0):
                sysm.lu = None                # refactor at the new point
            prev = step
            fresh = False
        else:
            raise FastSolveError(f"fast write solve: Newton did not converge in {max_iter} "
                                 f"iterations (last step {step:.3g} V > {tol_v:g} V)")
        sysm.x_last = x
        sysm.by_level[level] = (sysm.lu, x)
        sysm.by_level.move_to_end(level)
        if len(sysm.by_level) > 8:
            sysm.by_level.popitem(last=False)
        return self._solution(sysm, x, s, vg, act, it)

    def _solution(self, sysm: _Reduced, x, s, vg, act, it) -> Solution:
        R, C = self.spec.rows, self.spec.cols
        cur, _ = self._devices(sysm, x, s, vg, jac=False)
        res = sysm.G @ x + sysm.inc @ np.concatenate(cur)
        i_cell = np.zeros(R * C)
        v_cell = np.zeros(R * C)
        v = x[sysm.t] - x[sysm.b]
        i_cell[sysm.cell], v_cell[sysm.cell] = cur[0], v
        dv = x[sysm.lin_a] - x[sysm.lin_b]
        p_lin = sysm.lin_g * dv * dv
        power = {
            "delivered": float(np.dot(x[sysm.fixed], res[sysm.fixed])),
            "array": float(np.dot(v, cur[0])),
            "wires": float(p_lin[sysm.lin_group == "wires"].sum()),
            "periphery": float(p_lin[sysm.lin_group == "periphery"].sum()),
            "access": 0.0,
        }
        if sysm.one_t:
            vd, vs = x[sysm.d], x[sysm.s]
            j_d, j_s = junction_current(vd)[0], junction_current(vs)[0]
            i_d = cur[1] - j_d                   # channel, drain -> source
            power["access"] = float(np.dot(vd - vs, i_d) + np.dot(vd, j_d) + np.dot(vs, j_s))
        return Solution(x, i_cell.reshape(R, C), v_cell.reshape(R, C), power, it)
