"""MetaSchedule builder hook: finalize sparse kernels (layout stages, tile-loop narrowing), build.

MetaSchedule's default build imports every tensor intrinsic in a fresh worker (30-60 s, over its
30 s timeout) and goes through ``tvm.compile``, whose Executable cannot be exported by the worker.
Kernels and graph functions build the same way (``finalize_module`` leaves functions without a
data-dependent loop as they are).
"""

from __future__ import annotations

import tvm
from tvm.s_tir import meta_schedule as ms

from .. import pipeline
from .config import BUILD_TIMEOUT_S


def build(mod: tvm.IRModule, target: tvm.target.Target, _params: dict | None) -> tvm.runtime.Module:
    # our intrinsics (3 s), never TVM's tensor_intrin package (30 s per worker)
    from ..schedule.narrow import finalize_module

    return pipeline.build(finalize_module(mod), target)


def local_builder(max_workers: int | None = None) -> ms.builder.LocalBuilder:
    return ms.builder.LocalBuilder(f_build=build, timeout_sec=BUILD_TIMEOUT_S, max_workers=max_workers)
