"""The row-major u8 hand-over between int8 Linears (a dense FFN's up projection to its down projection): the
first kernel writes GELU's output quantized for the second, which reads it as is and computes exactly what
it computes from the fp32 those bytes stand for."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import s_tir

from tvm_sparse import kinds, pipeline
from tvm_sparse.format import bsr4x1
from tvm_sparse.kinds import LinearLayer
from tvm_sparse.runtime import cpu
from tvm_sparse.schedule.narrow import finalize

M, K, N = 64, 128, 96
OUT_QUANT = (0.02, 7)  # GELU's output: >= -0.17, so a small zero point


def _kinds(names, target):
    usable = []
    for name in names:
        kind = kinds.get(name)
        if kind.available(target) and not cpu.missing(sorted(kind.needs - {"avx512vnni"})):
            usable.append(kind)
    return usable


def _run(kind, layer, x, target):
    if "amx" in kind.name:
        from tvm_sparse.runtime.amx import request_permission

        request_permission()
    assert kind.supports(layer, M)
    func, consts = kind.build(layer, M)
    if kind.tuned:
        sch = s_tir.Schedule(func)
        if kind.default_schedule(sch):
            func = finalize(sch.mod["main"])
    lib = pipeline.build(tvm.IRModule({"main": func}), target)
    n = layer.weight.shape[0]
    dtype = "uint8" if layer.out_quant else "float32"
    args = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in (x, *consts, np.zeros((M, n), dtype))]
    lib["main"](*args)
    return args[-1].numpy()


@pytest.mark.parametrize("name", ["dense_int8", "dense_amx"])
def test_a_dense_kernel_writes_gelu_quantized_for_the_next(name, target):
    found = _kinds([name], target)
    if not found:
        pytest.skip(f"{name} cannot run here (no AMX)")
    rng = np.random.default_rng(1)
    w = rng.standard_normal((N, K)).astype(np.float32) * 0.1
    bias = rng.standard_normal(N).astype(np.float32) * 0.1
    layer = LinearLayer(w, bias, True, "int8", False, act_scale=0.03, act_zero_point=128, out_quant=OUT_QUANT)
    x = (rng.integers(0, 256, (M, K)).astype(np.float32) - 128) * 0.03  # exactly on the input's u8 grid
    got = _run(found[0], layer, x, target).astype(int)
    from math import erf

    wq = np.clip(np.round(w / (np.abs(w).max(1, keepdims=True) / 127)), -127, 127)
    v = x @ (wq * (np.abs(w).max(1, keepdims=True) / 127)).T + bias
    gelu = v * 0.5 * (1 + np.vectorize(erf)(v / np.sqrt(2)))
    ref = np.clip(np.round(gelu / OUT_QUANT[0]) + OUT_QUANT[1], 0, 255)
    assert np.abs(got - ref).max() <= 1 and (got == ref).mean() > 0.98


@pytest.mark.parametrize("name", ["dense_int8", "dense_amx", "sparse_int8"])
def test_a_kernel_reads_u8_rows_as_the_fp32_they_stand_for(name, target):
    found = _kinds([name], target)
    if not found:
        pytest.skip(f"{name} cannot run here (no AMX)")
    kind = found[0]
    rng = np.random.default_rng(2)
    w = rng.standard_normal((N, K)).astype(np.float32)
    if kind.sparse:
        w = bsr4x1.prune(w, 0.8)
    scale, zp = 0.05, 11
    u8 = rng.integers(0, 256, (M, K)).astype(np.uint8)
    common = dict(weight=w, bias=rng.standard_normal(N).astype(np.float32), gelu=False, precision="int8",
                  sparse=kind.sparse, act_scale=scale, act_zero_point=zp)
    from_u8 = _run(kind, LinearLayer(**common, in_u8=True), u8, target)
    from_fp32 = _run(kind, LinearLayer(**common), (u8.astype(np.float32) - zp) * np.float32(scale), target)
    np.testing.assert_array_equal(from_u8, from_fp32)


def test_u8_rows_are_for_int8_layers_only():
    w = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError, match="only int8 layers hand over u8"):
        LinearLayer(w, None, False, "fp32", True, in_u8=True)
    with pytest.raises(ValueError, match="not both"):
        LinearLayer(w, None, False, "int8", True, in_u8=True, in_transposed=True)
