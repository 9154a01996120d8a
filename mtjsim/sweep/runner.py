"""Run a sweep on dask.distributed: a local cluster with one single-threaded worker process
per core, or an existing cluster (``scheduler="tcp://host:8786"``).

The driver submits one task per unfinished point and writes each result the moment it
arrives (``as_completed``), atomically, so an interruption loses only the points in flight.
Points are pure functions of their parameters and seed, so the table does not depend on the
number of workers or on the order in which points finish. Results travel back to the driver
(failing netlists included), so a remote cluster needs no shared file system; its workers
only need mtjsim (and ngspice) installed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mtjsim.sweep import store
from mtjsim.sweep.point import run_point
from mtjsim.sweep.spec import Sweep
from mtjsim.validation import check_int

_DASK_LOGGERS = ("distributed", "distributed.worker", "distributed.scheduler",
                 "distributed.nanny", "distributed.core", "distributed.comm",
                 "distributed.batched", "distributed.client", "tornado")


@dataclass
class SweepRun:
    """What one session of ``run_sweep`` did."""

    out: Path
    n_points: int
    skipped: int                      # finished before this session
    computed: int = 0                 # finished in this session (ok or failed)
    failed: int = 0                   # points recorded as failed, over the whole sweep
    lost: int = 0                     # tasks lost to the cluster (killed workers...): not saved
    interrupted: bool = False
    wall_s: float = 0.0
    cluster_start_s: float = 0.0      # cluster up and every worker's imports done
    execute_s: float = 0.0            # first submit to last result
    point_s: float = 0.0              # sum of the points' own compute times, this session
    workers: int = 0
    table: Path | None = None
    plots: list[Path] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.skipped + self.computed

    def record(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self).items()
                if k != "plots"} | {"plots": [str(p) for p in self.plots]}


def quiet_dask() -> None:
    """Dask logs a lot at INFO and WARNING (worker start, heartbeat, closing streams);
    a sweep's own progress bar says what matters."""
    for name in _DASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """A dask.distributed Client: connected to ``scheduler`` or to a new local cluster of
    ``workers`` single-threaded processes (default: one per core). Dashboards off."""
    quiet_dask()
    import dask
    from distributed import Client, LocalCluster
    with dask.config.set({"distributed.logging.distributed": "error"}):
        if scheduler:
            try:
                client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
            try:
                yield client
            finally:
                client.close()
            return
        n = workers or os.cpu_count() or 1
        check_int("workers", n, lo=1, hi=4096)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        try:
            yield client
        finally:
            try:
                client.close()
                cluster.close()
            except Exception:  # noqa: BLE001 - shutting down after an interrupt
                pass


def _progress(total: int, initial: int, name: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=name, unit="pt", dynamic_ncols=True,
                file=sys.stderr, disable=not enabled, smoothing=0.1)


def run_sweep(sweep: Sweep, out: Path, *, workers: int | None = None,
              scheduler: str | None = None, retry_failed: bool = False,
              progress: bool = True, plots: bool = True, client=None) -> SweepRun:
    """Run every unfinished point of ``sweep`` and write the table (and plots) into ``out``.

    Finished points (``out/points/<id>.json``) are skipped; failed points too, unless
    ``retry_failed``. Ctrl-C stops the session cleanly: what finished is kept, and running
    the same sweep again continues from there. ``client``: an existing dask Client to use.
    """
    from mtjsim.sweep.plots import render_plots
    t0 = time.perf_counter()
    out = Path(out)
    points = sweep.points
    store.prepare(out, sweep)
    records: dict[str, dict] = {}
    for pt in points:
        rec = store.load_record(out, pt.id)
        if rec is not None and not (retry_failed and rec["status"] == "failed"):
            records[pt.id] = rec
    todo = list({pt.id: pt for pt in points if pt.id not in records}.values())
    run = SweepRun(out=out, n_points=len(points), skipped=len(records),
                   failed=sum(r["status"] == "failed" for r in records.values()))
    bar = _progress(len(points), len(records), sweep.name, progress)
    session = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"

    def show(refresh: bool = True):
        # done: finished fine; failed: recorded as failed or lost by the cluster
        bad = run.failed + run.lost
        bar.set_postfix_str(f"done {len(records) - run.failed}, failed {bad}, remaining "
                            f"{len(points) - len(records) - run.lost}", refresh=refresh)

    show()
    try:
        if todo:
            t1 = time.perf_counter()
            with (_given(client) if client is not None else
                  dask_client(workers, scheduler)) as cl:
                try:
                    cl.run(_warm_up, local=client is None and not scheduler)
                except (ImportError, OSError) as exc:
                    raise ValueError(f"the dask workers cannot import mtjsim ({exc}): install "
                                     f"mtjsim and ngspice where the workers run") from None
                run.cluster_start_s = time.perf_counter() - t1
                run.workers = len(cl.scheduler_info(n_workers=-1).get("workers", {})) \
                    if _has_n_workers_arg(cl) else len(cl.scheduler_info().get("workers", {}))
                t2 = time.perf_counter()
                try:
                    _execute(cl, todo, out, records, run, session, bar, show)
                finally:
                    run.execute_s = time.perf_counter() - t2
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        bar.close()
    run.table = store.write_table(out, points, records)
    if plots and not run.interrupted:
        try:
            run.plots = render_plots(out)
        except Exception as exc:  # noqa: BLE001 - a plot must not cost the results
            print(f"warning: plots not drawn: {exc}", file=sys.stderr)
    run.wall_s = time.perf_counter() - t0
    from mtjsim.runs import write_json
    write_json(out / "status.json", {**run.record(), "session": session})
    return run


def _warm_up(local: bool = False) -> None:
    """Import what a point needs on every worker before the clock of the first point starts
    (numpy, scipy, the ops: about a second per process). On a local cluster, also make
    Ctrl-C end a worker quietly: the terminal's SIGINT reaches the driver, the workers and
    their ngspice processes alike; the driver stops the session, ngspice dies of the signal,
    and the worker exits without printing a KeyboardInterrupt traceback."""
    import mtjsim.sweep.point  # noqa: F401
    if local:
        import signal

        def _quiet_exit(signum, frame):
            raise SystemExit(130)

        try:
            signal.signal(signal.SIGINT, _quiet_exit)
        except ValueError:      # not the worker's main thread: leave the default
            pass


def _has_n_workers_arg(client) -> bool:
    import inspect
    return "n_workers" in inspect.signature(client.scheduler_info).parameters


@contextmanager
def _given(client):
    yield client


def _execute(client, todo, out: Path, records: dict, run: SweepRun, session: str, bar,
             show) -> None:
    from distributed import as_completed
    futures = {}
    for pt in todo:
        # pure=False: a point is always recomputed when asked (never served from a cache of
        # another session); the key names the point in the scheduler's logs.
        fut = client.submit(run_point, pt, key=f"mtjsim-point-{pt.id}-{session}", pure=False)
        futures[fut] = pt
    try:
        for fut in as_completed(futures):
            pt = futures.pop(fut)
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - the cluster lost it (killed worker...)
                run.lost += 1
                print(f"\npoint {pt.index} ({pt.id}) lost by the cluster, not saved (run again "
                      f"to retry): {type(exc).__name__}: {exc}", file=sys.stderr)
                show()
                continue
            store.save_record(out, rec)
            store.log_computed(out, session, rec)
            records[pt.id] = rec
            run.computed += 1
            run.point_s += rec.get("timings_s", {}).get("total_s", 0.0)
            if rec["status"] == "failed":
                run.failed += 1
            show(refresh=False)
            bar.update(1)
    except KeyboardInterrupt:
        for fut in futures:
            fut.cancel()
        raise
