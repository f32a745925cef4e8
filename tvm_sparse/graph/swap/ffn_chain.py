"""Pass 3 (int8): an int8 Linear feeding an int8 Linear hands over u8 activations, quantized for the second."""

from __future__ import annotations

from dataclasses import replace

from tvm import relax
from tvm.relax.dpl import is_op, is_tuple, rewrite_call, wildcard

from ..linear import kind_of
from .context import SwapContext

# the second kernel's arguments before the hand-over: X, Qin, then its weight and epilogue constants
SPARSE_FIELDS = 8  # X, Qin, Indptr, Indices, Values, Scale, Corr, Bias
DENSE_FIELDS = 6  # X, Qin, Wp, Scale, Corr, Bias


def chain_ffn(ctx: SwapContext, func: relax.Function) -> relax.Function:
    """Int8 Linear -> int8 Linear (BERT's FFN: up, GELU, down): the first leaves its output as u8, quantized
    for the second, which reads it as is: the intermediate activation (4 x 3072 bytes a token in bert-base)
    skips an fp32 round trip, and the GELU before it takes the u8 epilogue's polynomial.

    Sparse -> sparse: u8 ``[N, mp]`` in swizzled token tiles, no transposes either. Dense -> dense or
    sparse: u8 ``[M, N]``, row-major, which both read. Sparse -> dense keeps fp32 (the dense kernels read
    row-major only)."""
    first = is_op("relax.call_tir")(wildcard(), wildcard())
    into = first | is_op("relax.reshape")(first, wildcard())
    into = into | is_op("relax.reshape")(into, wildcard())
    args = is_tuple([into] + [wildcard() for _ in range(SPARSE_FIELDS - 1)]) | is_tuple(
        [into] + [wildcard() for _ in range(DENSE_FIELDS - 1)])
    second = is_op("relax.call_tir")(wildcard(), args)

    def rewrite(expr, m):
        (l1, c1), (l2, c2) = ctx.layer_of(m[first]) or (None, None), ctx.layer_of(expr) or (None, None)
        if l1 is None or l2 is None or l1.out_quant or l1.out_transposed or not l2.quantizes_input \
                or (l1.sparse and not l2.sparse):
            return expr
        new1 = replace(l1, out_quant=(l2.act_scale, l2.act_zero_point))
        # the layout the first writes: [N, mp] from a sparse kernel, [M, N] from a dense one
        new2 = replace(l2, in_transposed=True) if l1.sparse else replace(l2, in_u8=True)
        rows = int(m[first].ty.shape[0])
        if kind_of(new1, rows, ctx.target) is None or kind_of(new2, rows, ctx.target) is None:
            return expr
        hidden = ctx.call(new1, rows, m[first].args[1].fields[0], c1)
        return ctx.call(new2, rows, hidden, c2)

    return rewrite_call(second, rewrite, func)
