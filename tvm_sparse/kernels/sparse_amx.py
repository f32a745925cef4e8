"""4x1 block-sparse int8 on AMX tiles: ``YT[N, M] = epilogue(W[N, K] @ XT[K, M])``, W 4x1-sparse.

A 4x1 block row is 4 output channels: too thin for a 16-row tile. ``format.union16`` groups 4 block rows
into 16 channels and packs the weights over the union of their nonzero input channels, 64 at a time (a
*chunk*), as dense s8 tiles. Per group, per 64 tokens, per chunk:

  gather     the chunk's 64 activation rows of ``XT[K, M]`` (64 tokens each), interleaved in fours
             into 4 u8 B tiles (16 k-quads x 16 tokens x 4 bytes): 8 in-lane unpacks per 4 rows
             (``intrin._unpack``, the VNNI kernel's swizzled interleave), into one of two 4 KiB
             scratches, a quarter at a time between the previous chunk's tile products
  product    ``tdpbsud`` (A signed: the weight tile, B unsigned: activations) into 4 accumulator
             tiles of 16 channels x 16 tokens: C is ``[N, M]``, the layout chained sparse layers use
  epilogue   after the last chunk: the 4 C tiles to a 4 KiB scratch, then the epilogue (the VNNI
             kernel's: s32, dequantize + bias, GELU, requantize to u8), 16 tokens a vector, stored to
             the group's rows through ``perm`` (the pack may reorder channels to shrink unions)

Tiles: tmm0..3 accumulators, tmm4 the weight tile, tmm5..7 activation tiles. Token order: the in-lane
interleave puts, in B tile v of a 64-token block, token ``16 L + 4 v + c`` at column ``4 L + c``, so
the accumulators hold the tokens *swizzled* (``intrin.swizzled_position``) against the gathered rows. A
swizzled input gives them in natural order. Where the output wants the input's order, either the input is
swizzled first (one permute per 64 bytes, once per call) or the epilogue reorders each row (4 shuffles per
16 outputs), whichever touches fewer bytes (K x M against N x M).
Written already scheduled, like ``amx.dense_amx``: its loops are the schedule.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

from ..format.union16 import CHUNK, GROUP, PackedUnion16
from . import epilogue as ep
from .amx import TILE_BYTES, TILE_ROWS, configure_tiles, task_count, tileload, tilerelease, tilestore, tilezero
from .epilogue import Epilogue
from .intrin import _unpack, swizzled_position
from .signature import keep_params
from .vector import pick

TOKENS = 64  # tokens per pass: 4 accumulator tiles of 16
ACC_TILES = TOKENS // TILE_ROWS
A_TILE = 4
B_TILES = (5, 6, 7)


def tdpbsud(acc: int, a: int, b: int):
    """``C[16, 16] s32 += A[16, 64] s8 . B[16, 64] u8`` (4-byte dot products): signed A, unsigned B."""
    return T.call_llvm_intrin("void", "llvm.x86.tdpbsud", T.int8(acc), T.int8(a), T.int8(b))


def fits(m: int, k: int, n: int) -> bool:
    """Whether ``sparse_amx`` takes this shape: whole 64-token blocks and 16-channel groups."""
    return m % TOKENS == 0 and n % GROUP == 0 and k > 0


def sparse_amx(m: int, k: int, n: int, epilogue: Epilogue = Epilogue.S32, x_swizzled: bool = False,
               y_swizzled: bool = False, tasks: int | None = None) -> tirx.PrimFunc:
    """The 4x1-sparse int8 Linear on AMX, ``[K, M] -> [N, M]`` (tokens contiguous on both sides).

    Parameters: ``X[k, m]`` u8, ``ChunkPtr, Kidx, Values, Perm`` (``PackedUnion16.arrays()``, the
    number of chunks is a symbolic dimension, so one build serves every weight of the shape), the
    epilogue's ``Scale, Corr, Bias[n]`` / ``Qout[2]`` exactly as ``sparse_int8`` takes them (indexed by
    the original channel), ``Y[n, m]``. ``x_swizzled`` / ``y_swizzled``: that side holds 64-token
    blocks in the swizzled order the VNNI kernel chains with (``intrin.swizzled_position``).
    ``m`` must be a multiple of 64 and ``n`` of 16.

    ``tasks``: parallel iterations (at most, default 16: the largest divisor of the group count not
    above it), each a run of consecutive groups software-pipelined as one stream. Pass the thread
    count: each task loads the tile configuration and fills its pipeline once (1 thread, 768x3072 at
    90%, one version of the kernel: one task per group 248 us, 16 tasks 228, one task 215)."""
    if not fits(m, k, n):
        raise ValueError(f"sparse_amx needs m % {TOKENS} == 0 and n % {GROUP} == 0, got m={m} k={k} n={n}")
    groups, passes = n // GROUP, m // TOKENS
    tasks = task_count(groups, tasks)
    per = groups // tasks
    out_dtype = epilogue.out_dtype
    # the accumulators hold tokens swizzled against the order the tiles are gathered from. Where that
    # is the output's order, either the input is swizzled first (one pass over X: K x M) or each
    # output row is reordered (4 cross-tile shuffles per 16 outputs: N x M), whichever is smaller
    reorder = x_swizzled == y_swizzled
    preswizzle = reorder and k <= n
    reorder_rows = reorder and not preswizzle

    @T.macro
    def gather(X, Kidx, bt, c, p, b, part):
        """Quarter ``part`` of chunk ``c``'s activations (pass ``p``): k-quads ``4 part .. 4 part + 3``, as
        rows of the 4 B tiles in ``bt[b]``."""
        for qq in range(4):  # k-quad q: 4 gathered rows -> row q of the 4 B tiles
            for v in T.unroll(ACC_TILES):
                bt[b, v, part * 4 + qq, T.ramp(0, 1, 64)] = _unpack(
                    _unpack(X.vload([Kidx[c, 16 * part + 4 * qq], p * TOKENS], "uint8x64"),
                            X.vload([Kidx[c, 16 * part + 4 * qq + 1], p * TOKENS], "uint8x64"), 1, v // 2),
                    _unpack(X.vload([Kidx[c, 16 * part + 4 * qq + 2], p * TOKENS], "uint8x64"),
                            X.vload([Kidx[c, 16 * part + 4 * qq + 3], p * TOKENS], "uint8x64"), 1, v // 2),
                    2, v % 2)

    @T.macro
    def products(Values, bt, c, b):
        """Chunk ``c``'s weight tile times the 4 B tiles in ``bt[b]``, into the 4 accumulators."""
        T.evaluate(tileload(A_TILE, T.address_of(Values[c, 0, 0]), TILE_BYTES))
        for v in T.unroll(ACC_TILES):
            T.evaluate(tileload(B_TILES[0] + v % 3, T.address_of(bt[b, v, 0, 0]), TILE_BYTES))
            T.evaluate(tdpbsud(v, A_TILE, B_TILES[0] + v % 3))

    @T.macro
    def group(X, ChunkPtr, Kidx, Values, Perm, Scale, Corr, Bias, Qout, Y, bt, acc, row, g0, gi):
        """Group ``gi``: per pass, its products over all chunks (at least one: see the pack), then its
        epilogue. Software-pipelined: chunk c + 1 is gathered before chunk c's tile loads, so those
        read stores issued a whole gather earlier (a tile load cannot take data from the store
        buffer: it waits until the stores reach the cache)."""
        for p in range(passes):
            for t in T.unroll(ACC_TILES):
                T.evaluate(tilezero(t))
            # this item's first chunk is in bt[base], base = (chunks before it in the task) % 2: the
            # previous item's tail (or the task's start) gathered it
            for c in range(ChunkPtr[gi] + 1, ChunkPtr[gi + 1]):
                T.evaluate(tileload(A_TILE, T.address_of(Values[c - 1, 0, 0]), TILE_BYTES))
                for v in T.unroll(ACC_TILES):
                    gather(X, Kidx, bt, c, p, (c - ChunkPtr[gi] + (
                        (ChunkPtr[gi] - ChunkPtr[g0]) * passes + p * (ChunkPtr[gi + 1] - ChunkPtr[gi]))) % 2, v)
                    T.evaluate(tileload(B_TILES[0] + v % 3, T.address_of(bt[(c - 1 - ChunkPtr[gi] + (
                        (ChunkPtr[gi] - ChunkPtr[g0]) * passes + p * (ChunkPtr[gi + 1] - ChunkPtr[gi]))) % 2, v, 0, 0]),
                        TILE_BYTES))
                    T.evaluate(tdpbsud(v, A_TILE, B_TILES[0] + v % 3))
            # the tail: the last chunk's products beside the next item's first gather (past the last
            # group: a harmless in-bounds gather, once per task)
            T.evaluate(tileload(A_TILE, T.address_of(Values[ChunkPtr[gi + 1] - 1, 0, 0]), TILE_BYTES))
            for v in T.unroll(ACC_TILES):
                gather(X, Kidx, bt, T.min(ChunkPtr[gi + (p + 1) // passes], Kidx.shape[0] - 1), (p + 1) % passes,
                       (ChunkPtr[gi + 1] - ChunkPtr[gi] + (
                           (ChunkPtr[gi] - ChunkPtr[g0]) * passes + p * (ChunkPtr[gi + 1] - ChunkPtr[gi]))) % 2, v)
                T.evaluate(tileload(B_TILES[0] + v % 3, T.address_of(bt[(ChunkPtr[gi + 1] - 1 - ChunkPtr[gi] + (
                    (ChunkPtr[gi] - ChunkPtr[g0]) * passes + p * (ChunkPtr[gi + 1] - ChunkPtr[gi]))) % 2, v, 0, 0]),
                    TILE_BYTES))
                T.evaluate(tdpbsud(v, A_TILE, B_TILES[0] + v % 3))
            for t in T.unroll(ACC_TILES):
                T.evaluate(tilestore(t, T.address_of(acc[0, t * TILE_ROWS]), TOKENS * 4))
            for r in range(GROUP):
                if reorder_rows:  # the row in the output's token order first (a 256-byte scratch)
                    for L in T.unroll(4):
                        row[T.ramp(L * 16, 1, 16)] = _reordered(acc, r, L)
                    for t in T.vectorized(TOKENS):
                        Y[Perm[gi * GROUP + r], p * TOKENS + t] = ep.apply(
                            epilogue, row[t], Perm[gi * GROUP + r], ep.buffers(Scale, Corr, Bias, Qout))
                else:
                    for t in T.vectorized(TOKENS):
                        Y[Perm[gi * GROUP + r], p * TOKENS + t] = ep.apply(
                            epilogue, acc[r, t], Perm[gi * GROUP + r], ep.buffers(Scale, Corr, Bias, Qout))

    @T.prim_func(s_tir=True)
    def func(x: T.handle, chunk_ptr: T.handle, kidx: T.handle, values: T.handle, perm: T.handle,
             scale: T.handle, corr: T.handle, bias: T.handle, qout: T.handle, y: T.handle) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "tvm_sparse.amx": True})
        nc = T.int32()
        X = T.match_buffer(x, (k, m), "uint8")
        ChunkPtr = T.match_buffer(chunk_ptr, (groups + 1,), "int32")
        Kidx = T.match_buffer(kidx, (nc, CHUNK), "int32")
        Values = T.match_buffer(values, (nc, GROUP, CHUNK), "int8")
        Perm = T.match_buffer(perm, (n,), "int32")
        Scale = T.match_buffer(scale, (n,), "float32")
        Corr = T.match_buffer(corr, (n,), "int32")
        Bias = T.match_buffer(bias, (n,), "float32")
        Qout = T.match_buffer(qout, (2,), "float32")
        Y = T.match_buffer(y, (n, m), out_dtype)
        # the input in the other token order: the accumulators then hold the output's. One permute per
        # 64 bytes (vpermps: tokens move in fours), once per call
        Xs = T.alloc_buffer((k, m) if preswizzle else (1, 1), "uint8")
        if preswizzle:
            for kk in T.parallel(k):
                for b in range(passes):
                    Xs[kk, T.ramp(b * TOKENS, 1, TOKENS)] = T.Shuffle(
                        [X.vload([kk, b * TOKENS], "uint8x64")], [swizzled_position(i) for i in range(TOKENS)])
        for task in T.parallel(tasks):
            configure_tiles()
            # two chunks' B tiles, whole (1 KiB each: a tile load streams; 8 KiB, once per task), and
            # one pass's accumulators (4 KiB, on the stack)
            bt = T.alloc_buffer((2, ACC_TILES, 16, 64), "uint8")
            acc = T.alloc_buffer((GROUP, TOKENS), "int32")
            row = T.alloc_buffer((TOKENS,), "int32")
            for part in T.unroll(4):
                gather(pick(preswizzle, Xs, X), Kidx, bt, ChunkPtr[task * per], 0, 0, part)
            for j in range(per):
                group(pick(preswizzle, Xs, X), ChunkPtr, Kidx, Values, Perm, Scale, Corr, Bias, Qout, Y, bt, acc, row,
                      task * per, task * per + j)
            T.evaluate(tilerelease())

    names = ["X", "ChunkPtr", "Kidx", "Values", "Perm"] + epilogue.param_names() + ["Y"]
    return keep_params(func, names)


def _reordered(acc, r, L):
    """Tokens ``16 L .. 16 L + 15`` (the output's order) of accumulator row ``r``: 4 from each tile (tile v
    column ``4 L + c`` holds token ``16 L + 4 v + c``)."""
    tiles = [acc.vload([r, v * TILE_ROWS], "int32x16") for v in range(ACC_TILES)]
    return T.Shuffle(tiles, [v * 16 + L * 4 + c for v in range(ACC_TILES) for c in range(4)])


def arguments(packed: PackedUnion16) -> list:
    """``packed``'s arrays in the kernel's parameter order (after X)."""
    return packed.arrays()
