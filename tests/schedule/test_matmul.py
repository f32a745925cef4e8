import numpy as np
import pytest
import tvm
from tvm import s_tir, te, topi

from tvm_sparse.schedule.matmul import matches, schedule_matmul


def _attention_matmul(batch, heads, rows, cols, depth, mask: bool):
    """Relax's legalized matmul of [b, h, rows, depth] x [b, h, depth, cols] (+ a broadcast mask)."""
    a = te.placeholder((batch, heads, rows, depth), "float32", name="a")
    b = te.placeholder((batch, heads, depth, cols), "float32", name="b")
    k = te.reduce_axis((0, depth), name="k")
    mm = te.compute((batch, heads, rows, cols), lambda n, h, i, j: te.sum(a[n, h, i, k] * b[n, h, k, j], axis=k),
                    name="matmul")
    if not mask:
        return te.create_prim_func([a, b, mm]).with_attr("global_symbol", "main")
    m = te.placeholder((batch, 1, rows, cols), "float32", name="m")
    out = topi.add(mm, m)
    return te.create_prim_func([a, b, m, out]).with_attr("global_symbol", "main")


@pytest.mark.parametrize("batch,mask", [(1, True), (2, False), (2, True)])
def test_hand_matmul_matches_numpy_at_any_batch(batch, mask, target):
    func = _attention_matmul(batch, 3, 32, 48, 40, mask)
    assert matches(func)
    lib = tvm.tirx.build(schedule_matmul(s_tir.Schedule(func)).mod["main"], target=target)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((batch, 3, 32, 40)).astype(np.float32)
    b = rng.standard_normal((batch, 3, 40, 48)).astype(np.float32)
    m = rng.standard_normal((batch, 1, 32, 48)).astype(np.float32)
    ref = a @ b + (m if mask else 0)
    args = [a, b, *([m] if mask else []), np.zeros(ref.shape, np.float32)]
    args = [tvm.runtime.tensor(x) for x in args]
    lib(*args)
    np.testing.assert_allclose(args[-1].numpy(), ref, rtol=1e-5, atol=1e-4)
    asm = lib.inspect_source("asm")
    assert "vfmadd" in asm and "zmm" in asm  # 16-lane FMAs


def test_unfit_shapes_are_left_to_metaschedule():
    assert not matches(_attention_matmul(1, 2, 30, 48, 8, False))  # rows not a multiple of 8
    assert not matches(_attention_matmul(1, 2, 32, 40, 8, False))  # columns not a multiple of 16
