"""The one boundary around ngspice: run a netlist file, return its vectors as numpy arrays (SI).

Two backends, same result:

* ``subprocess`` (default): ``ngspice -b -r out.raw netlist.cir`` with a time limit. A crash
  or hang cannot take the Python process down, memory is returned after every run, and the
  command is exactly what a user types to re-run a saved netlist.
* ``shared``: libngspice through PySpice's ``NgSpiceShared`` (no process start-up). Results are
  written by ngspice's own ``write`` command and read by the same raw-file parser.

benchmarks/bench_read.py measures both; see docs/engines.md for the figures and the choice.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class Backend(enum.Enum):
    SUBPROCESS = "subprocess"
    SHARED = "shared"


class NgspiceError(RuntimeError):
    """ngspice failed (non-convergence, singular matrix, syntax error, crash or time-out).
    Carries ngspice's own output and the path of the netlist it was given (kept on disk)."""

    def __init__(self, reason: str, netlist_path: Path, output: str = ""):
        self.reason = reason
        self.netlist_path = Path(netlist_path)
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-25:])
        super().__init__(f"ngspice failed: {reason}\n  netlist kept at: {self.netlist_path}\n"
                         f"  ngspice output (last lines):\n{tail}")


@dataclass
class SimResult:
    """Vectors of the last analysis, keyed by lower-case ngspice names: ``v(node)``,
    ``i(vsource)``, ``time``. Arrays are 1-D over time points (length 1 for ``.op``)."""

    vectors: dict[str, np.ndarray]
    plot_name: str
    netlist_path: Path
    wall_s: float
    output: str = field(repr=False, default="")

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.vectors[name.lower()]
        except KeyError:
            raise KeyError(f"vector {name!r} not in ngspice results "
                           f"({len(self.vectors)} vectors, e.g. {list(self.vectors)[:5]})") from None

    def v(self, node: str) -> np.ndarray:
        return self[f"v({node})"]

    def i(self, vsource: str) -> np.ndarray:
        return self[f"i(v{vsource})"] if not vsource.lower().startswith("v") else self[f"i({vsource})"]

    @property
    def time_s(self) -> np.ndarray:
        return self["time"]


# ngspice messages that mean the analysis did not produce a trustworthy answer.
_FAILURE_PATTERNS = [
    r"singular matrix", r"timestep too small", r"iteration limit reached",
    r"gmin stepping failed.*\n.*source stepping failed", r"run simulation\(s\) aborted",
    r"^error", r"fatal", r"could not find", r"unknown subckt", r"no such", r"not found",
    r"simulation interrupted", r"unknown model",
]
_FAILURE_RE = re.compile("|".join(f"(?:{p})" for p in _FAILURE_PATTERNS), re.I | re.M)
# Harmless lines that would match a pattern above.
_IGNORE_RE = re.compile(r"can't find init file|no compatibility mode|using spice opus|"
                        r"Note: No \"\.plot\"", re.I)


def find_failure(output: str) -> str | None:
    for line in output.splitlines():
        if _IGNORE_RE.search(line):
            continue
        if _FAILURE_RE.search(line):
            return line.strip()
    m = re.search(r"gmin stepping failed[\s\S]*source stepping failed", output, re.I)
    return m.group(0).splitlines()[-1].strip() if m else None


def ngspice_binary() -> str:
    path = shutil.which("ngspice")
    if path is None:
        raise NgspiceError("the ngspice binary is not on PATH (Debian: apt-get install ngspice "
                           "libngspice0; `make test` and `make demo` install it)", Path("-"))
    return path


def parse_raw(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Parse an ngspice raw file (binary or ASCII). Returns the LAST plot (the analysis run)."""
    data = Path(path).read_bytes()
    plots = []
    pos = 0
    while pos < len(data):
        header = {}
        names: list[str] = []
        while True:
            end = data.index(b"\n", pos)
            line = data[pos:end].decode("latin-1")
            pos = end + 1
            key, _, val = line.partition(":")
            key = key.strip().lower()
            if key == "variables":
                nvar = int(header["no. variables"])
                for _ in range(nvar):
                    end = data.index(b"\n", pos)
                    parts = data[pos:end].decode("latin-1").split()
                    names.append(parts[1].lower())
                    pos = end + 1
            elif key in ("binary", "values"):
                break
            else:
                header[key] = val.strip()
        nvar, npts = int(header["no. variables"]), int(header["no. points"])
        is_complex = "complex" in header.get("flags", "")
        if key == "binary":
            width = 2 if is_complex else 1
            count = nvar * npts * width
            arr = np.frombuffer(data, dtype="<f8", count=count, offset=pos)
            pos += count * 8
            arr = arr.reshape(npts, nvar, width)
            arr = arr[..., 0] + 1j * arr[..., 1] if is_complex else arr[..., 0]
        else:
            text = data[pos:].decode("latin-1").split()
            # layout: index, then nvar values, per point
            vals = []
            k = 0
            for _ in range(npts):
                k += 1
                vals.append([float(text[k + v]) for v in range(nvar)])
                k += nvar
            arr = np.asarray(vals)
            pos = len(data)
        plots.append((header.get("plotname", ""), {n: np.array(arr[:, v]) for v, n in enumerate(names)}))
        while pos < len(data) and data[pos:pos + 1] in (b"\n", b"\r"):
            pos += 1
    if not plots:
        raise ValueError(f"{path}: no plot in raw file")
    return plots[-1]


def run(netlist_path: Path, *, backend: Backend = Backend.SUBPROCESS,
        timeout_s: float = 1800.0) -> SimResult:
    """Run ``netlist_path`` in ngspice; raise NgspiceError (netlist kept) on any failure."""
    netlist_path = Path(netlist_path).resolve()
    if backend is Backend.SHARED:
        return _run_shared(netlist_path)
    raw = netlist_path.with_suffix(".raw")
    raw.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([ngspice_binary(), "-b", "-r", str(raw), str(netlist_path)],
                              capture_output=True, text=True, timeout=timeout_s,
                              cwd=netlist_path.parent, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise NgspiceError(f"no result within the time limit of {timeout_s:g} s", netlist_path,
                           (exc.stdout or "") if isinstance(exc.stdout, str) else "") from None
    wall = time.perf_counter() - t0
    output = proc.stdout + proc.stderr
    reason = find_failure(output)
    if proc.returncode < 0:
        reason = f"ngspice crashed (signal {-proc.returncode})"
    if reason is None and (proc.returncode != 0 or not raw.exists()):
        reason = f"exit code {proc.returncode}, raw file {'missing' if not raw.exists() else 'written'}"
    if reason:
        raise NgspiceError(reason, netlist_path, output)
    plot, vectors = parse_raw(raw)
    raw.unlink(missing_ok=True)
    return SimResult(vectors, plot, netlist_path, wall, output)


# --- shared library (PySpice) -------------------------------------------------------------
_shared = None


def _shared_instance():
    """One PySpice NgSpiceShared per process, created on first use (never at import)."""
    global _shared
    if _shared is None:
        # Debian ships only the versioned soname (no -dev symlink).
        os.environ.setdefault("NGSPICE_LIBRARY_PATH", "libngspice.so.0")
        # PySpice 1.5 warns "Unsupported Ngspice version 39" and logs every ngspice stderr
        # line as an error; both are noise here: failures are detected from the output below.
        logging.getLogger("PySpice").setLevel(logging.CRITICAL)
        from PySpice.Spice.NgSpice.Shared import NgSpiceShared
        _shared = NgSpiceShared.new_instance()
    return _shared


def _run_shared(netlist_path: Path) -> SimResult:
    ng = _shared_instance()
    raw = netlist_path.with_suffix(".raw")
    raw.unlink(missing_ok=True)
    t0 = time.perf_counter()
    output = []
    try:
        ng.remove_circuit() if ng.plot_names else None
    except Exception:  # noqa: BLE001 - nothing loaded yet
        pass
    try:
        ng.destroy()
    except Exception:  # noqa: BLE001
        pass
    cwd = os.getcwd()
    try:
        os.chdir(netlist_path.parent)   # .include paths are relative to the netlist
        ng.clear_output()
        ng._ngspice_shared.ngSpice_Command(f"source {netlist_path}".encode())
        output.append(ng.stdout + ng.stderr)
        ng.clear_output()
        ng._ngspice_shared.ngSpice_Command(b"run")
        output.append(ng.stdout + ng.stderr)
        ng.clear_output()
        ng._ngspice_shared.ngSpice_Command(f"write {raw}".encode())
        output.append(ng.stdout + ng.stderr)
    finally:
        os.chdir(cwd)
    wall = time.perf_counter() - t0
    text = "\n".join(output)
    reason = find_failure(text)
    if reason is None and not raw.exists():
        reason = "no results written"
    if reason:
        raise NgspiceError(reason, netlist_path, text)
    plot, vectors = parse_raw(raw)
    raw.unlink(missing_ok=True)
    return SimResult(vectors, plot, netlist_path, wall, text)
