"""A chain's two sparse kernels split tokens between threads the same way, whatever their records say."""

from tvm import s_tir

from tvm_sparse.kernels.epilogue import Epilogue
from tvm_sparse.kernels.sparse_int8 import sparse_int8
from tvm_sparse.schedule.sparse import in_chain, sketch_for


def _sch(**kw) -> s_tir.Schedule:
    return s_tir.Schedule(sparse_int8(128, 64, 64, Epilogue.U8 if kw.get("y_swizzled") else Epilogue.FP32, **kw))


def test_chain_kernels_take_the_token_split():
    producer = _sch(x_transposed=False, y_transposed=True, y_swizzled=True)  # FFN1: row-major in, hand-over out
    consumer = _sch(x_transposed=True, y_transposed=False, x_swizzled=True)  # FFN2: hand-over in, row-major out
    for sch in (producer, consumer):
        assert in_chain(sch) and sketch_for(sch, "rows_outer") == "tokens_outer"


def test_other_kernels_keep_their_records_sketch():
    for sch in (_sch(), _sch(x_transposed=False, y_transposed=True)):  # row-major; QKV's natural [N, M] out
        assert not in_chain(sch)
        assert sketch_for(sch, "rows_outer") == "rows_outer" and sketch_for(sch, "tokens_outer") == "tokens_outer"
