import numpy as np
import pytest
import tvm
from tvm import s_tir, te, topi

from tvm_sparse import pipeline  # noqa: F401  (registers isnan as vectorizable)
from tvm_sparse.schedule.softmax import matches, schedule_softmax


def _guarded_softmax(shape):
    """TOPI's fast softmax + the ONNX exporter's where(isnan(p), 0, p), as Relax fuses it."""
    x = te.placeholder(shape, "float32", name="x")
    p = topi.nn.fast_softmax(x, axis=-1)
    nan = te.compute(shape, lambda *i: te.isnan(p(*i)), name="compute")
    out = te.compute(shape, lambda *i: tvm.tirx.Select(nan(*i), tvm.tirx.const(0.0, "float32"), p(*i)),
                     name="T_where")
    return te.create_prim_func([x, out]).with_attr("global_symbol", "main")


@pytest.mark.parametrize("shape", [(1, 4, 32, 32), (2, 3, 128)])
def test_hand_softmax_matches_numpy_and_guards_nan(shape, target):
    func = _guarded_softmax(shape)
    assert matches(func)
    lib = tvm.tirx.build(schedule_softmax(s_tir.Schedule(func)).mod["main"], target=target)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 4
    x.reshape(-1, shape[-1])[1] = -np.inf  # a fully masked row: NaN inside, 0 out
    y = tvm.runtime.tensor(np.zeros(shape, np.float32))
    lib(tvm.runtime.tensor(x), y)
    with np.errstate(invalid="ignore"):
        e = np.exp(x - x.max(-1, keepdims=True))
        ref = np.nan_to_num(e / e.sum(-1, keepdims=True), nan=0.0)
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-6)
    assert "vdivps" in lib.inspect_source("asm")  # vectorized: no scalar loop around isnan


def test_ragged_rows_are_left_to_metaschedule():
    assert not matches(_guarded_softmax((2, 30)))


def test_single_chunk_rows_are_left_to_metaschedule():
    """16-wide rows are one rfactor chunk, which the schedule cannot reorder (seen at seq 16)."""
    assert not matches(_guarded_softmax((2, 2, 16, 16)))
