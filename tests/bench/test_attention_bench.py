"""bench/attention.py: both paths built from one input, compared bit for bit and against fp32, then timed.
It proves nothing about speed (the benchmark prints that); it checks the benchmark measures what it says."""

from __future__ import annotations

import pytest

from tvm_sparse.kernels.amx import FEATURES
from tvm_sparse.runtime import cpu

pytestmark = pytest.mark.skipif(bool(cpu.missing(list(FEATURES))),
                                reason="this CPU has no AMX (amx_tile, amx_int8 in /proc/cpuinfo)")


@pytest.mark.parametrize("layout", ["rows", "t", "u8"])
def test_attention_bench_compares_identical_outputs(layout):
    from tvm_sparse.bench import attention
    from tvm_sparse.runtime.amx import request_permission
    from tvm_sparse.target import resolve

    request_permission()
    row = attention.bench_one(64, 2, 64, layout, resolve(), rounds=1)
    assert row["identical"] and row["min_cosine_to_fp32"] > 0.99
    assert set(row["us"]) == {"vnni", "amx"} and all(v > 0 for v in row["us"].values())
    assert row["amx_speedup"] == pytest.approx(row["us"]["vnni"] / row["us"]["amx"])


def test_attention_bench_refuses_a_shape_without_an_amx_path():
    from tvm_sparse.bench import attention
    from tvm_sparse.target import resolve

    with pytest.raises(ValueError, match="does not take"):
        attention.bench_one(64, 2, 128, "rows", resolve())
