"""Dense int8 GEMM ``Y[M, N] = X[M, K] @ W^T``: the baseline and the fallback for layers that are
not sparse enough. The weight is pre-packed as ``Wp[N/16, K/4, 16, 4]`` so MetaSchedule's VNNI
tiling rule (TVM's ``dot_16x4_vnni``, repaired in ``intrin``) finds its 16x4 pattern directly.
N and K are zero-padded to multiples of 16 and 4 by ``pack_dense``; any M works.
"""

from __future__ import annotations

import numpy as np
from tvm import tirx
from tvm.script import tirx as T

from . import epilogue as ep
from .epilogue import Epilogue
from .signature import keep_params


def pack_dense(weight: np.ndarray) -> np.ndarray:
    """``W[N, K]`` int8 -> ``Wp[ceil(N/16), ceil(K/4), 16, 4]``, zero-padded."""
    n, k = weight.shape
    npad, kpad = -(-n // 16) * 16, -(-k // 4) * 4
    w = np.zeros((npad, kpad), dtype=weight.dtype)
    w[:n, :k] = weight
    return np.ascontiguousarray(w.reshape(npad // 16, 16, kpad // 4, 4).transpose(0, 2, 1, 3))


def dense_int8(
    m: int, k: int, n: int, epilogue: Epilogue = Epilogue.S32, quantize_input: bool = False
) -> tirx.PrimFunc:
    """``quantize_input``: fp32 X quantized in the padding stage, as in ``sparse_int8``."""
    nb, kb = -(-n // 16), -(-k // 4)
    out_dtype = epilogue.out_dtype
    x_dtype = "float32" if quantize_input else "uint8"

    @T.prim_func(s_tir=True)
    def func(
        x: T.handle, qin: T.handle, w: T.handle, scale: T.handle, corr: T.handle, bias: T.handle, qout: T.handle,
        y: T.handle,
    ) -> None:
        T.func_attr({"tirx.noalias": True})
        X = T.match_buffer(x, (m, k), x_dtype)
        Qin = T.match_buffer(qin, (2,), "float32")
        Wp = T.match_buffer(w, (nb, kb, 16, 4), "int8")
        Scale = T.match_buffer(scale, (n,), "float32")
        Corr = T.match_buffer(corr, (n,), "int32")
        Bias = T.match_buffer(bias, (n,), "float32")
        Qout = T.match_buffer(qout, (2,), "float32")
        Y = T.match_buffer(y, (m, n), out_dtype)
        Xp = T.sblock_alloc_buffer((m, kb * 4), "uint8")
        acc = T.sblock_alloc_buffer((m, nb * 16), "int32")
        for i, kk in T.grid(m, kb * 4):
            with T.sblock("pad"):
                vi, vk = T.axis.remap("SS", [i, kk])
                Xp[vi, vk] = T.if_then_else(
                    vk < k, ep.to_u8(X[vi, T.min(vk, k - 1)], Qin, quantize_input), T.uint8(0)
                )
        for i, j, kk in T.grid(m, nb * 16, kb * 4):
            with T.sblock("dense"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, kk])
                with T.init():
                    acc[vi, vj] = 0
                acc[vi, vj] = acc[vi, vj] + T.cast(Xp[vi, vk], "int32") * T.cast(
                    Wp[vj // 16, vk // 4, vj % 16, vk % 4], "int32"
                )
        for i, j in T.grid(m, n):
            with T.sblock("epilogue"):
                vi, vj = T.axis.remap("SS", [i, j])
                Y[vi, vj] = ep.apply(epilogue, acc[vi, vj], vj, ep.buffers(Scale, Corr, Bias, Qout))

    names = ["X"] + (["Qin"] if quantize_input else []) + ["Wp"] + epilogue.param_names() + ["Y"]
    return keep_params(func, names)
