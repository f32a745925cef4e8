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
from ..target import device

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
    dev = device(target)
    args = [
        tvm.runtime.tensor(np.zeros(ACCUMULATORS * 16, np.int32), dev),
        tvm.runtime.tensor(np.ones(64, np.uint8), dev),
        tvm.runtime.tensor(np.ones(64, np.int8), dev),
    ]
    secs = min(lib.time_evaluator(lib.entry_name, dev, number=3, repeat=5)(*args).results)
    return ACCUMULATORS * ITERS * MACS_PER_VPDPBUSD / secs * threads


AMX_ITERS = 100_000
MACS_PER_TDPBUSD = 16 * 16 * 64


def _amx_peak_func():
    from ..kernels import amx

    @T.prim_func
    def func(cfg: T.Buffer((64,), "uint8"), a: T.Buffer((2048,), "uint8"), b: T.Buffer((2048,), "int8"),
             out: T.Buffer((1024,), "int32")):
        T.evaluate(amx.ldtilecfg(T.address_of(cfg[0])))
        for t in T.unroll(4):
            T.evaluate(amx.tilezero(t))
        for t in T.unroll(2):
            T.evaluate(amx.tileload(4 + t, T.address_of(a[t * 1024]), 64))
            T.evaluate(amx.tileload(6 + t, T.address_of(b[t * 1024]), 64))
        for _ in range(AMX_ITERS):  # 4 independent accumulators: the 2 x 2 blocking the kernels use
            for t in T.unroll(4):
                T.evaluate(amx.tdpbusd(t, 4 + t // 2, 6 + t % 2))
        for t in T.unroll(4):
            T.evaluate(amx.tilestore(t, T.address_of(out[t * 256]), 64))
        T.evaluate(amx.tilerelease())

    return func


def amx_peak_macs(target: tvm.target.Target, threads: int = 1) -> float:
    """Peak u8 x s8 multiply-accumulates per second of ``threads`` cores' AMX units, measured the same
    way: ``tdpbusd`` on 4 independent accumulator tiles, no memory traffic."""
    from ..kernels.amx import tile_config
    from ..runtime.amx import request_permission

    request_permission()
    lib = tvm.tirx.build(_amx_peak_func(), target=target)
    dev = device(target)
    args = [tvm.runtime.tensor(a, dev) for a in (tile_config(), np.ones(2048, np.uint8), np.ones(2048, np.int8),
                                                  np.zeros(1024, np.int32))]
    secs = min(lib.time_evaluator(lib.entry_name, dev, number=3, repeat=5)(*args).results)
    return 4 * AMX_ITERS * MACS_PER_TDPBUSD / secs * threads
