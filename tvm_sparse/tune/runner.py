"""MetaSchedule runner hooks: measure candidates on arguments they can run on.

The default runner fills every argument with random bytes; a sparse kernel's ``indptr``/``indices``
would then point anywhere, and a graph's ``take`` (fast mode: no bounds check) would read anywhere. A
kernel gets the exact arrays of its canonical instance; a graph function integer zeros (valid
indices) and random floats.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms

from .config import EVALUATOR, RUN_TIMEOUT_S


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


def safe_args(device: tvm.runtime.Device, args_info, alloc_repeat: int) -> list[list]:
    """Arguments for a function with no arrays of its own: integer tensors zeros (valid indices for
    ``take``/``gather_nd``), float tensors random."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(alloc_repeat):
        args = []
        for info in args_info:
            _, dtype, shape = info
            if dtype.startswith(("int", "uint", "bool")):
                arr = np.zeros(shape, dtype=dtype)
            else:
                arr = rng.standard_normal(shape).astype(dtype)
            args.append(tvm.runtime.tensor(arr, device))
        out.append(args)
    return out


def local_runner(arrays: Sequence[np.ndarray] | None = None) -> ms.runner.LocalRunner:
    """Measure on this machine: on ``arrays``, or (None) on ``safe_args``."""
    alloc = safe_args if arrays is None else arg_allocator(arrays)
    return ms.runner.LocalRunner(timeout_sec=RUN_TIMEOUT_S, evaluator_config=EVALUATOR, f_alloc_argument=alloc)
