import json
import warnings

import numpy as np
import pytest
import tvm

from tvm_sparse.format import bsr4x1
from tvm_sparse.kernels.epilogue import Epilogue
from tvm_sparse.kernels.sparse_int8 import sparse_int8
from tvm_sparse.kinds import KernelKey, sparsity_bucket
from tvm_sparse.tune import database
from tvm_sparse.tune.apply import schedule
from tvm_sparse.tune.tuner import tune

KEY = KernelKey("sparse_int8", 32, 64, 64, 80)


def test_tiny_tuning_run_records_apply_and_stay_exact(tuned_db, target):
    root, first = tuned_db
    assert first.trials_before == 0 and first.trials_after >= 1 and first.best_us > 0
    # a different nonzero pattern than the one tuned on: the record still applies
    rng = np.random.default_rng(7)
    w = bsr4x1.prune(rng.integers(-128, 128, (64, 64), dtype=np.int8), 0.83)
    x = rng.integers(0, 256, (32, 64), dtype=np.uint8)
    p = bsr4x1.pack(w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UntunedWarning: the record must be found
        func, source = schedule(sparse_int8(32, 64, 64, Epilogue.S32), KEY, target, [root])
    assert source.startswith("tuned")
    lib = tvm.tirx.build(func, target=target)
    args = [tvm.runtime.tensor(a) for a in (x, p.indptr, p.indices, p.values, np.zeros((32, 64), np.int32))]
    lib(*args)
    assert np.array_equal(args[-1].numpy(), x.astype(np.int32) @ w.astype(np.int32).T)


def test_tuning_resumes_instead_of_starting_over(tuned_db, target):
    root, first = tuned_db
    again = tune(KEY, target, first.trials_after, db_root=root, quiet=True)
    assert again.trials_before == first.trials_after == again.trials_after  # nothing re-measured


def test_failed_candidates_count_toward_the_budget(tmp_path, target):
    """A candidate that failed was measured: a resume must not measure its share again (it did: valid
    records 45 -> 60 on a second '--trials 64' that printed 64/64)."""
    from tvm.s_tir import meta_schedule as ms

    from tvm_sparse.kinds import get
    from tvm_sparse.tune.tuner import db_path, measured, records_for

    first = tune(KEY, target, 2, db_root=tmp_path, seed=1, quiet=True)
    db = database.open_database(db_path(tmp_path, target), target)
    mod = tvm.IRModule({"main": get(KEY.kind).canonical(KEY)[0]})
    ok = records_for(db, mod)[0]
    db.commit_tuning_record(ms.database.TuningRecord(ok.trace, ok.workload, [1e10], target, ok.args_info))
    assert measured(db, mod) == first.trials_after + 1 and len(records_for(db, mod)) == first.trials_after
    again = tune(KEY, target, first.trials_after + 1, db_root=tmp_path, quiet=True)
    assert again.trials_before == again.trials_after == first.trials_after + 1  # nothing measured


def test_corrupt_and_foreign_records_are_reported_not_fatal(tuned_db, target, tmp_path):
    root, _ = tuned_db
    src = root / "znver4" if (root / "znver4").exists() else next(root.iterdir())
    db = tmp_path / src.name
    db.mkdir()
    for f in src.iterdir():
        if f.is_file():  # not the cores-<N> folders other tests add
            (db / f.name).write_text(f.read_text())
    records = db / database.RECORDS
    good = records.read_text().splitlines()[0]
    foreign = json.loads(good)
    foreign[1][2] = {"kind": "cuda", "arch": "sm_90"}
    other_cpu = json.loads(good)  # same kind, another CPU: its time says nothing about this one
    other_cpu[1][2]["mcpu"] = "cascadelake" if src.name != "cascadelake" else "znver4"
    with records.open("a") as f:
        f.write('{"truncated": \n')
        f.write("[99, [1, 2, 3, 4]]\n")
        f.write(json.dumps(foreign) + "\n")
        f.write(json.dumps(other_cpu) + "\n")
    with pytest.warns(database.RecordWarning):
        report = database.check(db, target)
    whys = " | ".join(report.rejected)
    assert "not JSON" in whys and "workload #99" in whys and "foreign record" in whys
    assert f"tuned for CPU {other_cpu[1][2]['mcpu']!r}, in the records of {src.name!r}" in whys
    assert report.kept >= 1
    rejected = (db / (database.RECORDS + ".rejected")).read_text().splitlines()
    assert len(rejected) == 4  # moved aside, not lost
    func, source = schedule(sparse_int8(32, 64, 64), KEY, target, [tmp_path])
    assert source.startswith("tuned")


def test_sparsity_buckets():
    assert [sparsity_bucket(s) for s in (0.0, 0.69, 0.7, 0.87, 0.899, 0.95, 0.99)] == [0, 60, 70, 80, 90, 90, 90]
