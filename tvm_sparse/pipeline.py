"""How every kernel and model of this project is lowered: TVM's default TIR pipeline, plus one pass.

TVM moves any scratch buffer of 1 KiB or more off the stack into a heap workspace
(``TVMBackendAllocWorkspace`` and a free per use). A sparse kernel's accumulator tile (4 channels
x 64 tokens of int32) is exactly 1 KiB and is allocated once per tile, inside the parallel loop:
two calls per 4x64 outputs, and LLVM cannot keep the accumulators in registers across them.
``keep_small_scratch_on_stack`` marks constant-size buffers up to ``STACK_SCRATCH_BYTES`` for the
stack, where LLVM promotes them to registers. Builds that skip it are correct, only slower.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import tirx
from tvm.tirx import compilation_pipeline

from .target import codegen_target

NAME = "tvm_sparse"
STACK_SCRATCH_BYTES = 4096  # a thread's stack has megabytes; this is per live tile, not per row
_DISABLE_LOWER_BUILTIN = "disable_lower_builtin"  # tvm::tirx::transform::kDisableLowerTVMBuiltin


@tirx.transform.prim_func_pass(opt_level=0, name="tvm_sparse.KeepSmallScratchOnStack")
def keep_small_scratch_on_stack(func: tirx.PrimFunc, _mod, _ctx) -> tirx.PrimFunc:
    def mark(alloc: tirx.AllocBuffer):
        buf = alloc.buffer
        if _DISABLE_LOWER_BUILTIN in alloc.annotations or buf.scope() != "global":
            return alloc
        if not all(isinstance(d, tirx.IntImm) for d in buf.shape):
            return alloc
        size = buf.dtype.bits * buf.dtype.lanes // 8
        for d in buf.shape:
            size *= int(d)
        if size > STACK_SCRATCH_BYTES:
            return alloc
        return tirx.AllocBuffer(buf, {**alloc.annotations, _DISABLE_LOWER_BUILTIN: tvm.tirx.IntImm("bool", 1)})

    return tvm_ffi.structural_map(func, [(tirx.AllocBuffer, mark)])


def _pipeline():
    lower, finalize_host, finalize_device = compilation_pipeline.get_tir_pipeline("default")
    return lower, lambda: tvm.ir.transform.Sequential([keep_small_scratch_on_stack, finalize_host()]), finalize_device


compilation_pipeline.register_tir_pipeline(NAME, _pipeline)

# TVM 0.27 does not mark isnan vectorizable, so a loop holding one is scalarized whole: BERT's
# softmax (exported as where(isnan(softmax(x)), 0, softmax(x))) ran one scalar divide per element,
# 3x slower. LLVM lowers isnan to a vector `fcmp uno` like any compare. Registered on import, so the
# tuning builder's worker processes (which import this module to build) get it too.
if tvm.ir.Op.get("tirx.isnan").get_attr("TVectorizable") is None:
    tvm.ir.register_op_attr("tirx.isnan", "TVectorizable", True)


def build(mod, target: tvm.target.Target) -> tvm.runtime.Module:
    """``tvm.tirx.build`` for ``target`` with this project's LLVM options and pipeline."""
    return tvm.tirx.build(mod, target=codegen_target(target), pipeline=NAME)
