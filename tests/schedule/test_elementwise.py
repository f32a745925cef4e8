import numpy as np
import tvm
from tvm import s_tir, te, topi

from tvm_sparse.schedule.elementwise import matches, schedule_elementwise


def _add_reshape():
    """The embedding sum the norm fusion leaves behind: an add, then a reshape of its result."""
    a = te.placeholder((1, 32, 64), "float32", name="a")
    b = te.placeholder((1, 32, 64), "float32", name="b")
    out = topi.reshape(topi.add(a, b), (32, 64))
    return te.create_prim_func([a, b, out]).with_attr("global_symbol", "main")


def test_elementwise_is_vectorized_and_exact(target):
    func = _add_reshape()
    assert matches(func)
    sch = schedule_elementwise(s_tir.Schedule(func))
    assert "T.vectorized" in sch.mod["main"].script() and "T.parallel" in sch.mod["main"].script()
    lib = tvm.tirx.build(sch.mod["main"], target=target)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((1, 32, 64)).astype(np.float32) for _ in range(2))
    out = tvm.runtime.tensor(np.zeros((32, 64), np.float32))
    lib(tvm.runtime.tensor(a), tvm.runtime.tensor(b), out)
    np.testing.assert_array_equal(out.numpy(), (a + b).reshape(32, 64))


def test_reductions_and_pure_reshapes_are_not_elementwise():
    x = te.placeholder((8, 64), "float32", name="x")
    total = te.create_prim_func([x, topi.sum(x, axis=1)]).with_attr("global_symbol", "main")
    view = te.create_prim_func([x, topi.reshape(x, (4, 128))]).with_attr("global_symbol", "main")
    ragged = te.placeholder((3, 5), "float32", name="r")
    odd = te.create_prim_func([ragged, topi.add(ragged, ragged)]).with_attr("global_symbol", "main")
    assert not matches(total) and not matches(view) and not matches(odd)
