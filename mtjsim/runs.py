"""Run folders: atomic writes of JSON, CSV and arrays, so an interrupted run never leaves a
half-written file that looks whole."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from pathlib import Path

import numpy as np


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, enum.Enum):
        return x.value
    if isinstance(x, Path):
        return str(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)
    return path


def write_json(path: Path, data: dict) -> Path:
    return _atomic(path, lambda p: p.write_text(json.dumps(data, indent=1, default=_jsonable)))


def write_npz(path: Path, **arrays) -> Path:
    def w(p):
        with open(p, "wb") as f:
            np.savez_compressed(f, **arrays)
    return _atomic(path, w)


def save_figure(fig, path: Path) -> Path:
    def w(p):
        fig.savefig(p, dpi=110, bbox_inches="tight", format="png")
    out = _atomic(path, w)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return out
