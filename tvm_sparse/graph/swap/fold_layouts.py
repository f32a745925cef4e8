"""Pass 4 (int8): scalar factors and transposes after an int8 Linear fold into its kernel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

from ...kernels.sparse_int8 import padded_m
from .context import SwapContext, _shape, bound_var
from .layout import apply_layout, layout_op, scalar


def fold_layouts(ctx: SwapContext, func: relax.Function) -> relax.Function:
    """Fold what attention does to an int8 Linear's fp32 output into the kernel: a scalar factor
    (the 1/sqrt(d) torch applies to Q and K) into its scale and bias, and a chain of reshapes
    and permutes that amounts to a transpose (K's head split into [heads, d, tokens], ready for
    Q @ K^T) into a sparse kernel's natural [N, M] output: one transposing pass less per layer."""
    var2val = relax.analysis.get_var2val(func)
    uses: dict[relax.Var, int] = {}
    for value in var2val.values():
        for v in relax.analysis.free_vars(value):
            uses[v] = uses.get(v, 0) + 1
    for v in relax.analysis.free_vars(func.body.body):  # the function's result
        uses[v] = uses.get(v, 0) + 1
    chains = {}  # the last Call of each chain -> (kernel call, its layer, ops in order)
    for value in var2val.values():
        layer = ctx.kernel_of(value)
        if layer is None:
            continue
        ops, cur = [], value
        while True:
            var = bound_var(var2val, cur)
            users = [(v, e) for v, e in var2val.items()
                     if isinstance(e, relax.Call) and e.args and e.args[0].same_as(var)]
            if len(users) != 1 or uses.get(var, 0) != 1 or not layout_op(users[0][1]):
                break
            cur = users[0][1]
            ops.append(cur)
        if ops:
            chains[cur] = (value, layer, ops)

    def rewrite(expr, _m):
        hit = next((k for k in chains if k.same_as(expr)), None)
        if hit is None:
            return expr
        call, (layer, choice), ops = chains[hit]
        factor = float(np.prod([scalar(op) for op in ops if op.op.name == "relax.multiply"]))
        layout = [op for op in ops if op.op.name != "relax.multiply"]
        if factor != 1.0 and (layer.gelu or layer.out_quant):
            return expr
        m, n = _shape(call)
        final = _shape(expr)
        moved = apply_layout(np.arange(m * n).reshape(m, n), layout)
        transposed = (layer.sparse and padded_m(m) == m
                      and np.array_equal(moved.ravel(), np.arange(m * n).reshape(m, n).T.ravel()))
        permutes = sum(op.op.name == "relax.permute_dims" for op in layout)
        if (factor == 1.0 or permutes > 1) and not transposed:  # > 1: a new function, no record
            return expr
        y = ctx.call(replace(layer, out_scale=factor * layer.out_scale, out_transposed=transposed), m,
                       call.args[1].fields[0], choice)
        if transposed:
            return relax.op.reshape(y, final)
        for op in layout:  # the same layout ops, on the scaled output
            y = relax.Call(op.op, [y, *op.args[1:]], op.attrs)
        return y

    if not chains:
        return func
    return rewrite_call(is_op("relax.reshape")(wildcard(), wildcard()) | is_op("relax.permute_dims")(wildcard())
                        | is_op("relax.multiply")(wildcard(), is_const()), rewrite, func)
