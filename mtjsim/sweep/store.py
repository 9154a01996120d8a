"""A sweep's folder: one JSON file per finished point, written atomically the moment it
arrives, and the table built from them.

    DIR/sweep.toml            the sweep file as given
    DIR/sweep.json            the expanded sweep: every point's index, id, params and seed
    DIR/points/<id>.json      one finished point (status "ok" or "failed"), atomic
    DIR/failed/<id>-<name>    the netlist a failed point gave ngspice
    DIR/computed.log          one line per point computed, per session (append-only)
    DIR/status.json           the last session: computed, skipped, failed, lost, wall time
    DIR/sweep.csv             the table: params and metrics of every point
    DIR/plots/*.png           plots chosen from the swept dimensions

A point file exists only once its point is finished, so a sweep started again skips exactly
the finished points; a run killed mid-write leaves at most a hidden ``.<name>.tmp<pid>``
file, never a half-written point.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

from mtjsim.runs import _atomic, write_json
from mtjsim.sweep.spec import METRIC_COLUMNS

TABLE = "sweep.csv"
SWEEP_JSON = "sweep.json"
POINTS = "points"
FAILED = "failed"
LOG = "computed.log"


def point_path(out: Path, pid: str) -> Path:
    return Path(out) / POINTS / f"{pid}.json"


def is_sweep_dir(path: Path) -> bool:
    """True when ``path`` holds a sweep table (what ``mtjsim report`` checks)."""
    path = Path(path)
    return (path / TABLE).is_file() or (path / SWEEP_JSON).is_file()


def prepare(out: Path, sweep) -> None:
    out = Path(out)
    (out / POINTS).mkdir(parents=True, exist_ok=True)
    if sweep.source:
        _atomic(out / "sweep.toml", lambda p: p.write_text(sweep.source))
    write_json(out / SWEEP_JSON, sweep.record())


def load_record(out: Path, pid: str) -> dict | None:
    """The finished record of point ``pid``, or None (missing or unreadable: recompute)."""
    path = point_path(out, pid)
    try:
        rec = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if rec.get("id") != pid or rec.get("status") not in ("ok", "failed"):
        return None
    return rec


def save_record(out: Path, record: dict) -> Path:
    """Write a finished point: its failing netlist first (if any), then the JSON that marks
    it finished. Both atomic."""
    out = Path(out)
    err = record.get("error")
    if err and "netlist_text" in err:
        text = err.pop("netlist_text")
        rel = f"{FAILED}/{record['id']}-{err.get('netlist_name', 'netlist.cir')}"
        _atomic(out / rel, lambda p: p.write_text(text))
        err["netlist_file"] = rel
    return write_json(point_path(out, record["id"]), record)


def log_computed(out: Path, session: str, record: dict) -> None:
    line = json.dumps({"session": session, "id": record["id"], "index": record["index"],
                       "status": record["status"], "time": time.time()})
    with open(Path(out) / LOG, "a") as f:
        f.write(line + "\n")
        f.flush()


def read_log(out: Path) -> list[dict]:
    path = Path(out) / LOG
    if not path.exists():
        return []
    out_lines = []
    for line in path.read_text().splitlines():
        try:
            out_lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass            # a line cut by a kill
    return out_lines


# --- the table ----------------------------------------------------------------------------
def _cell(x) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return str(int(x))
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        return repr(x)
    return str(x)


def table_rows(points, records: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per point in sweep order; pending points have empty
    metrics. Columns: point, id, status, the swept parameters, seed, the metrics (in a fixed
    order, extra ones sorted after), error, netlist."""
    params = list(dict.fromkeys(p for pt in points for p in pt.params))
    present = {k for r in records.values() if r.get("status") == "ok" for k in r["metrics"]}
    metrics = [c for c in METRIC_COLUMNS if c in present]
    metrics += sorted(present - set(metrics))
    header = ["point", "id", "status", *params, "seed", *metrics, "error", "netlist"]
    rows = []
    for pt in points:
        rec = records.get(pt.id)
        status = rec["status"] if rec else "pending"
        ok = status == "ok"
        err = (rec or {}).get("error") or {}
        rows.append([str(pt.index), pt.id, status, *(_cell(pt.params.get(p)) for p in params),
                     str(pt.seed),
                     *(_cell(rec["metrics"].get(m)) if ok else "" for m in metrics),
                     err.get("summary", ""), err.get("netlist_file", "")])
    return header, rows


def write_table(out: Path, points, records: dict) -> Path:
    header, rows = table_rows(points, records)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return _atomic(Path(out) / TABLE, lambda p: p.write_text(buf.getvalue()))


def read_table(path: Path) -> tuple[list[str], list[dict]]:
    """(header, rows as dicts of strings) of a sweep table."""
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        rows = list(r)
        return list(r.fieldnames or []), rows
