"""Helpers for kernels written as explicit vector code (TVMScript with ``T.vectorized`` lanes)."""

from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

LANES = 16  # fp32 / int32 lanes of a 512-bit register


def reduce_lanes(vec: tirx.PrimExpr, op) -> tirx.PrimExpr:
    """A 16-lane vector folded to a scalar in 4 halving steps (shuffles), not 15 dependent scalar ops."""
    width = LANES
    while width > 1:
        width //= 2
        vec = op(T.Shuffle([vec], [T.int32(x) for x in range(width)]),
                 T.Shuffle([vec], [T.int32(x) for x in range(width, 2 * width)]))
    return vec


def fold(vecs: list, op) -> tirx.PrimExpr:
    """Vectors folded pairwise as a tree: log2(n) dependent steps, not n - 1."""
    while len(vecs) > 1:
        vecs = [op(vecs[i], vecs[i + 1]) if i + 1 < len(vecs) else vecs[i] for i in range(0, len(vecs), 2)]
    return vecs[0]


def pick(first: bool, a, b):
    """``a if first else b`` where TVMScript parses it (its own ``if`` expression would become a select)."""
    return a if first else b


def vpdpbusd(acc: tirx.PrimExpr, u8: tirx.PrimExpr, s8: tirx.PrimExpr) -> tirx.PrimExpr:
    """``acc`` (int32x16) plus, per lane, the dot product of 4 unsigned bytes of ``u8`` with 4
    signed bytes of ``s8`` (both 64 bytes): one AVX512-VNNI instruction."""
    return T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"), acc, u8, s8,
                                   dtype="int32x16")
