"""One place for parameter checks, so every error names field, value and allowed range."""

from __future__ import annotations

import math


def check_range(name: str, value: float, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False, typical: str = "") -> float:
    """Return ``value`` as float, or raise ValueError naming ``name``, the value and the range.

    ``lo_open`` excludes the lower bound (e.g. diameter must be > 0).
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: must be a number") from None
    ok = not math.isnan(x)
    if ok and lo is not None:
        ok = x > lo if lo_open else x >= lo
    if ok and hi is not None:
        ok = x < hi if hi_open else x <= hi
    if not ok:
        lo_txt = "" if lo is None else (f"> {lo:g}" if lo_open else f">= {lo:g}")
        hi_txt = "" if hi is None else (f"< {hi:g}" if hi_open else f"<= {hi:g}")
        rng = " and ".join(t for t in (lo_txt, hi_txt) if t) or "a finite number"
        extra = f" (typical {typical})" if typical else ""
        raise ValueError(f"{name}={value!r}: must be {rng}{extra}")
    return x


def check_int(name: str, value: int, *, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
            hasattr(value, "__index__")):
        raise ValueError(f"{name}={value!r}: must be an integer")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise ValueError(f"{name}={value!r}: must be an integer {rng}")
    return v
