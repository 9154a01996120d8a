"""What read and write share: where netlists go, how ngspice is called and timed."""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from mtjsim.circuit.elements import Circuit
from mtjsim.circuit.netlist import write_netlist
from mtjsim.engines import ngspice

# Read accuracy: tight enough that hand-solved circuits agree to 1e-6 relative.
ACCURATE_OPTIONS = {"reltol": 1e-6, "vntol": 1e-9, "abstol": 1e-15}


@contextmanager
def netlist_dir(workdir: Path | None):
    """A folder for the netlist: the user's ``workdir`` (kept), or a temporary one that is
    removed after success and kept (and named in the error) after an ngspice failure."""
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        yield Path(workdir)
        return
    tmp = Path(tempfile.mkdtemp(prefix="mtjsim-"))
    try:
        yield tmp
    except ngspice.NgspiceError:
        raise                     # keep the folder: the error message points at the netlist
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def simulate(circuit: Circuit, analysis, folder: Path, name: str,
             backend: ngspice.Backend) -> tuple[ngspice.SimResult, dict]:
    """Write ``folder/name`` and run it; returns the result and the build/ngspice times."""
    t0 = time.perf_counter()
    path = write_netlist(circuit, analysis, folder / name)
    t1 = time.perf_counter()
    result = ngspice.run(path, backend=backend)
    t2 = time.perf_counter()
    return result, {"netlist_write_s": t1 - t0, "ngspice_s": t2 - t1}
