"""Graph tuning bookkeeping: the per-task budget."""

from __future__ import annotations

import tvm

from tvm_sparse.schedule.hand import apply_hand_schedules, hand_schedule_name
from tvm_sparse.tune import graph as tune


def test_budget_gives_reductions_more_trials():
    class Task:
        def __init__(self, name, func):
            self.task_name, self.dispatched = name, [tvm.IRModule({"main": func})]

    from tvm import te

    x = te.placeholder((4, 8), name="x")
    k = te.reduce_axis((0, 8), name="k")
    red = te.compute((4,), lambda i: te.sum(x[i, k], axis=k), name="red")
    inj = te.compute((4, 8), lambda i, j: x[i, j] * 2.0, name="inj")
    f_red, f_inj = te.create_prim_func([x, red]), te.create_prim_func([x, inj])
    per_task = tune.budget(48, 8)
    assert per_task(Task("fused_softmax_where", f_inj)) == 48  # by name
    assert per_task(Task("fused_reshape_add", f_red)) == 48  # by its reduction block
    assert per_task(Task("fused_reshape_add", f_inj)) == 8


def test_softmax_hand_schedule_is_seeded_as_a_record(tmp_path, target):
    from tests.schedule.test_softmax import _guarded_softmax

    class Task:
        def __init__(self, func):
            self.task_name, self.dispatched = "fused_fast_softmax_where", [tvm.IRModule({"main": func})]

    db = tune.open_database(tmp_path, target)
    task = Task(_guarded_softmax((1, 2, 16, 32)))
    secs = tune.seed_hand_schedules(task, db, target)
    best = db.get_top_k(db.commit_workload(task.dispatched[0]), 1)
    assert secs is not None and secs > 0 and len(best) == 1
    replayed = tvm.s_tir.Schedule(task.dispatched[0])
    best[0].trace.apply_to_schedule(replayed, remove_postproc=False)  # the record replays
    assert "T.parallel" in replayed.mod.script()


def test_attention_matmul_hand_schedule_is_seeded_and_applied(tmp_path, target):
    """Seeded as a record like the softmax's; and at compile, a matmul of a shape nothing was tuned
    for (another batch size) gets the hand schedule instead of staying unscheduled."""
    from tests.schedule.test_matmul import _attention_matmul

    func = _attention_matmul(2, 2, 16, 32, 16, mask=True)

    class Task:
        task_name, dispatched = "fused_matmul_add", [tvm.IRModule({"main": func})]

    assert hand_schedule_name(Task.dispatched[0]) == "matmul"
    db = tune.open_database(tmp_path, target)
    assert tune.seed_hand_schedules(Task, db, target) > 0
    assert len(db.get_top_k(db.commit_workload(Task.dispatched[0]), 1)) == 1
    applied = apply_hand_schedules(tvm.IRModule({"mm": func}))["mm"]
    assert applied.attrs["tirx.is_scheduled"] and "T.parallel" in applied.script()


def test_a_damaged_graph_database_is_repaired_not_fatal(tmp_path, target):
    """A truncated line (an interrupted write) used to make every later compile die with 'Unexpected
    EOF', naming no file. Now it is moved aside, named, and the good records keep working."""
    import pytest

    from tests.schedule.test_softmax import _guarded_softmax
    from tvm_sparse.tune.database import RECORDS, RecordWarning

    class Task:
        task_name, dispatched = "fused_fast_softmax_where", [tvm.IRModule({"main": _guarded_softmax((1, 2, 16, 32))})]

    db = tune.open_database(tmp_path, target)
    tune.seed_hand_schedules(Task, db, target)
    with (tmp_path / RECORDS).open("a") as f:
        f.write('[0, [[["sch.get_sblock", "trunc\n')
    with pytest.warns(RecordWarning, match=f"{tmp_path}.*not JSON"):
        again = tune.open_database(tmp_path, target)
    assert len(again.get_top_k(again.commit_workload(Task.dispatched[0]), 5)) == 1
    assert "trunc" in (tmp_path / (RECORDS + ".rejected")).read_text()


def test_tune_command_tunes_the_kernels_its_graph_uses(tiny_pruned, tmp_path):
    """'tvm-sparse tune --kernel-trials N' records every kernel the graph's swap asks for, in the
    work dir's folder for this CPU, where compile looks first."""
    from tvm_sparse.cli import main
    from tvm_sparse.kinds import get
    from tvm_sparse.target import mcpu_of, resolve
    from tvm_sparse.tune.apply import requested_kernels
    from tvm_sparse.tune.tuner import db_path, measured

    from .conftest import SEQ

    work = tmp_path / "work"
    assert main(["tune", str(tiny_pruned), "--seq-len", str(SEQ), "--kernel-trials", "1", "--trials", "0",
                 "--work-dir", str(work)]) == 0
    target = resolve()
    assert (work / mcpu_of(target) / "database_workload.json").is_file()
    from tvm_sparse.graph import calibrate, importer
    from tvm_sparse.graph import swap as rewrite

    static = importer.static_model(tiny_pruned, 1, SEQ)
    calib = calibrate.calibrate(static, calibrate.random_samples(static, 1, SEQ))
    mod, _ = importer.to_relax(static, 1, SEQ)
    with requested_kernels() as keys:
        rewrite.swap_linears(mod, "int8", target, calib=calib, names=rewrite.names_from_onnx(static))
    db = tune.open_database(db_path(work, target), target)
    assert keys and all(measured(db, tvm.IRModule({"main": get(k.kind).canonical(k)[0]})) >= 1 for k in set(keys))


def test_graph_tuning_holds_its_database_lock(tmp_path, target, monkeypatch):
    """Two compiles sharing a --work-dir interleaved their appends (MetaSchedule numbers workloads by
    line) and broke the database for good: graph tuning writes only while holding the folder's lock."""
    import fcntl

    held = []

    def fake_locked(tasks, target_, work_dir, per_task, log):
        with open(work_dir / ".lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
            except BlockingIOError:
                held.append(True)  # another holder: the tuner itself
        return None

    monkeypatch.setattr(tune, "extract", lambda mod, target_: [])
    monkeypatch.setattr(tune, "_tune_locked", fake_locked)
    tune.tune(tvm.IRModule(), target, tmp_path / "graph", 1)
    assert held == [True]
