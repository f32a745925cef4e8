"""The sparse design space: records are applied by their knobs, so they outlive schedule changes."""

from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import s_tir

from tests.kernels.util import build, run
from tvm_sparse.format import bsr4x1
from tvm_sparse.kernels.sparse_int8 import padded_m, sparse_int8
from tvm_sparse.kinds import KernelKey, get
from tvm_sparse.schedule import sparse as S

KEY = KernelKey("sparse_int8", 32, 64, 48, 80)
# a record's trace from before the 32-token intrinsic: a sampled 2-vector tile, 16-token tensorize
OLD_TRACE = Path(__file__).parent / "data" / "trace_16_token_tiles.json"


@pytest.mark.parametrize("sketch", S.SKETCHES)
@pytest.mark.parametrize("unroll", S.UNROLLS)
def test_knobs_round_trip(sketch, unroll):
    sch = s_tir.Schedule(get(KEY.kind).canonical(KEY)[0])
    sketch(sch, {"unroll": unroll})
    assert S.knobs_of(sch.trace) == {"sketch": sketch.__name__, "unroll": unroll}


def test_knobs_of_a_trace_from_the_old_design_space(target):
    sch = s_tir.Schedule(get(KEY.kind).canonical(KEY)[0])
    s_tir.schedule.Trace.apply_json_to_schedule(tvm.ir.load_json(OLD_TRACE.read_text()), sch)
    assert "tvm_sparse_vnni_4x16x4" in str(sch.trace)
    knobs = S.knobs_of(sch.trace)
    assert knobs == {"sketch": "rows_outer", "unroll": 16}
    # and today's schedule, built from them, is exact
    m, k, n = KEY.m, KEY.k, KEY.n
    rng = np.random.default_rng(0)
    w = bsr4x1.prune(rng.integers(-127, 128, (n, k), dtype=np.int8), 0.8)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    p = bsr4x1.pack(w)
    lib = build(sparse_int8(m, k, n), getattr(S, knobs["sketch"]), knobs, target)
    out = run(lib, x, p.indptr, p.indices, p.values, np.zeros((m, n), np.int32))
    assert np.array_equal(out, x.astype(np.int32) @ w.astype(np.int32).T)


def test_token_tile():
    assert [S.token_tile(padded_m(m)) for m in (128, 384, 48, 16, 1)] == [32, 32, 16, 16, 16]
