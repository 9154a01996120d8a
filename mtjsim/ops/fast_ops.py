"""read and write on the fast engine (mtjsim/engines/fast.py), same results as ngspice."""

from __future__ import annotations


def fast_read(xbar, inputs_v, *, settings, i_ref_a=None):
    raise NotImplementedError("engine 'fast' for read: being wired in (issue 5)")


def fast_write(xbar, program, seed, *, update_states=False):
    raise NotImplementedError("engine 'fast' for write: being wired in (issue 5)")
