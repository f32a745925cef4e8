"""``layer_norm(a + b)`` over the last axis -> one call of the fused residual-add + LayerNorm kernel.

Runs after the Linear swap, on ``main``. Only where the add's result feeds nothing but the norm
(BERT's post-LN residuals, and its embedding sum); both operands of the add must have the norm's
shape (no broadcast), fp32, with a hidden size the kernel takes.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

from ..kernels import layer_norm as kernel


def _uses(func: relax.Function) -> dict:
    counts: dict = {}

    def visit(e):
        if isinstance(e, relax.Var):
            counts[e] = counts.get(e, 0) + 1

    relax.analysis.post_order_visit(func.body, visit)
    return counts


def fuse_add_layer_norm(mod: tvm.IRModule) -> tuple[tvm.IRModule, int]:
    """``mod`` with every fusable ``layer_norm(a + b)`` replaced; also returns how many."""
    func = mod["main"]
    var2val = relax.analysis.get_var2val(func)
    uses = _uses(func)
    add = is_op("relax.add")(wildcard(), wildcard())
    norm = is_op("relax.nn.layer_norm")(add, is_const(), is_const())
    bb = relax.BlockBuilder(mod)
    fused = []

    def rewrite(expr, m):
        x = m[add]
        if not isinstance(expr, relax.Call) or not isinstance(x, relax.Call):  # matched through a var
            return expr
        shape = [int(d) for d in x.ty.shape]
        a, b = x.args
        attrs = expr.attrs
        axes = [int(ax) % len(shape) for ax in attrs.axes]
        bound = next((v for v, e in var2val.items() if e.same_as(x)), None)
        if axes != [len(shape) - 1] or not attrs.center or not attrs.scale or x.ty.dtype != "float32" \
                or not kernel.supported(shape[-1]) or bound is None or uses.get(bound, 0) != 1 \
                or any([int(d) for d in y.ty.shape] != shape for y in (a, b)):
            return expr
        rows, hidden = int(np.prod(shape[:-1])), shape[-1]
        name = f"add_layer_norm_r{rows}_h{hidden}"
        func = kernel.add_layer_norm(rows, hidden, float(attrs.epsilon))
        func = func.with_attr("op_pattern", 8).with_attr("tirx.is_scheduled", True)
        gv = bb.add_func(func.with_attr("global_symbol", name), name)
        flat = [relax.op.reshape(y, (rows, hidden)) for y in (a, b)]
        out = relax.call_tir(gv, [*flat, expr.args[1], expr.args[2]], relax.TensorType((rows, hidden), "float32"))
        fused.append(name)
        return relax.op.reshape(out, shape)

    new_main = rewrite_call(norm, rewrite, func)
    out = bb.get()
    out["main"] = new_main
    if fused:
        out = relax.transform.RemoveRedundantReshape()(out)
    return relax.transform.DeadCodeElimination(["main"])(out), len(fused)
