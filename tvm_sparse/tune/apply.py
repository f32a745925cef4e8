"""Apply tuned records: the best schedule for a kernel from the user's and the shipped databases.

A record is looked up by the canonical workload of its key and applied to the actual function (any
nonzero pattern, any epilogue) as its kind says (``kinds/``: a dense kernel's trace is replayed, a
sparse kernel's knobs go through the current schedule code, so records outlive schedule changes).
With no record anywhere, a kind's default schedule, or where it has none a short tuning run.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import tvm
from tvm import s_tir, tirx

from .. import kinds
from ..kernels import intrin  # noqa: F401  (registers the tensor intrinsics traces name)
from ..kinds import KernelKey
from ..schedule.narrow import finalize
from ..schedule.scheduled import mark_scheduled
from ..target import mcpu_of
from .database import open_database
from .records import cores_sub, lookup_dirs, shipped_root, warn_foreign
from .tuner import DEFAULT_DB_ROOT, tune

UNTUNED_TRIALS = 16  # a kind with no default schedule and no record is tuned this much at first use


class UntunedWarning(UserWarning):
    """A kernel had no tuning record and was scheduled by defaults or a short tuning run."""


def database_roots(extra: list[str | Path] | None = None) -> list[Path]:
    """Where records are looked up, first hit wins: the user's, then the shipped ones."""
    return [Path(p) for p in (extra or [])] + [DEFAULT_DB_ROOT, shipped_root()]


def best_record(key: KernelKey, target: tvm.target.Target, roots: list[Path]):
    """The fastest record for ``key`` tuned on ``target``'s CPU (with its core count where there are such
    records, else on one core); where none has one, the fastest tuned on
    the nearest CPU in instruction sets that has records (a schedule is valid on any CPU with the
    instructions it uses, only its speed is CPU-specific), with a warning."""
    rec = None
    if cores_sub(target):  # measured with this many threads, else on one core
        rec = _best_in(key, target, lookup_dirs(roots, target, cores_sub(target))[1])
    if rec is None:
        rec = _best_in(key, target, lookup_dirs(roots, target)[1])
    if rec is None:
        other, dirs = lookup_dirs(roots, target, foreign=True)
        rec = _best_in(key, target, dirs)
        if rec is not None:
            warn_foreign(target, other, "kernel")
    return rec


def _best_in(key: KernelKey, target: tvm.target.Target, dirs: list[Path]):
    mods = [tvm.IRModule({"main": f}) for f in kinds.get(key.kind).record_funcs(key)]
    best = None
    for path in dirs:
        db = open_database(path, target)
        for mod in mods:
            rec = db.query_tuning_record(mod, target, "main")
            if rec is not None and (best is None or _mean(rec) < _mean(best)):
                best = rec
    return best


def _mean(rec) -> float:
    secs = [float(s) for s in (rec.run_secs or [])]
    return sum(secs) / len(secs) if secs else float("inf")


_requested: list[KernelKey] | None = None


@contextlib.contextmanager
def requested_kernels():
    """Collect the keys of every kernel ``schedule`` is asked for inside (e.g. by a graph's Linear swap),
    to tune them; the functions come back unscheduled, and nothing is tuned or looked up meanwhile."""
    global _requested
    outer, _requested = _requested, []
    try:
        yield _requested
    finally:
        _requested = outer


def schedule(
    func: tirx.PrimFunc,
    key: KernelKey,
    target: tvm.target.Target,
    roots: list[Path] | None = None,
) -> tuple[tirx.PrimFunc, str]:
    """``func`` scheduled (and narrowed) for ``target``; also says where the schedule came from."""
    if _requested is not None:
        _requested.append(key)
        return func, "requested"
    kind = kinds.get(key.kind)
    if not kind.tuned:
        return mark_scheduled(func), "written scheduled"
    roots = database_roots() if roots is None else roots
    rec = best_record(key, target, roots)
    sch = s_tir.Schedule(func)
    if rec is None and not kind.default_schedule(s_tir.Schedule(func)):
        warnings.warn(f"no tuning record for {key.name} on {mcpu_of(target)}: tuning "
                      f"{UNTUNED_TRIALS} trials now", UntunedWarning, stacklevel=2)
        tune(key, target, UNTUNED_TRIALS, db_root=roots[0], quiet=True)
        rec = best_record(key, target, roots)
    if rec is not None:
        kind.apply(sch, rec)
        source = f"tuned ({_mean(rec) * 1e6:.1f} us canonical)"
    else:
        warnings.warn(f"no tuning record for {key.name} on {mcpu_of(target)}: default schedule",
                      UntunedWarning, stacklevel=2)
        kind.default_schedule(sch)
        source = "default schedule"
    return mark_scheduled(finalize(sch.mod["main"])), source
