"""Pass 1: every Linear (``matmul + add``, with GELU where it follows, or a bare ``matmul``) -> one kernel call."""

from __future__ import annotations

import math

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

from .context import SwapContext, _array, _shape


def _linear_patterns():
    x = wildcard()
    w = is_const()
    weight = w | is_op("relax.permute_dims")(w)
    mm = is_op("relax.matmul")(x, weight)
    b = is_const()
    lin = is_op("relax.add")(mm, b) | is_op("relax.add")(b, mm)
    return x, w, b, mm, lin



def swap_each_linear(ctx: SwapContext, func: relax.Function) -> relax.Function:
    x, w, b, mm, lin = _linear_patterns()
    reshaped = is_op("relax.reshape")(lin, wildcard())
    gelu_op = is_op("relax.nn.gelu")(lin) | is_op("relax.nn.gelu")(reshaped)
    c1, c2, c3 = is_const(), is_const(), is_const()
    erf = is_op("relax.erf")(is_op("relax.divide")(lin, c1))
    gelu_erf = is_op("relax.multiply")(is_op("relax.multiply")(lin, is_op("relax.add")(erf, c2)), c3)

    def linear(expr, m, gelu=False):
        bias = _array(m[b]).astype(np.float32).reshape(-1)
        w_nk = ctx.weight_nk(m[mm].args[1], m[w])
        if bias.shape[0] != w_nk.shape[0]:
            return expr  # an add that is not a per-channel bias
        y = ctx.emit(m[x], w_nk, bias, gelu, _shape(expr))
        return expr if y is None else y

    def on_gelu_erf(expr, m):
        consts = [float(_array(m[c])) if _array(m[c]).size == 1 else None for c in (c1, c2, c3)]
        if None in consts or not np.allclose(consts, [math.sqrt(2.0), 1.0, 0.5], rtol=1e-3):
            return expr
        return linear(expr, m, gelu=True)

    func = rewrite_call(gelu_op, lambda e, m: linear(e, m, gelu=True), func)
    func = rewrite_call(gelu_erf, on_gelu_erf, func)
    func = rewrite_call(lin, linear, func)
    xb, wb = wildcard(), is_const()
    mm_only = is_op("relax.matmul")(xb, wb | is_op("relax.permute_dims")(wb))

    def no_bias(expr, m):
        if len(_array(m[wb]).shape) != 2:
            return expr
        w_nk = ctx.weight_nk(m[mm_only].args[1], m[wb])
        y = ctx.emit(m[xb], w_nk, None, False, _shape(expr))
        return expr if y is None else y

    return rewrite_call(mm_only, no_bias, func)

