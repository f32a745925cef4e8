"""Kernel records are kept per core count: a 2-thread target takes records measured with 2 threads, else
the one-core records; tuning for 2 threads does not count (or skip) what was measured on one."""

import json
import warnings

import pytest

from tvm_sparse.target import resolve
from tvm_sparse.tune import database
from tvm_sparse.tune.apply import best_record
from tvm_sparse.tune.records import cores_sub
from tvm_sparse.tune.tuner import db_path, tune

from .conftest import KEY


def _cores(rec) -> int:
    return int(rec.target.attrs.get("num-cores", 1))


@pytest.fixture(scope="module")
def both(tuned_db):
    root, first = tuned_db  # one core, 3 trials
    one, two = resolve("host", 1), resolve("host", 2)
    second = tune(KEY, two, 1, db_root=root, seed=1, quiet=True)
    return root, one, two, first, second


def test_each_core_count_tunes_into_its_own_records(both):
    root, one, two, first, second = both
    assert cores_sub(one) == "" and cores_sub(two) == "cores-2"
    assert db_path(root, two) == db_path(root, one) / "cores-2"
    # the 2-thread run started from nothing: the one-core candidates were neither counted nor skipped
    assert first.trials_before == 0 and second.trials_before == 0 and second.trials_after >= 1


def test_a_target_takes_its_own_core_count_else_one_core(both):
    root, one, two, _, _ = both
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no foreign-CPU fallback: both are this CPU's own records
        assert _cores(best_record(KEY, one, [root])) == 1
        assert _cores(best_record(KEY, two, [root])) == 2
        assert _cores(best_record(KEY, resolve("host", 3), [root])) == 1  # no 3-thread records: one core's


def test_a_record_of_another_core_count_is_set_aside(both, tmp_path):
    root, one, two, _, _ = both
    src, dst = db_path(root, one), tmp_path / db_path(root, one).parent.name / "cores-2"
    dst.mkdir(parents=True)
    for f in ("database_workload.json", "database_tuning_record.json"):  # one-core records in a 2-core folder
        (dst / f).write_text((src / f).read_text())
    with pytest.warns(database.RecordWarning, match="measured on 1 core"):
        report = database.check(dst, two)
    assert report.kept == 0
    kept = [json.loads(x) for x in (dst / "database_tuning_record.json").read_text().splitlines() if x.strip()]
    assert kept == []
