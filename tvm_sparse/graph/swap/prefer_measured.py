"""Pass 5 (int8): a Linear left row-major (fp32 in and out) takes the kernel kind measured fastest for it.

Pass 1 decides sparse or dense by the threshold, so that the passes after it can give sparse layers the
layouts they run fastest in (the FFN chain's u8 hand-over, the attention kernel's u8 Q, K and V), which
a row-major measurement would not see. What is still row-major at the end compares like for like with
``tune/choices.py``'s measurements: on a Sapphire Rapids core bert-base's attention output projection at
90% ran 82 us sparse (VNNI) and 67 us dense on AMX (row-major, 128 tokens).
"""

from __future__ import annotations

from dataclasses import replace

from tvm import relax
from tvm.relax.dpl import is_op, rewrite_call, wildcard

from .context import SwapContext, _shape


def prefer_measured(ctx: SwapContext, func: relax.Function) -> relax.Function:
    if ctx.policy.mode == "threshold":
        return func
    swaps = {}
    for value in relax.analysis.get_var2val(func).values():
        found = ctx.kernel_of(value)  # an int8 kernel with a row-major fp32 output
        if found is None or found[0].in_transposed:
            continue
        layer, choice = found
        m = _shape(value)[0]
        decision = ctx.policy.decide(layer.weight, m)
        if decision.kind is None:
            continue
        choice.why = decision.reason
        if decision.sparse != layer.sparse or decision.kind != choice.kind:
            swaps[value] = (replace(layer, sparse=decision.sparse, kind=decision.kind), choice)
    if not swaps:
        return func

    def rewrite(expr, _m):
        hit = next((k for k in swaps if k.same_as(expr)), None)
        if hit is None:
            return expr
        layer, choice = swaps[hit]
        choice.sparse = layer.sparse
        return ctx.call(layer, _shape(expr)[0], expr.args[1].fields[0], choice)

    return rewrite_call(is_op("relax.call_tir")(wildcard(), wildcard()), rewrite, func)
