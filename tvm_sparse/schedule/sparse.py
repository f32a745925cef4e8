"""Schedules of the block-sparse kernels: the design space MetaSchedule searches.

One function per structural choice (a Python ``if`` on a sampled value would not replay from a
trace). The sampled knob is the unroll depth; the token tile follows from the shape. Shared steps:

  spmm      loops (r, t, o, m, j) -> (r, mo, t, o, m32, j), which becomes one call of the 4x32x4
            VNNI intrinsic (4x16x4 where 32 does not divide the tokens); where the kernel writes
            its own transposed activations in swizzled 64-token tiles, the definition's
            (r, t, o, mo, a, b, c, j) -> (r, mo, t, o, a, b, c, j) and the 4x64x4 swizzled
            intrinsic. The reduction is split off before the tile loop
  gather    computed inside the tile loop into a [4, tile] scratch (a vectorized row copy: an index
            containing a load cannot be tensorized, and gathering straight into the interleaved lane
            layout makes LLVM extract bytes one by one)
  epilogue  computed per (row, token tile) while the accumulators are hot
"""

from __future__ import annotations

from tvm import s_tir

from ..kernels.intrin import SPARSE_VNNI_INTRIN, SWIZZLED_VNNI_INTRIN, TRANSPOSE_INTRIN, TRANSPOSE_STORE_INTRIN

Schedule = s_tir.Schedule
UNROLLS = (0, 16, 64)  # pragma_auto_unroll_max_step


def token_tile(padded_tokens: int) -> int:
    """Tokens per gathered tile of a natural-order (unswizzled) input: 32 (2 vectors share each
    weight broadcast, and the 32-token VNNI intrinsic interleaves in 2 shuffles per vector, not 3)
    where they divide the padded tokens. Not a sampled knob: the tensor intrinsic it names would
    not follow a mutated decision. 64 natural-order tokens would need cross-lane shuffles
    (vpermt2b), which cost more than the shared broadcasts save; swizzled tiles need none."""
    return 32 if padded_tokens % 32 == 0 else 16


def _common(sch: Schedule, rows_outer: bool, knobs: dict | None = None) -> None:
    """``knobs`` fixes the sampled decision (``unroll``): the untuned default, or a record's."""
    knobs = knobs or {}
    spmm = sch.get_sblock("spmm")
    swizzled = bool(sch.mod["main"].attrs.get("tvm_sparse.swizzled", False))
    if swizzled:  # the compute definition already tiles tokens by 64: (mo, a, b, c)
        r, t, o, mo, *mt, j = sch.get_loops(spmm)
    else:
        r, t, o, m, j = sch.get_loops(spmm)
        mo, *mt = sch.split(m, [None, token_tile(int(sch.get(m).extent))])
    outer = [r, mo] if rows_outer else [mo, r]
    sch.reorder(*outer, t, o, *mt, j)
    fused = sch.fuse(*outer)
    sch.parallel(fused)

    gather = sch.get_sblock("gather")
    sch.compute_at(gather, t)
    sch.vectorize(sch.fuse(*sch.get_loops(gather)[-2:][1:]))

    epilogue = sch.get_sblock("epilogue")
    sch.reverse_compute_at(epilogue, fused, preserve_unit_loops=True)
    e_n, e_m = sch.get_loops(epilogue)[-2:]
    sch.vectorize(sch.split(e_m, [None, 16])[1])  # YT[n, m]: tokens are contiguous

    if _is_int8(sch):
        sch.decompose_reduction(spmm, t)
        tile = 64 if swizzled else int(sch.get(mt[0]).extent)
        sch.tensorize(sch.blockize(o), SWIZZLED_VNNI_INTRIN if swizzled else SPARSE_VNNI_INTRIN[tile])
    else:  # fp32: 16 tokens fill a register; each of the tile's 16 weights is one broadcast FMA
        mc, m16 = sch.split(mt[0], [None, 16])
        sch.reorder(mc, o, j, m16)
        sch.vectorize(m16)  # before decompose_reduction: vectorize wants the sole writer of acc
        sch.unroll(o)
        sch.unroll(j)
        sch.decompose_reduction(spmm, t)
    unroll = sch.sample_categorical(
        list(UNROLLS), [0.2, 0.4, 0.4], decision=UNROLLS.index(knobs["unroll"]) if "unroll" in knobs else None
    )
    sch.annotate(fused, "pragma_auto_unroll_max_step", unroll)
    sch.annotate(fused, "pragma_unroll_explicit", 1)


def knobs_of(trace) -> dict:
    """The sketch and knobs a trace of this design space was made with. Records are applied by
    these, through the current schedule code, not by replaying their instructions: a record tuned
    before a schedule change (here: 16-token tiles, a sampled token tile) gets today's schedule."""
    get_loops = next(i for i in trace.insts if i.kind.name == "GetLoops")
    reorder = next(i for i in trace.insts if i.kind.name == "Reorder")
    unroll = next(i for i in trace.insts if i.kind.name == "SampleCategorical")
    candidates = [int(c) for c in unroll.attrs[0]]
    sketch = rows_outer if reorder.inputs[0].same_as(get_loops.outputs[0]) else tokens_outer
    return {"sketch": sketch.__name__, "unroll": candidates[int(trace.decisions[unroll])]}


def _layouts(sch: Schedule) -> tuple[bool, bool]:
    """Whether the kernel's input and its output are in the ``[K, M]`` / ``[N, M]`` layout."""
    attrs = sch.mod["main"].attrs
    both = bool(attrs["tvm_sparse.transposed"])
    return (bool(attrs.get("tvm_sparse.x_transposed", both)), bool(attrs.get("tvm_sparse.y_transposed", both)))


def schedule_layout_stages(sch: Schedule) -> None:
    """The layout stages, which no knob touches: nothing to do in the [K, M] layout; else a
    contiguous pad/quantize pass and transposes in 16x16 tiles (one shuffle network each, not one
    insert per element). Applied after a trace is replayed (``finalize``), never recorded in one:
    their intrinsics depend on the epilogue's output type, which records do not fix."""
    x_t, y_t = _layouts(sch)
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    if not y_t:
        _untranspose_in_epilogue(sch)
    transpose = sch.get_sblock("transpose")
    if x_t:
        sch.compute_inline(transpose)
        if "pad" in names:
            sch.compute_inline(sch.get_sblock("pad"))
        return
    if "pad" in names:
        pad = sch.get_sblock("pad")
        p_m, p_k = sch.get_loops(pad)
        sch.parallel(p_m)
        if int(sch.get(p_k).extent) % 16 == 0:  # a whole row as one vector is a 768-lane LLVM vector
            p_k = sch.split(p_k, [None, 16])[1]
        sch.vectorize(p_k)
    _transpose_tiles(sch, transpose)


def _untranspose_in_epilogue(sch: Schedule) -> None:
    """Store each finished [4 channels, tile] block of the epilogue straight to Y[tile, 4 channels]:
    YT shrinks to a scratch tile and the output is written once, not twice."""
    untranspose = sch.get_sblock("untranspose")
    loops = sch.get_loops(sch.get_sblock("epilogue"))
    tile = 1
    for lp in loops[2:]:  # (fused rows x tokens, channels, token vectors, lanes)
        tile *= int(sch.get(lp).extent)
    sch.reverse_compute_at(untranspose, loops[0], preserve_unit_loops=True)
    u_m, u_n = sch.get_loops(untranspose)[-2:]
    y = sch.get(untranspose).writes[0].source
    (m, n), dtype = [int(d) for d in y.shape], y.dtype
    if m % tile == 0 and tile % 16 == 0 and n % 4 == 0:
        sch.tensorize(sch.split(u_m, [None, 16])[1], TRANSPOSE_STORE_INTRIN[dtype])
    else:  # ragged M or N: the last tile is predicated, which no intrinsic matches
        sch.unroll(u_n)


def _transpose_tiles(sch: Schedule, block) -> None:
    """A 2-D transposing copy: 16x16 tiles through the shuffle intrinsic where both extents allow."""
    outer, inner = sch.get_loops(block)
    dtype = sch.get(block).writes[0].source.dtype
    if int(sch.get(outer).extent) % 16 == 0 and int(sch.get(inner).extent) % 16 == 0 and dtype in TRANSPOSE_INTRIN:
        oo, oi = sch.split(outer, [None, 16])
        io, ii = sch.split(inner, [None, 16])
        sch.reorder(oo, io, oi, ii)
        sch.parallel(oo)
        sch.tensorize(oi, TRANSPOSE_INTRIN[dtype])
    else:  # ragged M (not a multiple of 16) or N: a plain vectorized copy
        sch.parallel(outer)
        sch.vectorize(inner)


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


def in_chain(sch: Schedule) -> bool:
    """Whether the kernel reads, or writes in swizzled tiles, the u8 ``[N, M]`` activations a chain hands
    from one sparse kernel to the next (BERT's FFN)."""
    return _layouts(sch)[0] or bool(sch.mod["main"].attrs.get("tvm_sparse.y_swizzled", False))


def sketch_for(sch: Schedule, sketch: str) -> str:
    """The sketch to apply: a record's (or the default), except in a chain, where both kernels split the
    tokens between threads (``tokens_outer``) so that each thread reads the lines it wrote itself. With the
    consumer splitting rows, every thread gathered lines the other core had just written: bert-base 90%'s
    second FFN kernel ran 1.12x faster on 2 threads than on 1, 1.32x with the tokens split (the whole
    model 1.49x -> 1.65x); on one thread both sketches time the same there."""
    return tokens_outer.__name__ if in_chain(sch) else sketch
