import numpy as np
import pytest
import tvm

from tvm_sparse.kernels.attention_int8 import attention_int8, reference
from tvm_sparse.target import codegen_target


def _run(batch, seq, heads, dim, mask, scale, target, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((batch * seq, heads * dim)).astype(np.float32) * 2 for _ in range(3))
    lib = tvm.tirx.build(attention_int8(batch, seq, heads, dim, scale, mask.shape), target=codegen_target(target))
    args = [tvm.runtime.tensor(a) for a in [q, k, v, mask, np.zeros_like(q)]]
    lib(*args)
    return args[-1].numpy(), reference(q, k, v, mask, heads, scale), lib


@pytest.mark.parametrize("batch,mask_batch,mask_rows", [(1, 1, 32), (2, 2, 1), (2, 1, 32)])
def test_int8_attention_close_to_fp32(batch, mask_batch, mask_rows, target):
    seq, heads, dim = 32, 3, 32
    mask = np.zeros((mask_batch, 1, mask_rows, seq), np.float32)
    mask[..., seq * 3 // 4:] = np.finfo(np.float32).min  # the exporter's additive padding mask
    got, ref, lib = _run(batch, seq, heads, dim, mask, 1 / np.sqrt(dim), target)
    cos = (got * ref).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.995 and np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
    asm = lib.inspect_source("asm")
    assert "vpdpbusd" in asm and "expf" not in asm  # VNNI matmuls; exp as a vector polynomial


def test_fully_masked_row_is_uniform_like_fp32(target):
    mask = np.zeros((1, 1, 16, 16), np.float32)
    mask[0, 0, 5] = np.finfo(np.float32).min  # row 5 masked everywhere: uniform weights, no NaN
    got, ref, _ = _run(1, 16, 2, 16, mask, 0.25, target)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[5], ref[5], atol=0.05 * np.abs(ref[5]).max())


def test_unsupported_shapes_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        attention_int8(1, 30, 2, 32, 1.0, (1, 1, 30, 30))
    with pytest.raises(ValueError, match="broadcast"):
        attention_int8(2, 32, 2, 32, 1.0, (3, 1, 32, 32))


def test_qkv_columns_of_one_tensor_read_in_place(target):
    """The fused QKV projection's [B*L, 3*H*D] output, passed as all three arguments."""
    seq, heads, dim = 32, 2, 16
    rng = np.random.default_rng(3)
    qkv = rng.standard_normal((seq, 3 * heads * dim)).astype(np.float32)
    mask = np.zeros((1, 1, seq, seq), np.float32)
    hd = heads * dim
    func = attention_int8(1, seq, heads, dim, 0.25, mask.shape, width=3 * hd, offsets=(0, hd, 2 * hd))
    lib = tvm.tirx.build(func, target=codegen_target(target))
    t = tvm.runtime.tensor(qkv)
    out = tvm.runtime.tensor(np.zeros((seq, hd), np.float32))
    lib(t, t, t, tvm.runtime.tensor(mask), out)
    ref = reference(qkv[:, :hd], qkv[:, hd:2 * hd], qkv[:, 2 * hd:], mask, heads, 0.25)
    assert np.abs(out.numpy() - ref).max() < 0.05 * np.abs(ref).max()


@pytest.mark.parametrize("seq", [128, 48])  # 48: a V word transpose of 12 words a channel
def test_transposed_qkv_is_the_same_computation(seq, target):
    """[3*H*D, L] in (a sparse QKV projection's natural output) gives the row-major result exactly:
    only the packing differs."""
    heads, dim = 2, 64
    hd = heads * dim
    rng = np.random.default_rng(seq)
    qkv = (rng.standard_normal((seq, 3 * hd)) * 2).astype(np.float32)
    mask = np.zeros((1, 1, 1, seq), np.float32)
    mask[..., seq - 5:] = np.finfo(np.float32).min
    outs = []
    for transposed in (False, True):
        func = attention_int8(1, seq, heads, dim, 0.125, mask.shape, width=3 * hd, offsets=(0, hd, 2 * hd),
                              transposed=transposed)
        t = tvm.runtime.tensor(np.ascontiguousarray(qkv.T) if transposed else qkv)
        out = tvm.runtime.tensor(np.zeros((seq, hd), np.float32))
        tvm.tirx.build(func, target=codegen_target(target))(t, t, t, tvm.runtime.tensor(mask), out)
        outs.append(out.numpy())
    np.testing.assert_array_equal(outs[1], outs[0])
    ref = reference(qkv[:, :hd], qkv[:, hd:2 * hd], qkv[:, 2 * hd:], mask, heads, 0.125)
    cos = (outs[1] * ref).sum(-1) / np.linalg.norm(outs[1], axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.99


@pytest.mark.parametrize("transposed", [True, False])
def test_prequantized_qkv_is_the_same_computation(transposed, target):
    """u8 Q, K, V (zero point 128) with per-head scales, as a QKV projection with calibrated output
    scales writes them ([width, tokens] from a sparse one, [tokens, width] from a dense one): given the
    scales the dynamic path picks itself, the same result, bit for bit (only the maxima and quantize
    passes are skipped)."""
    seq, heads, dim = 64, 2, 32
    hd = heads * dim
    rng = np.random.default_rng(5)
    qkv = (rng.standard_normal((3 * hd, seq)) * 2).astype(np.float32)
    mask = np.zeros((1, 1, 1, seq), np.float32)
    mask[..., seq - 9:] = np.finfo(np.float32).min
    heads_view = qkv.reshape(3, heads, dim, seq)
    scales = (np.abs(heads_view).max(axis=(2, 3)) / np.float32(127)).astype(np.float32)  # [3, heads]
    u8 = (np.round(heads_view * (np.float32(1) / scales)[:, :, None, None]) + 128).astype(np.uint8)
    u8 = u8.reshape(3 * hd, seq)
    if not transposed:
        qkv, u8 = np.ascontiguousarray(qkv.T), np.ascontiguousarray(u8.T)
    kw = dict(width=3 * hd, offsets=(0, hd, 2 * hd), transposed=transposed)
    outs = []
    for prequantized, data in ((False, qkv), (True, u8)):
        func = attention_int8(1, seq, heads, dim, 0.125, mask.shape, prequantized=prequantized, **kw)
        t = tvm.runtime.tensor(data)
        args = [t, t, t] + ([tvm.runtime.tensor(scales)] if prequantized else []) + [tvm.runtime.tensor(mask)]
        out = tvm.runtime.tensor(np.zeros((seq, hd), np.float32))
        tvm.tirx.build(func, target=codegen_target(target))(*args, out)
        outs.append(out.numpy())
    np.testing.assert_array_equal(outs[1], outs[0])
    assert np.abs(outs[0]).max() > 0.1  # a real output, not zeros on both sides


def _has_amx() -> bool:
    from tvm_sparse.kernels.amx import FEATURES
    from tvm_sparse.runtime import cpu

    return not cpu.missing(list(FEATURES))


@pytest.mark.skipif(not _has_amx(), reason="this CPU has no AMX (amx_tile, amx_int8 in /proc/cpuinfo)")
@pytest.mark.parametrize("seq,heads,dim,layout", [(128, 2, 64, "u8"), (48, 2, 64, "t"), (32, 3, 32, "rows"),
                                                  (64, 2, 16, "t"), (64, 2, 32, "u8rows")])
def test_amx_attention_is_the_vnni_kernel_bit_for_bit(seq, heads, dim, layout):
    """Both matmuls on AMX tiles (the same packed K and V as B tiles, the same arithmetic around them):
    the VNNI kernel's output exactly, for every input layout, and tdpbusd in the assembly."""
    from tvm_sparse.runtime.amx import request_permission
    from tvm_sparse.target import resolve

    request_permission()
    target = codegen_target(resolve())
    hd = heads * dim
    rng = np.random.default_rng(seq + dim)
    qkv = (rng.standard_normal((seq, 3 * hd)) * 2).astype(np.float32)
    mask = np.zeros((1, 1, 1, seq), np.float32)
    mask[..., seq - 5:] = np.finfo(np.float32).min
    transposed = layout in ("t", "u8")
    data, extra = np.ascontiguousarray(qkv.T), []
    if layout.startswith("u8"):
        per_head = data.reshape(3, heads, dim, seq)
        scales = (np.abs(per_head).max(axis=(2, 3)) / np.float32(127)).astype(np.float32)
        data = (np.round(per_head * (np.float32(1) / scales)[:, :, None, None]) + 128).astype(np.uint8)
        data, extra = data.reshape(3 * hd, seq), [tvm.runtime.tensor(scales)]
    if not transposed:
        data = np.ascontiguousarray(data.T)
    outs = []
    for amx in (False, True):
        func = attention_int8(1, seq, heads, dim, 0.125, mask.shape, width=3 * hd, offsets=(0, hd, 2 * hd),
                              transposed=transposed, prequantized=layout.startswith("u8"), amx=amx)
        lib = tvm.tirx.build(func, target=target)
        t = tvm.runtime.tensor(data)
        out = tvm.runtime.tensor(np.zeros((seq, hd), np.float32))
        lib(t, t, t, *extra, tvm.runtime.tensor(mask), out)
        outs.append(out.numpy())
    np.testing.assert_array_equal(outs[1], outs[0])
    assert "tdpbusd" in lib.inspect_source("asm")
    ref = reference(qkv[:, :hd], qkv[:, hd:2 * hd], qkv[:, 2 * hd:], mask, heads, 0.125)
    cos = (outs[1] * ref).sum(-1) / np.linalg.norm(outs[1], axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.99


def test_amx_attention_refuses_a_head_wider_than_a_tile_row():
    with pytest.raises(ValueError, match="head_dim <= 64"):
        attention_int8(1, 32, 2, 128, 1.0, (1, 1, 1, 32), amx=True)
