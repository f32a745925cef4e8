"""Records per CPU: a target's own first, else the nearest CPU's with a warning; shipped records travel
inside the package (a wheel holds them)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tvm_sparse.target import resolve
from tvm_sparse.tune import graph as graph_tune
from tvm_sparse.tune import records

ROOT = Path(__file__).resolve().parents[2]


def _db(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / records.MARKER).write_text('["0", "x"]\n')
    (path / "database_tuning_record.json").write_text("")
    return path


def test_own_cpu_first_then_the_nearest_with_one_warning(tmp_path, recwarn):
    zen_graph = _db(tmp_path / "znver4" / "graph")
    spr_kernels = _db(tmp_path / "sapphirerapids")
    spr = resolve("sapphirerapids")
    assert records.lookup_dirs([tmp_path], spr) == ("sapphirerapids", [spr_kernels])
    assert records.lookup_dirs([tmp_path], spr, records.GRAPH) == ("sapphirerapids", [])
    assert records.lookup_dirs([tmp_path], spr, records.GRAPH, foreign=True) == ("znver4", [zen_graph])
    # a kernel-only folder is never taken for graph records, and an empty database is no database
    _db(tmp_path / "cascadelake" / "graph").joinpath(records.MARKER).write_text("")
    assert records.lookup_dirs([tmp_path], spr, records.GRAPH, foreign=True)[0] == "znver4"
    records._warned.clear()
    for _ in range(3):
        records.warn_foreign(spr, "znver4", "graph-function")
    assert len([w for w in recwarn if w.category is records.ForeignRecordsWarning]) == 1


def test_an_intel_cpu_without_records_takes_the_intel_ones():
    _, dirs = records.lookup_dirs([records.shipped_root()], resolve("emeraldrapids"), foreign=True)
    assert [d.name for d in dirs] == ["sapphirerapids"]


def test_graph_database_falls_back_where_this_cpu_has_none(tmp_path):
    target = resolve("cascadelake")  # nothing shipped for it
    with pytest.warns(records.ForeignRecordsWarning, match="graph-function records for cascadelake"):
        records._warned.clear()
        db = graph_tune.database(target, tmp_path)
    assert db is not None


@pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="needs the source tree")
def test_a_wheel_carries_the_shipped_records(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("tvm_sparse-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for cpu in ("sapphirerapids", "znver4"):
        assert f"tvm_sparse/schedules/{cpu}/database_tuning_record.json" in names
        assert f"tvm_sparse/schedules/{cpu}/graph/database_workload.json" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    code = ("from tvm_sparse.tune import records; from tvm_sparse.target import resolve; "
            "print(records.shipped_root()); print(records.lookup_dirs([records.shipped_root()], "
            "resolve('sapphirerapids'), records.GRAPH)[1])")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                         cwd=tmp_path, check=True, capture_output=True, text=True).stdout.splitlines()
    assert out[0] == str(site / "tvm_sparse" / "schedules")
    assert str(site / "tvm_sparse" / "schedules" / "sapphirerapids" / "graph") in out[1]
