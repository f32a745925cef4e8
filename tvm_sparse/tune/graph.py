"""MetaSchedule tuning of a graph's functions: everything the kernel library does not cover (attention matmuls, softmax,
LayerNorm, embeddings, reshapes, and dense fp32 Linears).

Built and measured as kernels are (``builder``, ``runner``, ``config``); one checked, locked JSON
database per directory. Tasks are keyed by their fused TIR structure, so the 12 identical
LayerNorms of a BERT are one task and a record serves every layer of the same shape, in this model
and the next. Tuning goes task by task: progress is printed, and a task that already holds ``trials``
measured records in the database is skipped (resume after an interruption).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from ..schedule.hand import hand_schedule, hand_schedule_name
from ..schedule.scheduled import is_scheduled, mark_scheduled
from ..target import device
from . import records
from .builder import build, local_builder
from .config import EVALUATOR
from .database import exclusive
from .database import open_database as checked_database
from .runner import local_runner, safe_args


def open_database(work_dir: str | Path, target: tvm.target.Target) -> ms.database.JSONDatabase:
    """The graph database in ``work_dir``, through the same checked path as kernel records: damaged or
    foreign lines are moved aside to a ``.rejected`` file (named in a warning), the rest keeps working."""
    return checked_database(work_dir, target)


def lower_for_tuning(mod: tvm.IRModule) -> tvm.IRModule:
    """Fast math, then legalize and fuse, exactly as the compile pipeline does (so database keys match).

    ``FastMathTransform`` swaps softmax/exp/erf/tanh for TOPI's polynomial versions: the plain ``exp``
    becomes one libm ``expf`` call per element (LLVM has no vector exp), ~0.7 ms per BERT softmax."""
    return relax.get_pipeline("zero")(relax.transform.FastMathTransform()(mod))


def extract(mod: tvm.IRModule, target: tvm.target.Target) -> list:
    """The tasks still to schedule: the kernel library's functions are excluded (already scheduled)."""
    tasks = ms.relax_integration.extract_tasks(lower_for_tuning(mod), target)
    return [t for t in tasks if not is_scheduled(t.dispatched[0]["main"])]


def _quiet_console() -> None:
    """MetaSchedule's per-trial INFO logs stay in work_dir/logs; the console gets our progress lines."""
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith("tvm.s_tir.meta_schedule") and isinstance(logger, logging.Logger):
            for h in logger.handlers:
                if type(h) is logging.StreamHandler:
                    h.setLevel(logging.WARNING)


class Progress:
    """Trials already spent per task (a task whose space holds fewer distinct candidates than the
    budget never reaches ``trials`` records, so the record count alone cannot tell it is done)."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / "progress.json"
        self.spent: dict[str, int] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @staticmethod
    def key(task) -> str:
        return f"{task.task_name}:{tvm_ffi.structural_hash(task.dispatched[0]):x}"

    def get(self, task) -> int:
        return self.spent.get(self.key(task), 0)

    def add(self, task, trials: int) -> None:
        self.spent[self.key(task)] = self.get(task) + trials
        self.path.write_text(json.dumps(self.spent, indent=1))

    # per hand schedule: a hand schedule added later is still seeded into an old database
    def seeded(self, task, hand: str) -> bool:
        return self.spent.get(f"seeded:{hand}:{self.key(task)}", 0) > 0

    def mark_seeded(self, task, hand: str) -> None:
        self.spent[f"seeded:{hand}:{self.key(task)}"] = 1
        self.path.write_text(json.dumps(self.spent, indent=1))


HEAVY_OPS = ("softmax", "matmul", "layer_norm", "transpose", "mean", "variance", "sum", "max", "linear", "dense",
             "conv")


def is_heavy(task) -> bool:
    """A task worth a real budget: a reduction (softmax, attention matmuls, LayerNorm) or a transpose
    (a strided copy: 8 trials left the attention head split at 160 us in bert-base), not a reshape."""
    name = task.task_name.lower()
    if any(op in name for op in HEAVY_OPS):
        return True
    text = task.dispatched[0]["main"].script()
    return "T.init()" in text or "T.axis.reduce" in text  # a reduction block


def budget(heavy: int, light: int):
    """A per-task trial budget: ``heavy`` trials for reductions, ``light`` for injective ops."""
    return lambda task: heavy if is_heavy(task) else light


def seed_hand_schedules(task, db: ms.database.Database, target: tvm.target.Target) -> float | None:
    """Measure the hand schedule of a task that has one and commit it as a record: compile picks it
    if nothing tuned beats it, and the search starts from it. Returns its time in seconds, None when
    the task has no hand schedule."""
    sch = hand_schedule(task.dispatched[0])
    if sch is None:
        return None
    func = task.dispatched[0]["main"]
    lib = build(sch.mod, target, None)
    info = ms.arg_info.ArgInfo.from_prim_func(func)
    dev = device(target)
    args = safe_args(dev, [a.as_json() for a in info], 1)[0]
    ev = lib.time_evaluator(lib.entry_name, dev, number=EVALUATOR.number, repeat=EVALUATOR.repeat,
                            min_repeat_ms=EVALUATOR.min_repeat_ms)
    secs = [float(t) for t in ev(*args).results]
    db.commit_tuning_record(ms.database.TuningRecord(
        sch.trace, db.commit_workload(task.dispatched[0]), secs, target, info))
    return float(np.mean(secs))


def default_schedule(func: tvm.tirx.PrimFunc, target: tvm.target.Target) -> tvm.tirx.PrimFunc | None:
    """MetaSchedule's first design-space sample for ``func``, post-processed and never measured: what a
    function no record covers runs with (parallel, vectorized, tiled), so a build never fails for want
    of tuning. None where MetaSchedule cannot schedule it."""
    mod = tvm.IRModule({"main": func})
    try:
        ctx = ms.TuneContext(mod=mod, target=target, space_generator="post-order-apply",
                             search_strategy="evolutionary", rand_state=0, num_threads=1)
        sch = ctx.space_generator.generate_design_space(mod)[0]
        if not all(p.apply(sch) for p in ctx.space_generator.postprocs):
            return None
        return mark_scheduled(sch.mod["main"])
    except Exception:  # noqa: BLE001  (any failure: the function stays as it is)
        return None


def apply_default_schedules(mod: tvm.IRModule, target: tvm.target.Target, names: list[str]) -> tvm.IRModule:
    """``default_schedule`` for each function of ``mod`` named in ``names``."""
    for gv in [gv for gv in mod.functions if gv.name_hint in names]:
        scheduled = default_schedule(mod[gv], target)
        if scheduled is not None:
            mod[gv] = scheduled
    return mod


def tune(mod: tvm.IRModule, target: tvm.target.Target, work_dir: str | Path, trials,
         log=print) -> ms.database.Database:
    """Tune every task of ``mod`` to ``trials`` measured candidates each (an int, or a function of the
    task, see ``budget``); returns the database."""
    per_task = trials if callable(trials) else (lambda _task, n=trials: n)
    if not callable(trials) and trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    os.environ.setdefault("TVM_NUM_THREADS", str(target.attrs.get("num-cores", 1)))
    work_dir = Path(work_dir)
    tasks = extract(mod, target)
    with exclusive(work_dir):  # MetaSchedule numbers workloads by line: one writer at a time
        return _tune_locked(tasks, target, work_dir, per_task, log)


def _tune_locked(tasks: list, target: tvm.target.Target, work_dir: Path, per_task, log) -> ms.database.Database:
    db = open_database(work_dir, target)
    total_w = sum(t.weight for t in tasks)
    log(f"tuning {len(tasks)} tasks ({total_w} calls) into {work_dir}: "
        f"{sum(per_task(t) for t in tasks)} trials in all")
    builder, runner = local_builder(max_workers=1), local_runner()
    t0 = time.time()
    progress = Progress(work_dir)
    # trials still to run, for the ETA: the time per trial so far times the trials left
    left = sum(max(0, per_task(t) - progress.get(t)) for t in tasks)
    done = 0
    for i, task in enumerate(tasks, 1):
        trials = per_task(task)
        have = progress.get(task)
        hand = hand_schedule_name(task.dispatched[0])
        if hand is not None and not progress.seeded(task, hand):
            secs = seed_hand_schedules(task, db, target)
            progress.mark_seeded(task, hand)
            if secs is not None:
                log(f"[{i}/{len(tasks)}] {task.task_name}: {hand} hand schedule {secs * 1e6:.1f} us")
        if have >= trials:
            log(f"[{i}/{len(tasks)}] {task.task_name}: {have} trials already in the database, skipped")
            continue
        log(f"[{i}/{len(tasks)}] {task.task_name} (x{task.weight}): tuning {trials - have} trials")
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            [task], str(work_dir / "logs"), num_threads=1)
        _quiet_console()
        ms.tune.tune_tasks(
            tasks=contexts, task_weights=weights, work_dir=str(work_dir / "logs"),
            max_trials_global=trials - have, max_trials_per_task=trials - have,
            num_trials_per_iter=min(64, max(4, trials - have)),
            builder=builder, runner=runner, database=db, task_scheduler="round-robin",
        )
        progress.add(task, trials - have)
        best = db.get_top_k(db.commit_workload(task.dispatched[0]), 1)
        cost = f"{np.mean([float(c) for c in best[0].run_secs]) * 1e6:.1f} us" if best else "no valid"
        done += trials - have
        took = time.time() - t0
        log(f"[{i}/{len(tasks)}] done, best {cost}, {took:.0f} s elapsed, ETA {took / done * (left - done):.0f} s")
    return db


def database(target: tvm.target.Target, work_dir: str | Path | None = None) -> ms.database.Database | None:
    """The graph records for ``target``: ``work_dir``'s and the shipped ones for its CPU
    (``<root>/<mcpu>/graph/``), the fastest of them answering; for a function none of them has, the
    nearest CPU's in instruction sets (warned once where this CPU has no graph records at all).
    Kernel records (``<root>/<mcpu>/``) are the kernel library's, not read here."""
    roots = ([Path(work_dir)] if work_dir else []) + [records.shipped_root()]
    _, own = records.lookup_dirs(roots, target, records.GRAPH)
    other, foreign = records.lookup_dirs(roots, target, records.GRAPH, foreign=True)
    if foreign and not own:
        records.warn_foreign(target, other, "graph-function")
    tiers = [union([open_database(d, target) for d in dirs]) for dirs in (own, foreign) if dirs]
    if not tiers:
        return None
    return tiers[0] if len(tiers) == 1 else ms.database.OrderedUnionDatabase(*tiers)


def union(databases: list[ms.database.Database]) -> ms.database.Database:
    """Records of one CPU: the fastest answers."""
    return databases[0] if len(databases) == 1 else ms.database.UnionDatabase(*databases)
