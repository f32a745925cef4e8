"""The tuning driver: tune one kernel workload with evolutionary search + XGBoost, with resume.

Records accumulate in ``<db_root>/<mcpu>/``. Running again with a larger budget resumes: trials
already in the database count toward the budget and are never measured twice (the search seeds
itself from the database and skips traces it has measured).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from .. import kinds
from ..kernels import intrin  # noqa: F401  (registers the tensor intrinsics traces name)
from ..kinds import KernelKey
from .builder import local_builder
from .database import exclusive, open_database
from .records import cores_sub, cpu_dir
from .runner import local_runner

DEFAULT_DB_ROOT = Path("tuning_logs")


@dataclass
class TuneResult:
    key: KernelKey
    trials_before: int
    trials_after: int
    best_us: float | None
    db_path: Path


def db_path(db_root: str | Path, target: tvm.target.Target) -> Path:
    """Kernel records of ``target``'s CPU and core count (``records.cores_sub``)."""
    return cpu_dir(db_root, target, cores_sub(target))


def records_for(db: ms.database.Database, mod: tvm.IRModule) -> list:
    """The valid records of ``mod``, fastest first."""
    if not db.has_workload(mod):
        return []
    return list(db.get_top_k(db.commit_workload(mod), 1 << 30))


def measured(db: ms.database.Database, mod: tvm.IRModule) -> int:
    """Candidates of ``mod`` measured so far, failed ones included: what the trial budget counts (counting
    only valid ones made every resume measure the failures' share again)."""
    if not db.has_workload(mod):
        return 0
    workload = db.commit_workload(mod)
    return sum(1 for r in db.get_all_tuning_records() if r.workload.same_as(workload))


def best_us(records: list) -> float | None:
    valid = [r for r in records if r.run_secs and all(float(s) < 1e9 for s in r.run_secs)]
    if not valid:
        return None
    return min(sum(float(s) for s in r.run_secs) / len(r.run_secs) for r in valid) * 1e6


@derived_object
class _Progress(ms.measure_callback.PyMeasureCallback):
    """Print one line per measured batch: how far, and the best time so far."""

    def __init__(self, label: str, total: int, done: int, out=sys.stderr) -> None:
        self.label, self.total, self.done, self.best, self.out = label, total, done, None, out
        self.start = time.time()

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        for res in runner_results:
            self.done += 1
            if res.error_msg is None and res.run_secs:
                us = sum(float(s) for s in res.run_secs) / len(res.run_secs) * 1e6
                self.best = us if self.best is None else min(self.best, us)
        best = "-" if self.best is None else f"{self.best:.1f} us"
        print(
            f"[tune] {self.label}: {self.done}/{self.total} trials, best {best}, "
            f"{time.time() - self.start:.0f} s",
            file=self.out,
            flush=True,
        )


def _runner(arrays, rpc: tuple[str, str] | None) -> ms.runner.Runner:
    if rpc is None:
        return local_runner(arrays)
    from .rpc import rpc_runner

    return rpc_runner(rpc[0], rpc[1], arrays)


@contextlib.contextmanager
def _ms_logging():
    """MetaSchedule rebuilds its logging config from the handlers on its logger, by name, and
    crashes on an unnamed one (pytest's capture handler, a user's basicConfig): detach those while
    tuning, restore after."""
    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    unnamed = [h for h in logger.handlers if h.get_name() is None]
    for h in unnamed:
        logger.removeHandler(h)
    try:
        yield
    finally:
        for h in unnamed:
            logger.addHandler(h)


def tune(
    key: KernelKey,
    target: tvm.target.Target,
    trials: int,
    db_root: str | Path = DEFAULT_DB_ROOT,
    runner: ms.runner.Runner | None = None,
    seed: int | None = None,
    quiet: bool = False,
    rpc: tuple[str, str] | None = None,
) -> TuneResult:
    """Tune ``key`` up to ``trials`` measured candidates in total (earlier runs included).

    ``rpc=(tracker HOST:PORT, key)`` measures on the RPC servers registered under that key."""
    kind = kinds.get(key.kind)
    if not kind.tuned:
        raise ValueError(f"{key.kind} kernels are written scheduled: there is nothing to tune")
    func, arrays = kind.canonical(key)
    mod = tvm.IRModule({"main": func})
    path = db_path(db_root, target)
    with exclusive(path):
        return _tune_locked(key, target, trials, path, mod, arrays, runner, seed, quiet, rpc)


def _tune_locked(key, target, trials, path, mod, arrays, runner, seed, quiet, rpc) -> TuneResult:
    db = open_database(path, target)
    before = measured(db, mod)
    remaining = trials - before
    if remaining > 0:
        callbacks = ms.measure_callback.MeasureCallback.create("default")
        if not quiet:
            callbacks = [*callbacks, _Progress(key.name, trials, before)]
        with _ms_logging(), tempfile.TemporaryDirectory(prefix="tvm_sparse_tune_") as work_dir:
            ms.tune_tir(
                mod,
                target,
                work_dir=work_dir,
                max_trials_global=remaining,
                num_trials_per_iter=min(32, remaining),
                builder=local_builder(),
                runner=runner or _runner(arrays, rpc),
                database=db,
                cost_model="xgb",
                measure_callbacks=callbacks,
                space=kinds.get(key.kind).space(),
                strategy="evolutionary",
                num_tuning_cores=1,
                seed=seed,
            )
    return TuneResult(key, before, measured(db, mod), best_us(records_for(db, mod)), path)
