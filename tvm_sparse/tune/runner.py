"""MetaSchedule runner hooks: measure kernels on real arguments.

The default runner fills every argument with random bytes; a sparse kernel's ``indptr``/``indices``
would then point anywhere. We hand the runner the exact arrays a candidate must run on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms

# candidates are timed as the kernel benchmark times them: enough repeats to average out noise,
# with a cache flush-free steady state (a BERT layer's weights stay in L2 across calls)
EVALUATOR = ms.runner.EvaluatorConfig(number=20, repeat=3, min_repeat_ms=50, enable_cpu_cache_flush=False)
RUN_TIMEOUT_S = 60.0


def arg_allocator(arrays: Sequence[np.ndarray]):
    """An ``f_alloc_argument`` for the local runner that uploads ``arrays`` (in call order)."""
    arrays = [np.ascontiguousarray(a) for a in arrays]

    def alloc(device: tvm.runtime.Device, _args_info, alloc_repeat: int):
        return [[tvm.runtime.tensor(a, device) for a in arrays] for _ in range(alloc_repeat)]

    return alloc


def rpc_arg_allocator(arrays: Sequence[np.ndarray]):
    """The same for ``RPCRunner``: arrays are uploaded through the RPC session."""
    arrays = [np.ascontiguousarray(a) for a in arrays]

    def alloc(_session, device: tvm.runtime.Device, _args_info, alloc_repeat: int):
        return [[tvm.runtime.tensor(a, device) for a in arrays] for _ in range(alloc_repeat)]

    return alloc


def local_runner(arrays: Sequence[np.ndarray]) -> ms.runner.LocalRunner:
    return ms.runner.LocalRunner(
        timeout_sec=RUN_TIMEOUT_S, evaluator_config=EVALUATOR, f_alloc_argument=arg_allocator(arrays)
    )
