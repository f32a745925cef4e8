"""Offline tuning: candidates built here, timed by the runtime-only remote timer, committed as records."""

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import tvm

from tvm_sparse.format import bsr4x1
from tvm_sparse.kernels.sparse_int8 import padded_m, sparse_int8
from tvm_sparse.kinds import KernelKey
from tvm_sparse.tune import offline
from tvm_sparse.tune.apply import UntunedWarning, database_roots, schedule


def _tool(name: str):
    """A script of tools/ (outside the package: it runs on a machine with TVM's runtime only)."""
    path = Path(__file__).resolve().parents[2] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


xeon_remote = _tool("xeon_remote")  # the runtime-only timer, run here as it runs there
KEY = KernelKey("sparse_int8", 32, 64, 48, 80, transposed=True)


def test_candidates_cover_the_space():
    cands = offline.candidates(KEY)
    assert len(cands) == 2 * 3  # loop orders x unroll depths
    assert {(c["sketch"], c["knobs"]["unroll"]) for c in cands} == {
        (sk, u) for sk in ("rows_outer", "tokens_outer") for u in (0, 16, 64)}


def test_build_time_commit_then_apply(tmp_path, target):
    bundle = tmp_path / "bundle"
    offline.build([KEY], target, bundle / "candidates", log=lambda *_: None)
    xeon_remote.candidates(bundle, 1, tmp_path / "out")
    results = json.loads((tmp_path / "out" / "candidates.json").read_text())
    assert len(results) == 6 and all(r["run_secs"] for r in results)
    assert offline.commit(results, target, tmp_path / "db", log=lambda *_: None) == 6

    rng = np.random.default_rng(3)
    w = bsr4x1.prune(rng.integers(-127, 128, (KEY.n, KEY.k), dtype=np.int8), 0.8)
    x = rng.integers(0, 256, (KEY.k, padded_m(KEY.m)), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntunedWarning)  # the committed record must be found
        func, source = schedule(sparse_int8(KEY.m, KEY.k, KEY.n, transposed=True), KEY, target,
                                database_roots([tmp_path / "db"]))
    assert source.startswith("tuned")
    p = bsr4x1.pack(w)
    y = np.zeros((KEY.n, padded_m(KEY.m)), np.int32)
    args = [tvm.runtime.tensor(a) for a in (x, p.indptr, p.indices, p.values, y)]
    tvm.tirx.build(func, target=target)(*args)
    assert np.array_equal(args[-1].numpy(), w.astype(np.int32) @ x.astype(np.int32))
