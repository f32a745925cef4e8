"""Pass 2 (int8): BERT's attention core -> one int8 attention kernel call, Q/K/V projections fused into one kernel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

from ...kernels import attention_int8
from ...kernels.amx import targets_amx
from ...kernels.sparse_int8 import padded_m
from .context import SwapContext, _shape
from .layout import layout_source


def fuse_attention(ctx: SwapContext, func: relax.Function) -> relax.Function:
    """BERT's attention core (head split, ``Q @ K^T`` x scale + mask, softmax, ``P @ V``, head merge)
    -> one call of the int8 attention kernel on the 2-D Q, K, V the Linears produce; its two matmuls on AMX
    where the target has it and that is measured faster (``attention_int8.amx_wins``)."""
    var2val = relax.analysis.get_var2val(func)
    qk = is_op("relax.matmul")(wildcard(), wildcard())
    mask = wildcard()
    probs = is_op("relax.nn.softmax")(is_op("relax.add")(qk, mask))
    guarded = is_op("relax.where")(is_op("relax.isnan")(probs), is_const(), probs)
    pv = is_op("relax.matmul")(guarded | probs, wildcard())
    merged = is_op("relax.permute_dims")(pv)

    def rewrite(expr, m):
        b, h, seq, d = _shape(m[pv])
        if list(expr.attrs.axes or []) != [0, 2, 1, 3] or _shape(m[probs])[-1] != seq \
                or not attention_int8.supported(seq, d) or m[mask].ty.dtype != "float32":
            return expr
        split = np.arange(b * seq * h * d).reshape(b, seq, h, d)
        q, q_scale = layout_source(m[qk].args[0], var2val, split.transpose(0, 2, 1, 3))
        k, k_scale = layout_source(m[qk].args[1], var2val, split.transpose(0, 2, 3, 1))
        v, v_scale = layout_source(m[pv].args[1], var2val, split.transpose(0, 2, 1, 3))
        mask_shape = _shape(m[mask])
        if q is None or k is None or v is None or v_scale != 1.0 or len(mask_shape) != 4:
            return expr
        qkv, qkv_transposed, scales = _fuse_qkv(ctx, [q, k, v], var2val, h) or (None, False, None)
        width, offsets = (3 * h * d, (0, h * d, 2 * h * d)) if qkv is not None else (None, (0, 0, 0))
        amx = targets_amx(ctx.target) and attention_int8.amx_wins(seq, d)
        try:
            kernel = attention_int8.attention_int8(b, seq, h, d, q_scale * k_scale, tuple(mask_shape),
                                                   width, offsets, transposed=qkv_transposed,
                                                   prequantized=scales is not None, amx=amx)
        except ValueError:
            return expr
        kernel = kernel.with_attr("op_pattern", 8).with_attr("tirx.is_scheduled", True)
        layout = ("_qkv" if qkv is not None else "") + ("_t" if qkv_transposed else "")
        layout += ("_u8" if scales is not None else "") + ("_amx" if amx else "")
        name = f"attention_int8_b{b}_l{seq}_h{h}_d{d}{layout}"
        gv = ctx.bb.add_func(kernel.with_attr("global_symbol", name), name)
        flat = [qkv] * 3 if qkv is not None else [relax.op.reshape(x, (b * seq, h * d)) for x in (q, k, v)]
        if scales is not None:
            flat.append(relax.const(scales))
        out = relax.call_tir(gv, [*flat, m[mask]], relax.TensorType((b * seq, h * d), "float32"))
        ctx.attention += 1
        return relax.op.reshape(out, (b, seq, h, d))

    return rewrite_call(merged, rewrite, func)

def _fuse_qkv(ctx: SwapContext, sources: list, var2val: dict, heads: int
              ) -> tuple[relax.Expr, bool, np.ndarray | None] | None:
    """Q, K and V projected from one input by int8 kernels of one kind -> one kernel of three times
    the width: the input is quantized and transposed once, not three times. None if they are not.
    A sparse one keeps its natural ``[3*H*D, M]`` output (True), which the attention kernel reads
    as is: no untranspose pass (45 us per bert-base layer). Where calibration measured the three
    outputs, that output is u8, quantized with per-head scales (returned, ``[3, heads]``), sparse or
    dense (a quarter of the bytes, no quantizing pass in the attention kernel)."""
    calls = [var2val.get(x, x) if isinstance(x, relax.Var) else x for x in sources]
    found = [ctx.kernel_of(c) for c in calls]
    if any(f is None for f in found):
        return None
    layers = [f[0] for f in found]
    inputs = [c.args[1].fields[0] for c in calls]
    first = layers[0]
    if not all(x.same_as(inputs[0]) for x in inputs) or any(
            (lay.sparse, lay.act_scale, lay.act_zero_point, lay.gelu, lay.out_scale, lay.in_transposed)
            != (first.sparse, first.act_scale, first.act_zero_point, False, 1.0, False) for lay in layers):
        return None
    weight = np.concatenate([lay.weight for lay in layers])
    bias = np.concatenate([lay.bias if lay.bias is not None else np.zeros(lay.weight.shape[0], np.float32)
                           for lay in layers])
    m = int(np.prod(_shape(calls[0])[:-1]))
    transposed = first.sparse and padded_m(m) == m
    absmax = [ctx.calib[choice.key].out_absmax for _, choice in found]
    scales = None
    # u8 out: [N, M] from a sparse kernel, [M, N] from a dense one (a sparse one's u8 out is never row-major)
    if (transposed or not first.sparse) and all(a is not None and len(a) % heads == 0 for a in absmax):
        # symmetric per head, zero point 128: the attention kernel's own quantization
        scales = np.stack([np.asarray(a, np.float32).reshape(heads, -1).max(axis=1) for a in absmax])
        scales = (np.maximum(scales, 1e-12) / 127.0).astype(np.float32)
        per_channel = np.repeat(scales.reshape(-1), weight.shape[0] // (3 * heads)).astype(np.float32)
        fused = replace(first, weight=weight, bias=bias, out_quant=(per_channel, 128), out_swizzled=False)
    else:
        fused = replace(first, weight=weight, bias=bias, out_transposed=transposed)
    y = ctx.call(fused, m, inputs[0], found[0][1])
    for _, choice in found[1:]:
        choice.kernel = found[0][1].kernel
    return y, transposed, scales
