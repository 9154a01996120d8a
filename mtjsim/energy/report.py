"""Per-operation energy reports: ops, energy, energy per op, TOPS/W, latency, breakdown.

Operation counts (PHYSICS.md): a read of an n x m array is 2*n*m operations per input vector
(one multiply and one add per cell); an update of k cells is k operations.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mtjsim.energy.accounting import Energies
from mtjsim.runs import _atomic, write_json

BREAKDOWN_KEYS = ("array_j", "wires_j", "access_j", "periphery_j")


@dataclass
class EnergyReport:
    operation: str                 # "feedforward" or "update"
    ops: int
    energy_j: float                # delivered by the sources over the window
    energy_per_op_j: float
    tops_per_w: float
    latency_s: float               # one operation's window, settling included
    window_s: float                # the whole simulated window the energy covers
    breakdown: dict                # array_j, wires_j, access_j, periphery_j (dissipated)
    stored_change_j: float         # capacitors, end minus start of the window
    balance_error: float           # (delivered - dissipated - stored) / delivered
    conditions: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def row(self) -> dict:
        """One flat CSV row."""
        flat = {k: v for k, v in asdict(self).items() if k not in ("breakdown", "conditions",
                                                                   "details")}
        flat.update(self.breakdown)
        flat.update({k: v for k, v in self.details.items() if isinstance(v, (int, float))})
        return flat


def _make(operation: str, ops: int, e: Energies, latency_s: float, conditions: dict,
          details: dict) -> EnergyReport:
    g = e.by_group_j
    breakdown = {"array_j": g["array"], "wires_j": g["wires"], "access_j": g["access"],
                 "periphery_j": g["periphery"]}
    energy = e.delivered_j
    return EnergyReport(
        operation=operation, ops=ops, energy_j=energy, energy_per_op_j=energy / ops,
        tops_per_w=ops / energy / 1e12 if energy > 0 else float("inf"), latency_s=latency_s,
        window_s=e.t_end_s - e.t_start_s, breakdown=breakdown,
        stored_change_j=e.stored_change_j, balance_error=e.balance_error,
        conditions=conditions, details=details)


def feedforward_report(e: Energies, rows: int, cols: int, batch: int, slot_s: float,
                       conditions: dict) -> EnergyReport:
    return _make("feedforward", 2 * rows * cols * batch, e, slot_s, conditions,
                 {"batch": batch, "ops_per_vector": 2 * rows * cols,
                  "energy_per_vector_j": e.delivered_j / batch})


def update_report(e: Energies, n_targets: int, switched_names: set[str], conditions: dict,
                  latency_s: float) -> EnergyReport:
    """An update of k target cells counts k operations. Also: energy per switched bit and the
    MTJ energy spent in cells that did not switch."""
    n_switched = len(switched_names)
    not_switched_j = sum(v for k, v in e.by_mtj_j.items() if k not in switched_names)
    switched_j = sum(v for k, v in e.by_mtj_j.items() if k in switched_names)
    return _make("update", n_targets, e, latency_s, conditions, {
        "n_switched": n_switched,
        "energy_per_switched_bit_j": e.delivered_j / n_switched if n_switched else float("nan"),
        "mtj_energy_switched_cells_j": switched_j,
        "mtj_energy_not_switched_cells_j": not_switched_j})


def write_energy_files(out: Path, reports: list[EnergyReport], prefix: str = "") -> None:
    """energy.json, energy.csv and the stacked-bar plot energy.png."""
    from mtjsim.plots import energy_figure
    from mtjsim.runs import save_figure
    out = Path(out)
    write_json(out / f"{prefix}energy.json", {"reports": [asdict(r) for r in reports]})
    rows = [r.row() for r in reports]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=keys)
    wr.writeheader()
    wr.writerows(rows)
    _atomic(out / f"{prefix}energy.csv", lambda p: p.write_text(buf.getvalue()))
    save_figure(energy_figure(reports), out / f"{prefix}energy.png")


def reports_from_json(data: dict) -> list[EnergyReport]:
    return [EnergyReport(**r) for r in data["reports"]]
