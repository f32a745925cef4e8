"""VNNI tensor intrinsics for the 4x1 block-sparse kernel.

``vpdpbusd acc, a, b`` adds, per 32-bit lane, the dot product of 4 unsigned bytes of ``a`` with 4
signed bytes of ``b``. The 4x1 sparse kernel puts 16 *tokens* on the lanes (u8 activations, the
vector operand) and broadcasts the 4 *weights* of one output channel (s8) to every lane: the
opposite roles of TVM's built-in ``dot_16x4_vnni``. LLVM 17+ types the intrinsic's byte
operands as ``<64 x i8>`` (the built-in one passes ``<16 x i32>`` and fails verification).
One gathered activation tile feeds the 4 output channels of a block row: per 16 tokens,
2 or 3 byte shuffles and 4 ``vpdpbusd``.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from .vector import vpdpbusd

# by tokens per call (names are in records: keep them)
SPARSE_VNNI_INTRIN = {16: "tvm_sparse_vnni_4x16x4", 32: "tvm_sparse_vnni_4x32x4"}
# interleave 4 gathered rows of 16 tokens ([k][token]) into [token][k], the lane layout of vpdpbusd
INTERLEAVE = [(i % 4) * 16 + i // 4 for i in range(64)]


def _pair_interleave(tokens: int, half) -> list:
    """Indices into [row0 | row1 | row2 | row3] (``tokens`` bytes each) of the vpdpbusd operand for
    tokens ``16 * half`` .. ``16 * half + 15``: byte 4t + j is row j's token (``half``: the
    unrolled loop's variable)."""
    return [half * 16 + (j * tokens + t) for t in range(16) for j in range(4)]


def _sparse_vnni_impl(tokens: int, operand):
    """The body both sparse intrinsics share: per 16 tokens, ``operand(G, v)`` (the 4 gathered rows'
    bytes in vpdpbusd's lane layout) times each output channel's 4 broadcast weights."""

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, w: T.handle, c: T.handle) -> None:
        gs = T.int32()
        ws = T.int32()
        cs = T.int32()
        G = T.match_buffer(a, (4, tokens), "uint8", offset_factor=1, strides=[gs, 1])
        W = T.match_buffer(w, (4, 4), "int8", offset_factor=1, strides=[ws, 1])
        C = T.match_buffer(c, (4, tokens), "int32", offset_factor=1, strides=[cs, 1])
        with T.sblock("root"):
            T.reads(C[0:4, 0:tokens], G[0:4, 0:tokens], W[0:4, 0:4])
            T.writes(C[0:4, 0:tokens])
            for v in T.unroll(tokens // 16):  # unrolled: shuffle indices must be constants
                for o in T.unroll(4):
                    C[o, T.ramp(v * 16, 1, 16)] = vpdpbusd(
                        C.vload([o, v * 16], "int32x16"),
                        operand(G, v),
                        T.reinterpret(
                            T.broadcast(T.reinterpret(W.vload([o, 0], "int8x4"), dtype="int32"), 16),
                            dtype="int8x64",
                        ),
                    )

    return impl


def _sparse_vnni_intrin(tokens: int):
    """4 channels x ``tokens`` tokens x 4 gathered rows. With 32 tokens the 4 rows are joined in
    pairs first (row 0 with 1, 2 with 3: ``vinserti64x4`` from memory) and each 16-token half is one
    ``vpermt2b`` of the two pairs: 2 shuffles per 4 ``vpdpbusd`` where 16 tokens take 3 (4 sources)."""

    @T.prim_func(s_tir=True)
    def desc(
        G: T.Buffer((4, tokens), "uint8", offset_factor=1),
        W: T.Buffer((4, 4), "int8", offset_factor=1),
        C: T.Buffer((4, tokens), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:4, 0:tokens], G[0:4, 0:tokens], W[0:4, 0:4])
            T.writes(C[0:4, 0:tokens])
            for o, i, j in T.grid(4, tokens, 4):
                with T.sblock("update"):
                    vo, vi, vj = T.axis.remap("SSR", [o, i, j])
                    C[vo, vi] = C[vo, vi] + T.cast(G[vj, vi], "int32") * T.cast(W[vo, vj], "int32")

    def operand(G, half: int):
        # written inline, not bound to a name: TVMScript makes an assigned name a mutable local,
        # which lowers to a heap workspace per call (LLVM CSEs the copies)
        rows = [G.vload([j, 0], f"uint8x{tokens}") for j in range(4)]
        if tokens == 16:
            return T.Shuffle(rows, [T.int32(i) for i in INTERLEAVE])
        pairs = [T.Shuffle(rows[p:p + 2], [T.int32(i) for i in range(2 * tokens)]) for p in (0, 2)]
        return T.Shuffle(pairs, _pair_interleave(tokens, half))

    return desc, _sparse_vnni_impl(tokens, operand)


for _tokens, _name in SPARSE_VNNI_INTRIN.items():
    TensorIntrin.register(_name, *_sparse_vnni_intrin(_tokens), override=True)


# 64 tokens in "swizzled" order: token 16a + 4b + c of the tile is read from position 16b + 4a + c
# of the gathered rows (a 4x4 transpose of 4-token groups; it is its own inverse). In that order the
# operand interleave is 8 in-lane unpacks per 4 vectors (vpunpck{l,h}{bw,wd}), which this core runs
# beside vpdpbusd almost for free: ~1.03 cycles per vpdpbusd, against ~1.35 with the natural-order
# interleave's vinserti64x4 + vpermt2b (microbenchmarked on Zen 5).
# Kernels whose input is written swizzled (the row-major pad stage does it for free) use it.
SWIZZLED_VNNI_INTRIN = "tvm_sparse_vnni_4x64x4_swizzled"


def swizzled_position(p):
    """The position of token ``p`` in a swizzled 64-token tile (and back: it is an involution)."""
    return p // 64 * 64 + p % 16 // 4 * 16 + p % 64 // 16 * 4 + p % 4


def _unpack(x, y, width: int, high) -> T.Shuffle:
    """vpunpck{l,h}{bw,wd} of two 64-byte vectors: per 128-bit lane, ``width``-byte elements of the
    low (``high`` = 0) or high (1) half of x and y, alternating. ``high`` may be an unrolled loop's
    variable."""
    idx = []
    for lane in range(4):
        for e in range(8 // width):
            src = high * 8 + lane * 16 + e * width
            idx += [src + b for b in range(width)] + [src + 64 + b for b in range(width)]
    return T.Shuffle([x, y], idx)


def _swizzled_vnni_intrin():
    @T.prim_func(s_tir=True)
    def desc(
        G: T.Buffer((4, 64), "uint8", offset_factor=1),
        W: T.Buffer((4, 4), "int8", offset_factor=1),
        C: T.Buffer((4, 64), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:4, 0:64], G[0:4, 0:64], W[0:4, 0:4])
            T.writes(C[0:4, 0:64])
            for o, a, b, c, j in T.grid(4, 4, 4, 4, 4):
                with T.sblock("update"):
                    vo, va, vb, vc, vj = T.axis.remap("SSSSR", [o, a, b, c, j])
                    C[vo, va * 16 + vb * 4 + vc] = C[vo, va * 16 + vb * 4 + vc] + T.cast(
                        G[vj, vb * 16 + va * 4 + vc], "int32") * T.cast(W[vo, vj], "int32")

    def operand(G, v: int):
        # unpacking bytes then words of rows (0, 1) and (2, 3) leaves, in 128-bit lane L of vector
        # v, the 4 rows' bytes at positions 16L + 4v .. 16L + 4v + 3: tokens 16v + 4L + c
        rows = [G.vload([j, 0], "uint8x64") for j in range(4)]
        return _unpack(_unpack(rows[0], rows[1], 1, v // 2), _unpack(rows[2], rows[3], 1, v // 2), 2, v % 2)

    return desc, _sparse_vnni_impl(64, operand)


TensorIntrin.register(SWIZZLED_VNNI_INTRIN, *_swizzled_vnni_intrin(), override=True)


# TVM's built-in dense intrinsic (16 output channels x 4 bytes of K, one broadcast u8 activation
# quad), repaired: LLVM now types vpdpbusd's byte operands as <64 x i8>. Registered under our own
# name: TVM's module registers the broken one under its name on import (30 s, and a clash), and
# the dense design space names this intrinsic explicitly.
DENSE_VNNI_INTRIN = "tvm_sparse_dense_vnni_16x4"
@T.prim_func(s_tir=True)
def _dense_vnni_desc(
    A: T.Buffer((4,), "uint8", offset_factor=1),
    B: T.Buffer((16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        for i, k in T.grid(16, 4):
            with T.sblock("update"):
                vi, vk = T.axis.remap("SR", [i, k])
                C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def _dense_vnni_impl(
    A: T.Buffer((4,), "uint8", offset_factor=1),
    B: T.Buffer((16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        C[T.ramp(T.int32(0), 1, 16)] = vpdpbusd(
            C.vload([0], dtype="int32x16"),
            T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "uint8x4"), dtype="int32"), 16), dtype="uint8x64"),
            B.vload([0, 0], dtype="int8x64"),
        )


TensorIntrin.register(DENSE_VNNI_INTRIN, _dense_vnni_desc, _dense_vnni_impl, override=True)


# 16x16 transposes: the layout changes of the row-major kernels (X[M, K] -> XT[K, M] in bytes,
# YT[N, M] -> Y[M, N] in 32-bit words). Left to itself LLVM turns a strided copy into one load or
# insert per element. Bytes: one 16-source shuffle per row, which LLVM lowers to vpermt2b well.
# 32-bit words: 4 rounds of 2-source shuffles (round b swaps bit b of the row and column index),
# one vpermt2d each: 4 per row instead of 16 inserts.
TRANSPOSE_INTRIN = {"uint8": "tvm_sparse_transpose_u8_16x16", "int32": "tvm_sparse_transpose_i32_16x16",
                    "float32": "tvm_sparse_transpose_f32_16x16"}  # names are in records: keep them


def _transpose_desc(rows: int, cols: int, dtype: str, block: str):
    """What a transposing copy of a strided [rows, cols] tile to [cols, rows] computes."""

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle) -> None:
        sa = T.int32()
        sb = T.int32()
        A = T.match_buffer(a, (rows, cols), dtype, offset_factor=1, strides=[sa, 1])
        B = T.match_buffer(b, (cols, rows), dtype, offset_factor=1, strides=[sb, 1])
        with T.sblock("root"):
            T.reads(A[0:rows, 0:cols])
            T.writes(B[0:cols, 0:rows])
            for i, j in T.grid(cols, rows):
                with T.sblock(block):
                    vi, vj = T.axis.remap("SS", [i, j])
                    B[vi, vj] = A[vj, vi]

    return desc


def _transpose_intrin(dtype: str):
    vec = f"{dtype}x16"
    desc = _transpose_desc(16, 16, dtype, "transpose")

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle) -> None:
        sa = T.int32()
        sb = T.int32()
        A = T.match_buffer(a, (16, 16), dtype, offset_factor=1, strides=[sa, 1])
        B = T.match_buffer(b, (16, 16), dtype, offset_factor=1, strides=[sb, 1])
        with T.sblock("root"):
            T.reads(A[0:16, 0:16])
            T.writes(B[0:16, 0:16])
            for i in T.unroll(16):
                B[i, T.ramp(0, 1, 16)] = _transposed_row(A, i, vec)

    return desc, impl


def _transposed_row(A, i, vec: str):
    """Row ``i`` (a loop variable) of A^T as one expression of A's 16 row loads; LLVM shares the
    parts common to all rows once the loop is unrolled."""
    rows = [A.vload([r, 0], vec) for r in range(16)]
    if vec.startswith("uint8"):
        return T.Shuffle(rows, [T.int32(j * 16) + i for j in range(16)])
    whole = T.Shuffle(_transpose_network(rows), [T.int32(x) for x in range(256)])  # rows of A^T, end to end
    return T.Shuffle([whole], [i * 16 + c for c in range(16)])


def _transpose_network(rows: list) -> list:
    for b in range(4):
        d, new = 1 << b, list(rows)
        for r in range(16):
            if not r & d:  # lanes 0..15 pick from rows[r], 16..31 from rows[r + d]
                lo = [c if not c & d else 16 + c - d for c in range(16)]
                hi = [c + d if not c & d else 16 + c for c in range(16)]
                new[r] = T.Shuffle([rows[r], rows[r + d]], [T.int32(x) for x in lo])
                new[r + d] = T.Shuffle([rows[r], rows[r + d]], [T.int32(x) for x in hi])
        rows = new
    return rows


for _dt, _name in TRANSPOSE_INTRIN.items():
    TensorIntrin.register(_name, *_transpose_intrin(_dt), override=True)


# The row-major epilogue's store: the 4 channels x 16 tokens a block row just finished (tokens on
# the lanes) go out as 16 rows of 4 channels, Y[token, n:n+4]. Done while the values are in
# registers, it replaces a second pass over the whole output (YT[N, M] -> Y[M, N]).
TRANSPOSE_STORE_INTRIN = {dt: f"tvm_sparse_transpose_store_{dt}_4x16" for dt in ("uint8", "int32", "float32")}


def _transpose_store_intrin(dtype: str):
    desc = _transpose_desc(4, 16, dtype, "untranspose")

    @T.prim_func(s_tir=True)
    def impl_u8(a: T.handle, b: T.handle) -> None:  # 16 bytes in all: one 4-source shuffle a token
        sa = T.int32()
        sb = T.int32()
        A = T.match_buffer(a, (4, 16), dtype, offset_factor=1, strides=[sa, 1])
        B = T.match_buffer(b, (16, 4), dtype, offset_factor=1, strides=[sb, 1])
        with T.sblock("root"):
            T.reads(A[0:4, 0:16])
            T.writes(B[0:16, 0:4])
            for i in T.unroll(16):
                B[i, T.ramp(0, 1, 4)] = T.Shuffle(_rows(A, dtype), [i, i + 16, i + 32, i + 48])

    @T.prim_func(s_tir=True)
    def impl_32(a: T.handle, b: T.handle) -> None:
        sa = T.int32()
        sb = T.int32()
        A = T.match_buffer(a, (4, 16), dtype, offset_factor=1, strides=[sa, 1])
        B = T.match_buffer(b, (16, 4), dtype, offset_factor=1, strides=[sb, 1])
        with T.sblock("root"):
            T.reads(A[0:4, 0:16])
            T.writes(B[0:16, 0:4])
            # register j, 128-bit lane l of the in-lane transpose: the 4 channels of token 4l + j
            for lane in T.unroll(4):  # unrolled: shuffle indices must be constants
                for j in T.unroll(4):
                    B[lane * 4 + j, T.ramp(0, 1, 4)] = T.Shuffle(
                        _transpose_4x4_in_lanes(_rows(A, dtype)), [j * 16 + lane * 4 + c for c in range(4)]
                    )

    return desc, impl_u8 if dtype == "uint8" else impl_32


def _rows(A, dtype: str) -> list:
    return [A.vload([c, 0], f"{dtype}x16") for c in range(4)]


def _transpose_4x4_in_lanes(rows: list) -> list:
    """4x4 transposes of 32-bit words inside each 128-bit lane of 4 registers: 8 two-source
    shuffles (vpunpck{l,h}{dq,qdq}) instead of one 4-source shuffle per output quad."""

    def unpack(a, b, words: int, high: bool) -> T.Shuffle:  # words: 1 = dwords, 2 = qwords
        idx = []
        for lane in range(4):
            base = lane * 4 + (2 if high else 0)
            idx += [base, 16 + base, base + 1, 17 + base] if words == 1 else [base, base + 1, 16 + base, 17 + base]
        return T.Shuffle([a, b], [T.int32(x) for x in idx])

    t0, t1 = unpack(rows[0], rows[1], 1, False), unpack(rows[0], rows[1], 1, True)
    t2, t3 = unpack(rows[2], rows[3], 1, False), unpack(rows[2], rows[3], 1, True)
    return [unpack(t0, t2, 2, False), unpack(t0, t2, 2, True), unpack(t1, t3, 2, False), unpack(t1, t3, 2, True)]


for _dt, _name in TRANSPOSE_STORE_INTRIN.items():
    TensorIntrin.register(_name, *_transpose_store_intrin(_dt), override=True)
