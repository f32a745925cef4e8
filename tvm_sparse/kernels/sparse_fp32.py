"""Block-sparse fp32 GEMM ``Y = X @ W^T + bias`` (optionally GELU) for users who do not quantize.

Same 4x1 format, same stages and names as ``sparse_int8`` (one schedule family serves both): 16
tokens of fp32 fill an AVX-512 register and each of a tile's 16 weights is broadcast into one FMA.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

from .epilogue import gelu as gelu_of
from .sparse_int8 import padded_m


def sparse_fp32(m: int, k: int, n: int, gelu: bool = False, transposed: bool = False) -> tirx.PrimFunc:
    mp, nb, tmax = padded_m(m), -(-n // 4), -(-k // 4)
    x_shape, y_shape = ((k, mp), (n, mp)) if transposed else ((m, k), (m, n))

    @T.prim_func(s_tir=True)
    def func(x: T.handle, indptr: T.handle, indices: T.handle, values: T.handle, bias: T.handle, y: T.handle):
        T.func_attr({
            "tirx.noalias": True, "tvm_sparse.tile_bound": tmax, "tvm_sparse.block_rows": nb,
            "tvm_sparse.transposed": transposed,
        })
        nt = T.int32()
        X = T.match_buffer(x, x_shape, "float32")
        Indptr = T.match_buffer(indptr, (nb + 1,), "int32")
        Indices = T.match_buffer(indices, (nt, 4), "int32")
        Values = T.match_buffer(values, (nt, 4, 4), "float32")
        Bias = T.match_buffer(bias, (n,), "float32")
        Y = T.match_buffer(y, y_shape, "float32")
        Xp = T.sblock_alloc_buffer((k, mp) if transposed else (mp, k), "float32")
        XT = T.sblock_alloc_buffer((k, mp), "float32")
        G = T.sblock_alloc_buffer((nb, tmax, 4, mp), "float32")
        acc = T.sblock_alloc_buffer((nb, 4, mp), "float32")
        YT = T.sblock_alloc_buffer((n, mp), "float32")
        for i0, i1 in T.grid(k if transposed else mp, mp if transposed else k):
            with T.sblock("pad"):
                v0, v1 = T.axis.remap("SS", [i0, i1])
                if transposed:
                    Xp[v0, v1] = X[v0, v1]
                else:
                    Xp[v0, v1] = T.if_then_else(v0 < m, X[T.min(v0, m - 1), v1], T.float32(0))
        for kk, mm in T.grid(k, mp):
            with T.sblock("transpose"):
                vk, vm = T.axis.remap("SS", [kk, mm])
                if transposed:
                    XT[vk, vm] = Xp[vk, vm]
                else:
                    XT[vk, vm] = Xp[vm, vk]
        for r, t, j, mm in T.grid(nb, tmax, 4, mp):
            with T.sblock("gather"):
                vr, vt, vj, vm = T.axis.remap("SSSS", [r, t, j, mm])
                T.reads(XT[0:k, vm], Indices[Indptr[vr] + vt, vj])
                T.writes(G[vr, vt, vj, vm])
                G[vr, vt, vj, vm] = XT[Indices[Indptr[vr] + vt, vj], vm]
        for r, t, o, mm, j in T.grid(nb, tmax, 4, mp, 4):
            with T.sblock("spmm"):
                vr, vt, vo, vm, vj = T.axis.remap("SRSSR", [r, t, o, mm, j])
                T.reads(G[vr, vt, vj, vm], Values[Indptr[vr] + vt, vo, vj])
                T.writes(acc[vr, vo, vm])
                with T.init():
                    acc[vr, vo, vm] = T.float32(0)
                acc[vr, vo, vm] = acc[vr, vo, vm] + G[vr, vt, vj, vm] * Values[Indptr[vr] + vt, vo, vj]
        for nn, mm in T.grid(n, mp):  # stages as in sparse_int8
            with T.sblock("epilogue"):
                vn, vm = T.axis.remap("SS", [nn, mm])
                if transposed:
                    Y[vn, vm] = _out(acc[vn // 4, vn % 4, vm] + Bias[vn], gelu)
                else:
                    YT[vn, vm] = _out(acc[vn // 4, vn % 4, vm] + Bias[vn], gelu)
        if not transposed:
            for mm, nn in T.grid(m, n):
                with T.sblock("untranspose"):
                    vm, vn = T.axis.remap("SS", [mm, nn])
                    Y[vm, vn] = YT[vn, vm]

    return func


def _out(v: tirx.PrimExpr, gelu: bool) -> tirx.PrimExpr:
    return gelu_of(v) if gelu else v
