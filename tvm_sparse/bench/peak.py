"""The machine's VNNI peak, measured: how many ``vpdpbusd`` one core retires per second.

12 independent accumulators (more than the instruction's latency x throughput) are updated in a
loop with no memory traffic; the kernel is built by TVM for the same target as the kernels, so the
peak is what this CPU and this compiler can reach. Peak MAC/s = vpdpbusd/s x 64 (16 lanes x 4
byte products) x threads.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm.script import tirx as T

from ..kernels.vector import vpdpbusd

ACCUMULATORS = 12
ITERS = 200_000
MACS_PER_VPDPBUSD = 64


def _peak_func():
    @T.prim_func
    def func(out: T.Buffer((ACCUMULATORS * 16,), "int32"), a: T.Buffer((64,), "uint8"), b: T.Buffer((64,), "int8")):
        acc = T.alloc_buffer((ACCUMULATORS * 16,), "int32")
        for i in T.unroll(ACCUMULATORS):
            acc[T.ramp(i * 16, 1, 16)] = T.broadcast(T.int32(0), 16)
        for _ in range(ITERS):
            for i in T.unroll(ACCUMULATORS):
                acc[T.ramp(i * 16, 1, 16)] = vpdpbusd(
                    acc[T.ramp(i * 16, 1, 16)], a[T.ramp(0, 1, 64)], b[T.ramp(0, 1, 64)])
        for i in T.unroll(ACCUMULATORS):
            out[T.ramp(i * 16, 1, 16)] = acc[T.ramp(i * 16, 1, 16)]

    return func


def vnni_peak_macs(target: tvm.target.Target, threads: int = 1) -> float:
    """Peak u8 x s8 multiply-accumulates per second on ``threads`` cores of this machine."""
    lib = tvm.tirx.build(_peak_func(), target=target)
    dev = tvm.cpu()
    args = [
        tvm.runtime.tensor(np.zeros(ACCUMULATORS * 16, np.int32), dev),
        tvm.runtime.tensor(np.ones(64, np.uint8), dev),
        tvm.runtime.tensor(np.ones(64, np.int8), dev),
    ]
    secs = min(lib.time_evaluator(lib.entry_name, dev, number=3, repeat=5)(*args).results)
    return ACCUMULATORS * ITERS * MACS_PER_VPDPBUSD / secs * threads
