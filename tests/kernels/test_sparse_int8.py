import re

import numpy as np
import pytest
import tvm

from tests.kernels.util import build, run
from tvm_sparse.format import bsr4x1
from tvm_sparse.kernels.epilogue import Epilogue
from tvm_sparse.kernels.intrin import swizzled_position
from tvm_sparse.kernels.sparse_int8 import padded_m, sparse_int8
from tvm_sparse.schedule.sparse import rows_outer, token_tile, tokens_outer


def _case(m, k, n, sparsity, seed=0):
    rng = np.random.default_rng(seed)
    w = bsr4x1.prune(rng.integers(-128, 128, (n, k), dtype=np.int8), sparsity)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    return x, w, x.astype(np.int32) @ w.astype(np.int32).T


def _transposed(x):
    m, k = x.shape
    xt = np.zeros((k, padded_m(m)), np.uint8)
    xt[:, :m] = x.T
    return xt


@pytest.mark.parametrize("m,k,n,sparsity", [
    (128, 256, 256, 0.9), (128, 768, 768, 0.7), (16, 64, 64, 0.0), (1, 64, 32, 0.5),
    (37, 96, 64, 0.8), (100, 128, 40, 0.99), (200, 64, 20, 0.9), (64, 33, 18, 0.6),
])
@pytest.mark.parametrize("sketch", [rows_outer, tokens_outer])
def test_exact_int32(m, k, n, sparsity, sketch, target):
    x, w, ref = _case(m, k, n, sparsity)
    p = bsr4x1.pack(w)
    lib = build(sparse_int8(m, k, n), sketch, {"unroll": 16}, target)
    assert np.array_equal(run(lib, x, p.indptr, p.indices, p.values, np.zeros((m, n), np.int32)), ref)


@pytest.mark.parametrize("m", [128, 48])
@pytest.mark.parametrize("sketch", [rows_outer, tokens_outer])
def test_exact_transposed_layout_both_token_tiles(m, sketch, target):
    """32-token tiles (128 tokens) and 16-token ones (48: 32 does not divide it)."""
    k, n = 192, 96
    assert token_tile(padded_m(m)) == (32 if m == 128 else 16)
    x, w, ref = _case(m, k, n, 0.85, seed=m)
    p = bsr4x1.pack(w)
    lib = build(sparse_int8(m, k, n, transposed=True), sketch, {"unroll": 64}, target)
    out = run(lib, _transposed(x), p.indptr, p.indices, p.values, np.zeros((n, m), np.int32))
    assert np.array_equal(out.T, ref)


@pytest.mark.parametrize("m", [128, 37])
@pytest.mark.parametrize("x_t,y_t", [(False, True), (True, False)])
def test_exact_mixed_layouts(m, x_t, y_t, target):
    """The two halves of a chain: row-major in and [N, mp] out, [K, mp] in and row-major out."""
    k, n = 96, 64
    x, w, ref = _case(m, k, n, 0.8, seed=m)
    p = bsr4x1.pack(w)
    lib = build(sparse_int8(m, k, n, x_transposed=x_t, y_transposed=y_t), rows_outer,
                {"unroll": 16}, target)
    y = np.zeros((n, padded_m(m)) if y_t else (m, n), np.int32)
    out = run(lib, _transposed(x) if x_t else x, p.indptr, p.indices, p.values, y)
    assert np.array_equal(out[:, :m].T if y_t else out, ref)


def test_empty_and_fully_dense_block_rows(target):
    m, k, n = 48, 64, 16
    x, w, _ = _case(m, k, n, 0.0)
    w[0:4] = 0  # an empty block row
    w[8:12, ::3] = 0  # a partial one; rows 4-7 and 12-15 stay fully dense
    ref = x.astype(np.int32) @ w.astype(np.int32).T
    p = bsr4x1.pack(w)
    assert p.indptr[1] == 0
    lib = build(sparse_int8(m, k, n), rows_outer, {"unroll": 0}, target)
    assert np.array_equal(run(lib, x, p.indptr, p.indices, p.values, np.zeros((m, n), np.int32)), ref)


def test_results_are_wrong_without_narrowing(target):
    """The static tile bound alone runs rows into their neighbours' tiles: narrowing is required."""
    m, k, n = 32, 64, 32
    x, w, ref = _case(m, k, n, 0.5)
    p = bsr4x1.pack(w)
    # pad the tile arrays so the un-narrowed loop stays in bounds and computes (wrong) sums
    extra = 16 * (k // 4)
    idx = np.concatenate([p.indices, np.zeros((extra, 4), np.int32)])
    val = np.concatenate([p.values, np.ones((extra, 4, 4), np.int8)])
    lib = build(sparse_int8(m, k, n), rows_outer, {"unroll": 0}, target, narrow=False)
    assert not np.array_equal(run(lib, x, p.indptr, idx, val, np.zeros((m, n), np.int32)), ref)


def _erf(v):
    # numpy has no erf: Abramowitz-Stegun 7.1.26 is 1.5e-7 accurate, far inside the tolerance
    t = 1.0 / (1.0 + 0.3275911 * np.abs(v))
    poly = (((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592
    y = 1.0 - poly * t * np.exp(-v * v)
    return np.sign(v) * y


@pytest.mark.parametrize("epilogue", [Epilogue.FP32, Epilogue.GELU, Epilogue.U8, Epilogue.GELU_U8])
def test_fused_epilogues(epilogue, target):
    m, k, n = 40, 128, 64
    rng = np.random.default_rng(1)
    x, w, acc = _case(m, k, n, 0.8)
    zp, sx = 7, 0.02
    sw = rng.uniform(0.001, 0.01, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    scale = (sx * sw).astype(np.float32)
    corr = (zp * w.astype(np.int32).sum(axis=1)).astype(np.int32)
    ref = (acc - corr).astype(np.float32) * scale + bias  # = dequant(x - zp) @ dequant(w)^T + bias
    if epilogue.has_gelu:
        ref = 0.5 * ref * (1 + _erf(ref / np.sqrt(2)))
    args = [scale, corr, bias]
    if epilogue.requantizes:
        s_out, zp_out = 0.05, 10
        qout = np.array([1 / s_out, zp_out], np.float32)
        ref = np.clip(np.round(ref / s_out) + zp_out, 0, 255)
        args.append(qout)
    p = bsr4x1.pack(w)
    lib = build(sparse_int8(m, k, n, epilogue), rows_outer, {"unroll": 16}, target)
    out = run(lib, x, p.indptr, p.indices, p.values, *args, np.zeros((m, n), epilogue.out_dtype))
    if epilogue.requantizes:
        assert np.abs(out.astype(np.int32) - ref).max() <= 1  # rounding at exact .5 ties may differ
    else:
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def test_vpdpbusd_in_assembly(target):
    lib = build(sparse_int8(128, 256, 256, transposed=True), rows_outer, {"unroll": 0}, target)
    asm = lib.inspect_source("asm")
    assert "vpdpbusd" in asm
    # the 32-token interleave: row pairs joined straight from memory, one 2-source permute a vector
    assert re.search(r"vinserti64x4\s+\$1, \(", asm) and "vpermt2b" in asm
    # silent slowdowns the notes warn about: byte-by-byte extraction, per-call heap scratch
    assert "vpextrb" not in asm
    assert "TVMBackendAllocWorkspace@GOTPCREL" not in asm


@pytest.mark.parametrize("m,swizzled", [(128, True), (64, True), (100, False), (48, False)])
def test_swizzled_tiles_where_the_kernel_transposes(m, swizzled, target):
    """Row-major input in whole 64-token tiles: the pad stage writes tokens swizzled and the VNNI
    operand is built by in-lane unpacks, with no permutes and the 1 KiB accumulator tile on the
    stack (this project's pipeline); an input already in [K, M] keeps natural order."""
    x, w, ref = _case(m, 256, 64, 0.8)
    p = bsr4x1.pack(w)
    func = sparse_int8(m, 256, 64, Epilogue.S32, x_transposed=False, y_transposed=True)
    assert bool(func.attrs.get("tvm_sparse.swizzled", False)) == swizzled
    assert not sparse_int8(m, 256, 64, transposed=True).attrs.get("tvm_sparse.swizzled", False)
    lib = build(func, rows_outer, {"unroll": 0}, target)
    out = run(lib, x, p.indptr, p.indices, p.values, np.zeros((64, padded_m(m)), np.int32))
    assert np.array_equal(out[:, :m].T, ref)
    asm = lib.inspect_source("asm")
    core = asm[asm.index("vpdpbusd") - 3000:asm.rindex("vpdpbusd")]
    if swizzled:
        assert "vpunpcklbw" in core and "vpunpckhwd" in core and "vpermt2b" not in core
        # no 1 KiB workspace request (its size is the call's third argument) per accumulator tile
        assert "$1024, %edx" not in asm


@pytest.mark.parametrize("m", [128, 120])
@pytest.mark.parametrize("sketch", [rows_outer, tokens_outer])
def test_exact_swizzled_chain_hand_over(m, sketch, target):
    """A chain's two halves with their [N, mp] hand-over in swizzled tiles: the first writes
    position p = swizzled_position(token), the second reads it so; both take the swizzled intrinsic
    (120 tokens: the padding sits inside the last tile)."""
    k, n = 128, 96
    x, w, ref = _case(m, k, n, 0.8, seed=m)
    p = bsr4x1.pack(w)
    mp = padded_m(m)
    perm = swizzled_position(np.arange(mp))
    valid = perm < m  # positions holding real tokens
    up = sparse_int8(m, k, n, x_transposed=False, y_transposed=True, y_swizzled=True)
    down = sparse_int8(m, k, n, x_transposed=True, y_transposed=False, x_swizzled=True)
    for func in (up, down):
        assert func.attrs["tvm_sparse.swizzled"]
    out = run(build(up, sketch, {"unroll": 16}, target), x, p.indptr, p.indices, p.values, np.zeros((n, mp), np.int32))
    assert np.array_equal(out[:, valid], ref.T[:, perm[valid]])
    xt = np.zeros((k, mp), np.uint8)
    xt[:, valid] = x.T[:, perm[valid]]
    lib = build(down, sketch, {"unroll": 16}, target)
    assert np.array_equal(run(lib, xt, p.indptr, p.indices, p.values, np.zeros((m, n), np.int32)), ref)
    asm = lib.inspect_source("asm")
    assert "vpunpcklbw" in asm and "vpermt2b" not in asm[asm.index("vpdpbusd") - 3000:asm.rindex("vpdpbusd")]


@pytest.mark.parametrize("kwargs", [
    {"x_swizzled": True},  # a row-major input has no token tiles to swizzle
    {"y_swizzled": True},
    {"x_transposed": True, "x_swizzled": True, "m": 100},  # 112 padded tokens: not whole 64-token tiles
])
def test_swizzled_sides_are_checked(kwargs):
    m = kwargs.pop("m", 128)
    with pytest.raises(ValueError, match="swizzled tiles need"):
        sparse_int8(m, 64, 64, **kwargs)


@pytest.mark.parametrize("m", [128, 40])
def test_input_quantization_rounds_half_to_even_and_saturates(m, target):
    """fp32 X quantized in the pad stage (one FMA onto 1.5 * 2^23, a clamp, a narrowing): exactly
    np.clip(np.round(x / s + zp), 0, 255), ties to even, out-of-range values saturated. (ONNX rounds
    x / s before adding zp: on an exact tie and an odd zp the two differ by one step.) W = I makes
    the s32 output the quantized input itself."""
    k = 64
    rng = np.random.default_rng(m)
    x = (rng.integers(-700, 700, (m, k)) / 4).astype(np.float32)  # x / 0.5 lands on .5 ties often
    x[0, :4] = [1e30, -1e30, 0.25, 0.75]  # saturation both ways, ties at 3.5 and 4.5
    zp = 3.0
    p = bsr4x1.pack(np.eye(k, dtype=np.int8))
    lib = build(sparse_int8(m, k, k, quantize_input=True), rows_outer, {"unroll": 0}, target)
    out = run(lib, x, np.array([2.0, zp], np.float32), p.indptr, p.indices, p.values, np.zeros((m, k), np.int32))
    assert np.array_equal(out, np.clip(np.round(x * 2.0 + zp), 0, 255).astype(np.int32))


@pytest.mark.parametrize("coarse", [False, True])
def test_gelu_formulas(coarse, target):
    """Both GELUs as compiled, over BERT's range and beyond: the rational erf is fp32-exact; the
    division-free polynomial (u8 epilogues only) stays within 1/20 of a u8 step (~0.02-0.05)."""
    from tvm.script import tirx as T

    from tvm_sparse.kernels.epilogue import gelu, gelu_coarse

    f = gelu_coarse if coarse else gelu
    n = 4096

    @T.prim_func
    def func(x: T.Buffer((n,), "float32"), y: T.Buffer((n,), "float32")):
        for i in T.vectorized(n):
            y[i] = f(x[i])

    x = np.linspace(-12, 12, n).astype(np.float32)
    y = run(tvm.tirx.build(func, target=target), x, np.zeros(n, np.float32))
    ref = 0.5 * x * (1 + _erf(x / np.sqrt(2)))
    assert np.abs(y - ref).max() < (1.5e-3 if coarse else 1e-5)
