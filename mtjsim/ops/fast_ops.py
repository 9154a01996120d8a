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


def fast_read(xbar, inputs_v, *, settings, i_ref_a=None) -> ReadResult:
    """``settings.fast_mode`` "exact" (default), "linear" or "checked" (see ReadSettings);
    "linear"/"checked" compute the column currents as a matrix product with the devices
    linearized at ``settings.fast_bias_v`` and solve the network only for the first vector's
    cell voltages (``v_cell_v``, ``r_cell_ohm``: of the linearized network in "linear")."""
    t0 = time.perf_counter()
    v_in = as_input_batch(inputs_v, xbar.spec.rows)
    i_ref = resolve_reference(xbar, v_in, i_ref_a)
    mode = fast.ReadMode(settings.fast_mode)
    opts = {} if settings.fast_solver == "lu" else {"solver": settings.fast_solver}
    if settings.fast_bias_v:
        opts["bias_v"] = settings.fast_bias_v
    if mode is fast.ReadMode.CHECKED:
        opts["linear_tol"] = settings.fast_tol
    if mode is fast.ReadMode.EXACT:
        res = fast.fast_read(xbar, v_in, **opts)
        v_cell = res.v_cell_v[0]
    else:
        res = fast.fast_read(xbar, v_in, mode=mode, cell_voltages=False, **opts)
        first = fast.fast_read(xbar, v_in[:1], mode=mode, cell_voltages=True, **opts)
        v_cell = first.v_cell_v[0]
    return ReadResult(
        i_out_a=res.i_out_a, v_in_v=v_in,
        r_cell_ohm=1.0 / xbar.cells.conductance_s(v_cell, xbar.states), v_cell_v=v_cell,
        decision=(res.i_out_a > i_ref[:, None]).astype(np.int8), i_ref_a=i_ref,
        states=xbar.states.copy(), netlist_path=None,
        timings_s={"fast_s": time.perf_counter() - t0, **res.timings_s})


def fast_write(xbar, program, seed, *, update_states=False):
    return quasi_static_write(xbar, program, seed, update_states=update_states)
