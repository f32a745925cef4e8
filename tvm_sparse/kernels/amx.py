"""AMX (Sapphire Rapids' tile units) in TensorIR: LLVM's AMX intrinsics and a dense u8 x s8 -> s32 GEMM.

TVM 0.27 has no AMX helpers, but its LLVM has the intrinsics, callable from TIR: ``ldtilecfg`` (the tile
shapes), ``tilezero``, ``tileloadd64``, ``tdpbusd``, ``tilestored64``, ``tilerelease``. Tile numbers are
immediates (``T.int8``). One ``tdpbusd`` multiplies a 16x64 u8 tile by a 64x16 s8 tile into a 16x16 s32
tile: 16384 multiply-accumulates, against 64 for one ``vpdpbusd``. Linux hands a process the tile state
only after it asks (``runtime.amx.request_permission``), once, before the first tile instruction.

The B tile layout is ``pack_dense``'s: ``Wp[n/16, k/4, 16, 4]`` puts, for 16 output channels, 4 consecutive
input channels of each side by side, which is one B-tile row; 16 consecutive rows (64 input channels)
are 1024 contiguous bytes, one tile at a stride of 64 bytes.
"""

from __future__ import annotations

import numpy as np
from tvm import tirx
from tvm.script import tirx as T

from . import epilogue as ep
from .epilogue import Epilogue
from .signature import keep_params

TILE_ROWS = 16  # rows of every tile used here
TILE_BYTES = 64  # bytes per tile row: 64 u8 / s8, or 16 s32
K_STEP = 64  # input channels one tdpbusd consumes
ACC_M, ACC_N = 2, 2  # accumulator tiles per block: tmm0..3 = C[2 x 2], tmm4..5 = A, tmm6..7 = B


def tile_config(shapes: list[tuple[int, int]] | None = None) -> np.ndarray:
    """The 64-byte ``ldtilecfg`` operand: palette 1, tile ``t`` of ``shapes[t]`` = (rows, bytes per row);
    by default tiles 0-7 all 16 rows x 64 bytes. Tiles past ``shapes`` stay unconfigured (0 x 0)."""
    shapes = [(TILE_ROWS, TILE_BYTES)] * 8 if shapes is None else shapes
    if len(shapes) > 8 or any(not (0 < r <= TILE_ROWS and 0 < c <= TILE_BYTES) for r, c in shapes):
        raise ValueError(f"AMX has 8 tiles of at most {TILE_ROWS} rows x {TILE_BYTES} bytes, got {shapes}")
    cfg = np.zeros(64, np.uint8)
    cfg[0] = 1
    for t, (rows, colsb) in enumerate(shapes):
        cfg[16 + 2 * t: 18 + 2 * t] = np.frombuffer(np.uint16(colsb).tobytes(), np.uint8)
        cfg[48 + t] = rows
    return cfg


def tile_config_words(shapes: list[tuple[int, int]]) -> tuple[int, ...]:
    """``tile_config(shapes)`` as 8 int64 words: a kernel writes them to a stack buffer as constants."""
    return tuple(int(w) for w in tile_config(shapes).view(np.int64))


def _intrin(name: str, *args):
    return T.call_llvm_intrin("void", f"llvm.x86.{name}", *args)


def ldtilecfg(ptr):
    return _intrin("ldtilecfg", ptr)


@T.macro
def configure_tiles():
    """``ldtilecfg`` of ``tile_config()`` (palette 1, 8 tiles of 16 rows x 64 bytes), built on the stack of
    the thread that runs the tiles: the configuration is per thread, so each parallel task loads its own."""
    cfg = T.alloc_buffer((64,), "uint8")
    for i in T.unroll(64):
        cfg[i] = T.uint8(0)
    cfg[0] = T.uint8(1)
    for t in T.unroll(8):
        cfg[16 + 2 * t] = T.uint8(TILE_BYTES)
        cfg[48 + t] = T.uint8(TILE_ROWS)
    T.evaluate(ldtilecfg(T.address_of(cfg[0])))


def tilezero(tile: int):
    return _intrin("tilezero", T.int8(tile))


def tileload(tile: int, ptr, stride_bytes: int):
    return _intrin("tileloadd64", T.int8(tile), ptr, T.int64(stride_bytes))


def tdpbusd(acc: int, a: int, b: int):
    return _intrin("tdpbusd", T.int8(acc), T.int8(a), T.int8(b))


def tilestore(tile: int, ptr, stride_bytes: int):
    return _intrin("tilestored64", T.int8(tile), ptr, T.int64(stride_bytes))


def tilerelease():
    return _intrin("tilerelease")


def prefetch_l2(ptr):
    """``prefetcht1``: the line into L2 (and the shared L3), not L1, which holds the current operands."""
    return T.call_llvm_intrin("void", "llvm.prefetch.p0", ptr, T.int32(0), T.int32(2), T.int32(1))


FEATURES = ("amx-tile", "amx-int8")  # LLVM's names: what a target needs for these kernels


def targets_amx(target) -> bool:
    """Whether code built for ``target`` may use these kernels (its features include AMX int8)."""
    from ..target import isa

    return set(FEATURES) <= isa(target)


def fits(m: int, k: int, n: int) -> bool:
    """Whether ``dense_amx`` takes this shape (whole 32 x 32 blocks, whole 64-channel steps)."""
    return m % (ACC_M * TILE_ROWS) == 0 and n % (ACC_N * TILE_ROWS) == 0 and k % K_STEP == 0


def task_count(units: int, tasks: int | None = None) -> int:
    """Parallel iterations for ``units`` blocks of work: the largest divisor of ``units`` not above ``tasks``
    (default 16), so every task runs the same number of blocks. Each task loads the tile configuration
    once: ``ldtilecfg`` drains the tile units, and once per block it cost 10% at 128x768x3072."""
    return max(t for t in range(1, min(units, 16 if tasks is None else tasks) + 1) if units % t == 0)


def dense_amx(m: int, k: int, n: int, epilogue: Epilogue = Epilogue.S32, quantize_input: bool = False,
              tasks: int | None = None) -> tirx.PrimFunc:
    """``Y[m, n] = epilogue(X[m, k] @ W[n, k]^T)`` (u8 x s8 -> s32) on AMX tiles: ``dense_int8``'s contract,
    parameters and weight packing (``pack_dense``), so either serves a dense Linear.

    Blocks of 32 tokens x 32 output channels: 2 x 2 accumulator tiles, each A and B tile used twice. The
    parallel loop runs over output-channel blocks, each reading its weight slab (K x 32 bytes) from L1 for
    every token block but the first; while it works, the next block's slab is prefetched into L2, a few
    lines per K step (a bert-base FFN weight is 2.4 MB: it comes from L3 on every call, and the hardware's
    prefetchers alone left the tile units waiting on it). A block's accumulators go to a 4 KiB scratch
    (on the stack) and through the epilogue straight away; with no epilogue (s32 out) the tiles are
    stored straight into Y (the scratch and its copy cost 1.1x at 128x768x3072).
    ``quantize_input``: X is fp32, quantized to u8 first (one pass, in parallel over tokens). ``tasks``:
    parallel iterations (``task_count``), each a run of consecutive output-channel blocks; the tile
    configuration is per thread, so each task loads it (1 thread, 128x768x3072, s32: one configuration
    per block 242 us, 16 tasks 225, one task 218). Shapes must tile whole. Written already scheduled:
    its loops are the schedule."""
    bm, bn = ACC_M * TILE_ROWS, ACC_N * TILE_ROWS
    if not fits(m, k, n):
        raise ValueError(f"dense_amx needs m % {bm} == n % {bn} == k % {K_STEP} == 0, got m={m} k={k} n={n}")
    kc, k4, nt, lanes = k // K_STEP, k // 4, n // TILE_ROWS, 16
    out_dtype = epilogue.out_dtype
    x_dtype = "float32" if quantize_input else "uint8"
    nb, steps = n // bn, m // bm * kc  # output-channel blocks; K steps per block
    tasks = task_count(nb, tasks)
    per = nb // tasks
    slab = ACC_N * k4  # 64-byte lines of one block's weights
    per_step = -(-slab // steps)  # of the next block's, prefetched per K step
    direct = epilogue == Epilogue.S32

    @T.prim_func(s_tir=True)
    def func(x: T.handle, qin: T.handle, w: T.handle, scale: T.handle, corr: T.handle, bias: T.handle,
             qout: T.handle, y: T.handle) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "tvm_sparse.amx": True})
        X = T.match_buffer(x, (m, k), x_dtype)
        Qin = T.match_buffer(qin, (2,), "float32")
        Wp = T.match_buffer(w, (nt, k4, 16, 4), "int8")
        Scale = T.match_buffer(scale, (n,), "float32")
        Corr = T.match_buffer(corr, (n,), "int32")
        Bias = T.match_buffer(bias, (n,), "float32")
        Qout = T.match_buffer(qout, (2,), "float32")
        Y = T.match_buffer(y, (m, n), out_dtype)
        # A tiles stored whole (1 KiB contiguous each): tile loads stream instead of striding rows
        Xq = T.alloc_buffer((m // TILE_ROWS, kc, TILE_ROWS, K_STEP), "uint8")
        for i in T.parallel(m):
            for c in range(k // lanes):
                for v in T.vectorized(lanes):
                    Xq[i // TILE_ROWS, c // 4, i % TILE_ROWS, c % 4 * lanes + v] = ep.to_u8(
                        X[i, c * lanes + v], Qin, quantize_input)
        for task in T.parallel(tasks):
            configure_tiles()
            for jb in range(task * per, task * per + per):
                for ib in range(m // bm):
                    acc = T.alloc_buffer((bm, bn), "int32")
                    for t in T.unroll(ACC_M * ACC_N):
                        T.evaluate(tilezero(t))
                    for c in range(kc):  # each load just before its first use: loads overlap the products
                        T.evaluate(tileload(4, T.address_of(Xq[ib * ACC_M, c, 0, 0]), TILE_BYTES))
                        T.evaluate(tileload(6, T.address_of(Wp[jb * ACC_N, c * 16, 0, 0]), TILE_BYTES))
                        T.evaluate(tdpbusd(0, 4, 6))
                        T.evaluate(tileload(7, T.address_of(Wp[jb * ACC_N + 1, c * 16, 0, 0]), TILE_BYTES))
                        T.evaluate(tdpbusd(1, 4, 7))
                        T.evaluate(tileload(5, T.address_of(Xq[ib * ACC_M + 1, c, 0, 0]), TILE_BYTES))
                        T.evaluate(tdpbusd(2, 5, 6))
                        T.evaluate(tdpbusd(3, 5, 7))
                        for p in T.unroll(per_step):
                            if jb + 1 < nb and (ib * kc + c) * per_step + p < slab:
                                T.evaluate(prefetch_l2(T.address_of(Wp[
                                    (jb + 1) * ACC_N + ((ib * kc + c) * per_step + p) // k4,
                                    ((ib * kc + c) * per_step + p) % k4, 0, 0])))
                    if direct:
                        for a in T.unroll(ACC_M):
                            for b in T.unroll(ACC_N):
                                T.evaluate(tilestore(a * ACC_N + b, T.address_of(
                                    Y[ib * bm + a * TILE_ROWS, jb * bn + b * TILE_ROWS]), n * 4))
                    else:
                        for a in T.unroll(ACC_M):
                            for b in T.unroll(ACC_N):
                                T.evaluate(tilestore(a * ACC_N + b, T.address_of(acc[a * TILE_ROWS, b * TILE_ROWS]),
                                                     bn * 4))
                        for i in range(bm):
                            for j in T.vectorized(bn):
                                Y[ib * bm + i, jb * bn + j] = ep.apply(epilogue, acc[i, j], jb * bn + j,
                                                                       ep.buffers(Scale, Corr, Bias, Qout))
            T.evaluate(tilerelease())

    names = ["X"] + (["Qin"] if quantize_input else []) + ["Wp"] + epilogue.param_names() + ["Y"]
    return keep_params(func, names)
