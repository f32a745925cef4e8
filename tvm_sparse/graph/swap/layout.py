"""Reading reshapes, permutes and scalar multiplies as one rearrangement of a tensor's elements."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from .context import _array, _shape


def layout_op(call: relax.Call) -> bool:
    name = call.op.name if isinstance(call.op, tvm.ir.Op) else ""
    if name in ("relax.reshape", "relax.permute_dims"):
        return True
    return name == "relax.multiply" and isinstance(call.args[1], tvm.ir.expr.Constant) and scalar(call) is not None


def scalar(call: relax.Call) -> float | None:
    value = _array(call.args[1])
    return float(value.reshape(-1)[0]) if value.size == 1 and value.dtype == np.float32 else None


def layout_source(expr: relax.Expr, var2val: dict, expected: np.ndarray) -> tuple[relax.Expr | None, float]:
    """Walk back from ``expr`` through reshapes, permutes and scalar multiplies to the tensor they
    rearrange; returns it and the product of the factors if the rearrangement maps its elements
    (in row-major order) exactly as ``expected`` does, else (None, 1)."""
    ops, factor = [], 1.0
    while True:
        value = var2val.get(expr, expr) if isinstance(expr, relax.Var) else expr
        if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and layout_op(value)):
            break
        if value.op.name == "relax.multiply":
            factor *= scalar(value)
        else:
            ops.append(value)
        expr = value.args[0]
    shape = _shape(expr)
    if int(np.prod(shape)) != expected.size or expr.ty.dtype != "float32":
        return None, 1.0
    moved = apply_layout(np.arange(expected.size).reshape(shape), ops[::-1])
    return (expr, factor) if moved.shape == expected.shape and np.array_equal(moved, expected) else (None, 1.0)


def apply_layout(index: np.ndarray, ops: list[relax.Call]) -> np.ndarray:
    """Where each element of a kernel's output ends up after ``ops`` (reshapes and permutes)."""
    for op in ops:
        if op.op.name == "relax.reshape":
            index = index.reshape(_shape(op))
        else:
            axes = op.attrs.axes
            index = index.transpose(None if axes is None else [int(a) for a in axes])
    return index


