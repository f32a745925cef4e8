"""Block-sparse int8 GEMM ``Y[M, N] = X[M, K] @ W^T`` as a TensorIR compute definition.

What is computed, not how: the schedule (``tvm_sparse.schedule``) decides tiling, order and the
VNNI tensorization. Stages, in order:

  pad        Xq                  input quantized (if fp32) and zero-padded to whole 16-token
                                 vectors, so any M works
  transpose  XT[k, m]            tokens become the contiguous axis (the VNNI lanes)
  gather     G[r, t, j, m]       the 4 activation rows tile t of block row r needs
  spmm       acc[r, o, m]        sum over tiles of G x the tile's 4x4 weights (u8 x s8 -> s32)
  epilogue   YT[n, m]            s32 as is, or dequantized (+ bias, + GELU), or requantized to u8,
                                 vectorized over tokens while the accumulators are in registers
  untranspose Y[m, n]            row-major layout only: back to rows, 4 channels x 16 tokens at a
                                 time, stored from the epilogue while the values are in registers

The tile loop ``t`` is written with the static bound ``ceil(K/4)`` (the most tiles a block row can
hold) so the block bindings stay affine; ``schedule.narrow_tile_loops`` replaces it with the row's
real tile count before build. The number of tiles is a symbolic buffer dimension, so one compiled
schedule serves every weight of the same shape, whatever its nonzero pattern.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

from . import epilogue as ep
from .epilogue import Epilogue
from .intrin import swizzled_position
from .signature import keep_params
from .vector import pick

LANES = 16  # tokens per vpdpbusd


def padded_m(m: int) -> int:
    return -(-m // LANES) * LANES


def swizzles(m: int) -> bool:
    """Whether ``m`` tokens fill whole swizzled 64-token tiles (see ``intrin.swizzled_position``):
    the order that chained kernels (``x_swizzled`` / ``y_swizzled``) pass ``[n, mp]`` activations in."""
    return padded_m(m) % 64 == 0


def sparse_int8(
    m: int, k: int, n: int, epilogue: Epilogue = Epilogue.S32, transposed: bool = False,
    quantize_input: bool = False, x_transposed: bool | None = None, y_transposed: bool | None = None,
    x_swizzled: bool = False, y_swizzled: bool = False, swizzle: bool = True,
) -> tirx.PrimFunc:
    """The block-sparse int8 linear layer for X[m, k] and a 4x1-sparse W[n, k].

    ``quantize_input=True`` takes fp32 X and quantizes it to u8 in the transpose stage (one pass
    over the activations instead of two), with ``qin = [1 / s_x, zp_x]``.

    ``transposed=True`` is the layout that chained sparse layers keep (as the Intel engine does):
    ``XT[k, mp] -> YT[n, mp]`` with ``mp`` = m rounded up to 16, tokens contiguous, no transposes.
    ``x_transposed`` / ``y_transposed`` set the two sides apart (default: ``transposed``): a chain
    such as BERT's FFN enters row-major, passes u8 ``[n, mp]`` between its two layers, and leaves
    row-major.

    Token order. The 4x64x4 VNNI intrinsic reads a 64-token tile in one order and accumulates it in
    the other (natural <-> swizzled), which needs no cross-lane shuffles. A row-major input is
    written into whichever order the accumulators need (free: the pad stage picks rows); an
    ``[n, mp]`` side may hold swizzled tiles (``x_swizzled`` / ``y_swizzled``, where ``swizzles(m)``),
    which a chain uses so that both of its kernels take the fast intrinsic. Only when both sides
    are ``[n, mp]`` in the same order does the natural-order intrinsic run. ``swizzle=False`` keeps
    a row-major input in natural order (the definition before swizzled tiles: records tuned on it
    are still found by it).
    """
    x_t = transposed if x_transposed is None else x_transposed
    y_t = transposed if y_transposed is None else y_transposed
    mp, nb, tmax = padded_m(m), -(-n // 4), -(-k // 4)
    if (x_swizzled and not x_t) or (y_swizzled and not y_t) or ((x_swizzled or y_swizzled) and not swizzles(m)):
        raise ValueError(f"swizzled tiles need an [n, mp] side and whole 64-token tiles (m={m}, x_transposed={x_t}, "
                         f"y_transposed={y_t}, x_swizzled={x_swizzled}, y_swizzled={y_swizzled})")
    # the gathered rows' order: the input's, or (row-major input) the opposite of the accumulators'
    g_swz = x_swizzled if x_t else swizzle and swizzles(m) and not y_swizzled
    swz = g_swz != y_swizzled  # the accumulators take the other order: the swizzled intrinsic
    pad_swz = g_swz and not x_t
    out_dtype = epilogue.out_dtype
    x_dtype = "float32" if quantize_input else "uint8"
    x_shape = (k, mp) if x_t else (m, k)
    y_shape = (n, mp) if y_t else (m, n)
    attrs = {"tirx.noalias": True, "tvm_sparse.tile_bound": tmax, "tvm_sparse.block_rows": nb,
             "tvm_sparse.transposed": x_t}
    if x_t != y_t:  # only then: the attributes are part of the workload records are keyed by
        attrs.update({"tvm_sparse.transposed": False, "tvm_sparse.x_transposed": x_t, "tvm_sparse.y_transposed": y_t})
    if swz:
        attrs["tvm_sparse.swizzled"] = True
    if y_swizzled:  # a chain's hand-over (not in canonical instances: records are looked up by those)
        attrs["tvm_sparse.y_swizzled"] = True

    @T.prim_func(s_tir=True)
    def func(
        x: T.handle, qin: T.handle, indptr: T.handle, indices: T.handle, values: T.handle,
        scale: T.handle, corr: T.handle, bias: T.handle, qout: T.handle, y: T.handle,
    ) -> None:
        T.func_attr(attrs)
        nt = T.int32()
        X = T.match_buffer(x, x_shape, x_dtype)
        Qin = T.match_buffer(qin, (2,), "float32")
        Indptr = T.match_buffer(indptr, (nb + 1,), "int32")
        Indices = T.match_buffer(indices, (nt, 4), "int32")
        Values = T.match_buffer(values, (nt, 4, 4), "int8")
        Scale = T.match_buffer(scale, (n,), "float32")
        Corr = T.match_buffer(corr, (n,), "int32")
        Bias = T.match_buffer(bias, (n,), "float32")
        Qout = T.match_buffer(qout, (2,), "float32")
        Y = T.match_buffer(y, y_shape, out_dtype)
        Xq = T.sblock_alloc_buffer((k, mp) if x_t else (mp, k), "uint8")
        XT = T.sblock_alloc_buffer((k, mp), "uint8")
        G = T.sblock_alloc_buffer((nb, tmax, 4, mp), "uint8")
        acc = T.sblock_alloc_buffer((nb, 4, mp), "int32")
        YT = T.sblock_alloc_buffer((n, mp), out_dtype)
        for i0, i1 in T.grid(k if x_t else mp, mp if x_t else k):
            with T.sblock("pad"):  # (quantized,) zero-padded to whole 16-token vectors
                v0, v1 = T.axis.remap("SS", [i0, i1])
                if x_t:
                    Xq[v0, v1] = ep.to_u8(X[v0, v1], Qin, quantize_input)
                elif pad_swz and m == mp:  # row v0 holds token swizzle(v0): a row's address, nothing more
                    Xq[v0, v1] = ep.to_u8(X[swizzled_position(v0), v1], Qin, quantize_input)
                else:
                    Xq[v0, v1] = T.if_then_else(
                        pick(pad_swz, swizzled_position(v0), v0) < m,
                        ep.to_u8(X[T.min(pick(pad_swz, swizzled_position(v0), v0), m - 1), v1], Qin, quantize_input),
                        T.uint8(0),
                    )
        for kk, mm in T.grid(k, mp):
            with T.sblock("transpose"):
                vk, vm = T.axis.remap("SS", [kk, mm])
                if x_t:
                    XT[vk, vm] = Xq[vk, vm]
                else:
                    XT[vk, vm] = Xq[vm, vk]
        for r, t, j, mm in T.grid(nb, tmax, 4, mp):
            with T.sblock("gather"):
                vr, vt, vj, vm = T.axis.remap("SSSS", [r, t, j, mm])
                T.reads(XT[0:k, vm], Indices[Indptr[vr] + vt, vj])
                T.writes(G[vr, vt, vj, vm])
                G[vr, vt, vj, vm] = XT[Indices[Indptr[vr] + vt, vj], vm]
        if swz:  # position 64mo + 16a + 4b + c of acc reads 64mo + 16b + 4a + c of G (affine: it tensorizes)
            for r, t, o, mo, a, b, c, j in T.grid(nb, tmax, 4, mp // 64, 4, 4, 4, 4):
                with T.sblock("spmm"):
                    vr, vt, vo, vmo, va, vb, vc, vj = T.axis.remap("SRSSSSSR", [r, t, o, mo, a, b, c, j])
                    T.reads(G[vr, vt, vj, vmo * 64 + vb * 16 + va * 4 + vc], Values[Indptr[vr] + vt, vo, vj])
                    T.writes(acc[vr, vo, vmo * 64 + va * 16 + vb * 4 + vc])
                    with T.init():
                        acc[vr, vo, vmo * 64 + va * 16 + vb * 4 + vc] = 0
                    acc[vr, vo, vmo * 64 + va * 16 + vb * 4 + vc] = acc[
                        vr, vo, vmo * 64 + va * 16 + vb * 4 + vc
                    ] + T.cast(G[vr, vt, vj, vmo * 64 + vb * 16 + va * 4 + vc], "int32") * T.cast(
                        Values[Indptr[vr] + vt, vo, vj], "int32"
                    )
        else:
            for r, t, o, mm, j in T.grid(nb, tmax, 4, mp, 4):
                with T.sblock("spmm"):
                    vr, vt, vo, vm, vj = T.axis.remap("SRSSR", [r, t, o, mm, j])
                    T.reads(G[vr, vt, vj, vm], Values[Indptr[vr] + vt, vo, vj])
                    T.writes(acc[vr, vo, vm])
                    with T.init():
                        acc[vr, vo, vm] = 0
                    acc[vr, vo, vm] = acc[vr, vo, vm] + T.cast(G[vr, vt, vj, vm], "int32") * T.cast(
                        Values[Indptr[vr] + vt, vo, vj], "int32"
                    )
        # over the valid outputs only: reverse_compute_at drops a block predicate, so the bounds are
        # the loop extents (it derives its own predicates from them)
        for nn, mm in T.grid(n, mp):
            with T.sblock("epilogue"):
                vn, vm = T.axis.remap("SS", [nn, mm])
                if y_t:
                    Y[vn, vm] = ep.apply(epilogue, acc[vn // 4, vn % 4, vm], vn, ep.buffers(Scale, Corr, Bias, Qout))
                else:
                    YT[vn, vm] = ep.apply(epilogue, acc[vn // 4, vn % 4, vm], vn, ep.buffers(Scale, Corr, Bias, Qout))
        if not y_t:
            for mm, nn in T.grid(m, n):
                with T.sblock("untranspose"):
                    vm, vn = T.axis.remap("SS", [mm, nn])
                    Y[vm, vn] = YT[vn, vm]

    names = ["X"] + (["Qin"] if quantize_input else []) + ["Indptr", "Indices", "Values"]
    names += epilogue.param_names() + ["Y"]
    return keep_params(func, names)
