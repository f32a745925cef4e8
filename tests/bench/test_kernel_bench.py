"""bench-kernel's own checks: every kernel it times is exact, the chain layout included."""

from tvm_sparse.bench.kernel import bench_kernel
from tvm_sparse.target import resolve


def test_bench_kernel_reports_the_chain_layout_exactly(tmp_path):
    # bert-mini's shape: the shipped records cover it, so nothing is tuned here
    r = bench_kernel(128, 256, 256, 0.9, resolve("host", 1), db_root=str(tmp_path), log=lambda *_: None)
    assert r.exact and r.exact_mk and r.dense_exact
    # whole 64-token tiles: the swizzled hand-over a chain uses, checked against numpy
    assert r.exact_chain is True
    assert r.sparse_int8_chain_us > 0 and 0 < r.vnni_peak_fraction_chain
