"""Several static-shape modules -> one: a Relax function per (batch, length) bucket in one IRModule.

TVM 0.27's frontends cannot import a symbolic sequence length, so a library that takes any length holds one
fixed-shape function per bucket. Each bucket is lowered on its own (import, swap, fusions); here their
functions are renamed apart (``main`` -> ``main_b4_l64``, a kernel ``k`` -> ``k_b4_l64``: the same name
means different shapes in different buckets) and put in one module, which builds into one library.
Building once links every bucket's code into one ``.so``; MetaSchedule records apply to each function by
its structure, whatever its name.
"""

from __future__ import annotations

import tvm
from tvm import relax


def function_name(batch: int, seq_len: int) -> str:
    return f"main_b{batch}_l{seq_len}"


def merge(parts: list[tuple[int, int, tvm.IRModule]]) -> tvm.IRModule:
    """``[(batch, seq_len, module with one Relax "main")]`` -> one module with ``main_b{B}_l{L}`` each."""
    bb = relax.BlockBuilder()
    for batch, seq_len, mod in parts:
        suffix = f"_b{batch}_l{seq_len}"
        renamed: dict[str, relax.GlobalVar] = {}
        # PrimFuncs first, through the BlockBuilder: it gives each new GlobalVar its type, and returns the
        # existing one for a function identical to one already added (a kernel two buckets share)
        for gv, func in mod.functions.items():
            if not isinstance(func, relax.Function):
                if func.attrs is not None and "global_symbol" in func.attrs:
                    func = func.with_attr("global_symbol", gv.name_hint + suffix)
                renamed[gv.name_hint] = bb.add_func(func, gv.name_hint + suffix)
        for gv, func in mod.functions.items():
            if isinstance(func, relax.Function):
                name = function_name(batch, seq_len) if gv.name_hint == "main" else gv.name_hint + suffix
                func = _Rename(renamed).visit_expr(func)
                if func.attrs is not None and "global_symbol" in func.attrs:  # the name the VM exports
                    func = func.with_attr("global_symbol", name)
                bb.add_func(func, name)
    return bb.get()


@relax.expr_functor.mutator
class _Rename(relax.PyExprMutator):
    """Every reference to a renamed function (``call_tir``'s callee, direct calls) points to its new name."""

    def __init__(self, renamed: dict[str, relax.GlobalVar]) -> None:
        super().__init__()
        self.renamed = renamed

    def visit_global_var_(self, op: relax.GlobalVar) -> relax.Expr:
        return self.renamed.get(op.name_hint, op)
