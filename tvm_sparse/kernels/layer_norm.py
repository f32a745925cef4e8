"""Residual add + LayerNorm in one pass over each row: ``Y = LayerNorm(A + B) * gamma + beta``.

BERT closes both halves of every layer with ``LayerNorm(x + residual)``. As two functions they cost
two trips through memory (the add writes a row, the norm reads it back) and TOPI's norm takes mean
and variance as ``E[x^2] - E[x]^2`` in one pass. Here, per row (rows in parallel), with the row in
L1: the sum is written to ``Y`` while its total accumulates on 4 x 16 lanes, the variance is a second
pass over ``x - mean`` (no cancellation), and the normalization a third, in place.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

from .vector import LANES, reduce_lanes


def supported(hidden: int) -> bool:
    return hidden % LANES == 0


def add_layer_norm(rows: int, hidden: int, eps: float) -> tirx.PrimFunc:
    """``A, B [rows, hidden]`` (fp32), ``gamma, beta [hidden]`` -> ``Y [rows, hidden]``."""
    if not supported(hidden):
        raise ValueError(f"add_layer_norm needs hidden divisible by {LANES}, got {hidden}")
    R, C, NV = rows, hidden, hidden // LANES
    NA = next(a for a in (4, 2, 1) if NV % a == 0)  # independent accumulators: the adds' latency is hidden

    @T.prim_func(private=True)
    def func(a: T.handle, b: T.handle, g: T.handle, bt: T.handle, y: T.handle) -> None:
        T.func_attr({"tirx.noalias": True})
        A = T.match_buffer(a, (R, C), "float32")
        B = T.match_buffer(b, (R, C), "float32")
        G = T.match_buffer(g, (C,), "float32")
        Bt = T.match_buffer(bt, (C,), "float32")
        Y = T.match_buffer(y, (R, C), "float32")
        for r in T.parallel(R):
            acc = T.decl_buffer((NA, LANES), "float32")
            stat = T.decl_buffer((2,), "float32")  # mean, 1 / std
            for u in T.unroll(NA):
                for ln in T.vectorized(LANES):
                    acc[u, ln] = T.float32(0)
            for c in range(NV // NA):
                for u in T.unroll(NA):
                    for ln in T.vectorized(LANES):
                        Y[r, (c * NA + u) * LANES + ln] = (A[r, (c * NA + u) * LANES + ln]
                                                           + B[r, (c * NA + u) * LANES + ln])
                        acc[u, ln] = acc[u, ln] + Y[r, (c * NA + u) * LANES + ln]
            stat[0] = reduce_lanes(_sum_rows(acc, NA), lambda u, v: u + v) * T.float32(1.0 / C)
            for u in T.unroll(NA):
                for ln in T.vectorized(LANES):
                    acc[u, ln] = T.float32(0)
            for c in range(NV // NA):
                for u in T.unroll(NA):
                    for ln in T.vectorized(LANES):
                        acc[u, ln] = acc[u, ln] + (Y[r, (c * NA + u) * LANES + ln] - stat[0]) * (
                            Y[r, (c * NA + u) * LANES + ln] - stat[0])
            stat[1] = T.float32(1.0) / T.sqrt(
                reduce_lanes(_sum_rows(acc, NA), lambda u, v: u + v) * T.float32(1.0 / C) + T.float32(eps))
            for c in range(NV):
                for ln in T.vectorized(LANES):
                    Y[r, c * LANES + ln] = (Y[r, c * LANES + ln] - stat[0]) * (stat[1] * G[c * LANES + ln]) \
                        + Bt[c * LANES + ln]

    return func.with_attr("global_symbol", "main")


def _sum_rows(acc, n: int) -> tirx.PrimExpr:
    """The sum of the accumulator buffer's ``n`` vectors."""
    total = acc[0, T.ramp(0, 1, LANES)]
    for u in range(1, n):
        total = total + acc[u, T.ramp(0, 1, LANES)]
    return total


def reference(a, b, gamma, beta, eps: float):
    import numpy as np

    x = (a + b).astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + eps) * gamma + beta).astype(np.float32)
