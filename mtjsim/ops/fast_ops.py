"""read and write on the fast engine: the same inputs and the same result types as ngspice.

Reads: mtjsim.engines.fast (exact DC solve of the same network; batches share one
factorization). Writes: mtjsim.engines.fast_write (quasi-static: solve, advance every
device's switching progress, flip, re-solve). No netlist, no waveforms of line RC.
"""

from __future__ import annotations

import time

import numpy as np

from mtjsim.engines import fast
from mtjsim.engines.fast_write import quasi_static_write
from mtjsim.ops.read import ReadResult, as_input_batch, resolve_reference

SAMPLE_TOL_FRACTION = 1e-2      # CHECKED: sampled vectors solved to this fraction of fast_tol


def engine_options(settings) -> dict:
    """FastReadEngine's keywords for ``settings`` (ReadSettings)."""
    opts = {} if settings.fast_solver == "lu" else {"solver": settings.fast_solver}
    if settings.fast_bias_v:
        opts["bias_v"] = settings.fast_bias_v
    if fast.ReadMode(settings.fast_mode) is fast.ReadMode.CHECKED:
        opts["linear_tol"] = settings.fast_tol
        # the few vectors sampled to check the estimate: solved to 1 % of the tolerance
        # their error is compared with, not to tol_rel (1e-10): ~2 chord iterations, not ~9
        opts["sample_tol"] = SAMPLE_TOL_FRACTION * settings.fast_tol
    return opts


def fast_read(xbar, inputs_v, *, settings, i_ref_a=None,
              engine: fast.FastReadEngine | None = None,
              cell_voltages: bool = True) -> ReadResult:
    """``settings.fast_mode`` "exact" (default), "linear" or "checked" (see ReadSettings);
    "linear"/"checked" compute the column currents as a matrix product with the devices
    linearized at ``settings.fast_bias_v`` and solve the network only for the first vector's
    cell voltages (``v_cell_v``, ``r_cell_ohm``: of the linearized network in "linear").

    ``engine``: a FastReadEngine of ``xbar`` built with ``engine_options(settings)`` that the
    caller keeps (training keeps one per tile: more tiles than the module's cache holds);
    default: the module's cache of recent engines. ``cell_voltages=False`` skips the first
    vector's cell voltages (``v_cell_v`` and ``r_cell_ohm`` are then NaN): a CHECKED or LINEAR
    read is then only the matrix product and the check."""
    t0 = time.perf_counter()
    v_in = as_input_batch(inputs_v, xbar.spec.rows)
    i_ref = resolve_reference(xbar, v_in, i_ref_a)
    mode = fast.ReadMode(settings.fast_mode)
    opts = engine_options(settings)
    if engine is None:
        def solve(v, **kw):
            return fast.fast_read(xbar, v, **kw, **opts)
    else:
        if engine.xbar is not xbar:
            raise ValueError("fast_read: engine belongs to another Crossbar")

        def solve(v, **kw):
            return engine.read(v, **kw)
    v_cell = np.full(xbar.spec.shape, np.nan)
    if mode is fast.ReadMode.EXACT:
        res = solve(v_in, cell_voltages=cell_voltages)
        if cell_voltages:
            v_cell = res.v_cell_v[0]
    else:
        res = solve(v_in, mode=mode, cell_voltages=False)
        if cell_voltages:
            v_cell = solve(v_in[:1], mode=mode, cell_voltages=True).v_cell_v[0]
    if not cell_voltages:
        r_cell = v_cell.copy()                       # NaN, as 1 / G(NaN) would be
    else:
        r_cell = 1.0 / xbar.cells.conductance_s(v_cell, xbar.states)
    return ReadResult(
        i_out_a=res.i_out_a, v_in_v=v_in,
        r_cell_ohm=r_cell, v_cell_v=v_cell,
        decision=(res.i_out_a > i_ref[:, None]).astype(np.int8), i_ref_a=i_ref,
        states=xbar.states.copy(), netlist_path=None,
        timings_s={"fast_s": time.perf_counter() - t0, **res.timings_s})


def fast_write(xbar, program, seed, *, update_states=False):
    return quasi_static_write(xbar, program, seed, update_states=update_states)
