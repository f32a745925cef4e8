"""Pass 3 (int8): a sparse Linear feeding a sparse Linear hands over u8 ``[N, M]`` activations."""

from __future__ import annotations

from dataclasses import replace

from tvm import relax
from tvm.relax.dpl import is_op, is_tuple, rewrite_call, wildcard

from .context import SwapContext


def chain_ffn(ctx: SwapContext, func: relax.Function) -> relax.Function:
    """Sparse int8 Linear -> sparse int8 Linear (BERT's FFN: up, GELU, down): the first leaves
    its output as u8 ``[N, mp]``, quantized for the second, which reads it as is. The
    intermediate activation skips an fp32 round trip and both transposes."""
    first = is_op("relax.call_tir")(wildcard(), wildcard())
    into = first | is_op("relax.reshape")(first, wildcard())
    into = into | is_op("relax.reshape")(into, wildcard())
    fields = [into] + [wildcard() for _ in range(7)]  # X, Qin, Indptr, Indices, Values, Scale, Corr, Bias
    second = is_op("relax.call_tir")(wildcard(), is_tuple(fields))

    def rewrite(expr, m):
        (l1, c1), (l2, c2) = ctx.layer_of(m[first]) or (None, None), ctx.layer_of(expr) or (None, None)
        if l1 is None or l2 is None or not (l1.sparse and l2.sparse) or l1.out_quant or l2.in_transposed:
            return expr
        rows = int(m[first].ty.shape[0])
        hidden = ctx.call(replace(l1, out_quant=(l2.act_scale, l2.act_zero_point)), rows,
                            m[first].args[1].fields[0], c1)
        return ctx.call(replace(l2, in_transposed=True), rows, hidden, c2)

    return rewrite_call(second, rewrite, func)
