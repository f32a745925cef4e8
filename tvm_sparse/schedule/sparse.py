"""Schedules of the block-sparse kernels: the design space MetaSchedule searches.

One function per structural choice (a Python ``if`` on a sampled value would not replay from a
trace). Sampled knobs: the token tile (how many 16-token VNNI vectors share one gathered tile and one
weight broadcast) and the unroll depth. Shared steps:

  spmm      loops (r, t, o, m, j) -> (r, mo, t, mc, o, m16, j); (o, m16, j) becomes one call of the
            4x16x4 VNNI intrinsic; the reduction is split off before the tile loop
  gather    computed inside the tile loop into a [4, tile] scratch (a vectorized row copy: an index
            containing a load cannot be tensorized, and gathering straight into the interleaved lane
            layout makes LLVM extract bytes one by one)
  epilogue  computed per (row, token tile) while the accumulators are hot
"""

from __future__ import annotations

from tvm import s_tir

from ..kernels.intrin import SPARSE_VNNI_INTRIN, TRANSPOSE_16X16_INTRIN

Schedule = s_tir.Schedule


def _common(sch: Schedule, rows_outer: bool, knobs: dict | None = None) -> None:
    """``knobs`` fixes the sampled decisions (``token_vectors``, ``unroll``): the untuned default."""
    knobs = knobs or {}
    spmm = sch.get_sblock("spmm")
    r, t, o, m, j = sch.get_loops(spmm)
    m_outer, m16 = sch.split(m, [None, 16])
    vectors = knobs.get("token_vectors")
    extent = int(sch.get(m_outer).extent)
    decision = None if vectors is None else [extent // vectors, vectors]
    # at most 2 vectors (32 tokens) per tile: 4 channels x 64 tokens of int32 accumulators is
    # 1 KiB, where TVM stops placing scratch on the stack and calls its heap workspace per row
    mo, mc = sch.split(
        m_outer, sch.sample_perfect_tile(m_outer, n=2, max_innermost_factor=2, decision=decision)
    )
    outer = [r, mo] if rows_outer else [mo, r]
    sch.reorder(*outer, t, mc, o, m16, j)
    fused = sch.fuse(*outer)
    sch.parallel(fused)

    gather = sch.get_sblock("gather")
    sch.compute_at(gather, t)
    sch.vectorize(sch.fuse(*sch.get_loops(gather)[-2:][1:]))

    transposed = bool(sch.mod["main"].attrs["tvm_sparse.transposed"])
    epilogue = sch.get_sblock("epilogue")
    sch.reverse_compute_at(epilogue, fused, preserve_unit_loops=True)
    e_n, e_m = sch.get_loops(epilogue)[-2:]
    if transposed:  # YT[n, m]: tokens are contiguous
        sch.vectorize(sch.split(e_m, [None, 16])[1])
    else:  # Y[m, n]: a block row's 4 channels are contiguous
        sch.reorder(e_m, e_n)
        sch.unroll(e_n)

    if _is_int8(sch):
        sch.decompose_reduction(spmm, t)
        sch.tensorize(sch.blockize(o), SPARSE_VNNI_INTRIN)
    else:  # fp32: 16 tokens fill a register; each of the tile's 16 weights is one broadcast FMA
        sch.reorder(o, j, m16)
        sch.vectorize(m16)  # before decompose_reduction: vectorize wants the sole writer of acc
        sch.unroll(o)
        sch.unroll(j)
        sch.decompose_reduction(spmm, t)
    unrolls = [0, 16, 64]
    unroll = sch.sample_categorical(
        unrolls, [0.2, 0.4, 0.4], decision=unrolls.index(knobs["unroll"]) if "unroll" in knobs else None
    )
    sch.annotate(fused, "pragma_auto_unroll_max_step", unroll)
    sch.annotate(fused, "pragma_unroll_explicit", 1)

    _schedule_layout_stages(sch, transposed)


def _schedule_layout_stages(sch: Schedule, transposed: bool) -> None:
    """The input stages: nothing to do in the [K, M] layout; else a contiguous pad/quantize pass
    and a transpose in 16x16 byte tiles (one shuffle network each, not one insert per byte)."""
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    transpose = sch.get_sblock("transpose")
    if transposed:
        sch.compute_inline(transpose)
        if "pad" in names:
            sch.compute_inline(sch.get_sblock("pad"))
        return
    if "pad" in names:
        pad = sch.get_sblock("pad")
        p_m, p_k = sch.get_loops(pad)
        sch.parallel(p_m)
        sch.vectorize(p_k)
    t_k, t_m = sch.get_loops(transpose)
    k = int(sch.get(t_k).extent)
    if _is_int8(sch) and k % 16 == 0:
        ko, ki = sch.split(t_k, [None, 16])
        mo, mi = sch.split(t_m, [None, 16])
        sch.reorder(ko, mo, ki, mi)
        sch.parallel(ko)
        sch.tensorize(ki, TRANSPOSE_16X16_INTRIN)
    else:
        sch.parallel(t_k)
        sch.vectorize(t_m)


def _is_int8(sch: Schedule) -> bool:
    return sch.get(sch.get_sblock("gather")).writes[0].source.dtype == "uint8"


def rows_outer(sch: Schedule, knobs: dict | None = None) -> Schedule:
    """Block rows outermost: a row's weights stay in L1 across every token tile."""
    _common(sch, rows_outer=True, knobs=knobs)
    return sch


def tokens_outer(sch: Schedule, knobs: dict | None = None) -> Schedule:
    """Token tiles outermost: a [K, tile] activation slab stays in cache across every row."""
    _common(sch, rows_outer=False, knobs=knobs)
    return sch


SKETCHES = (rows_outer, tokens_outer)
