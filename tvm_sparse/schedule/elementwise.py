"""A hand schedule for purely elementwise functions (adds, casts, reshapes feeding them): every
block inlined into the last, its loops fused, split into 16-lane vectors, the vectors in parallel.

The fallback for elementwise work no record covers, e.g. the embedding sum left behind when the
residual add + LayerNorm fusion takes the outer add: memory-bound code gains nothing from a search,
and a refusal to compile for want of one would help nobody.
"""

from __future__ import annotations

from tvm import s_tir, tirx

LANES = 16


def matches(func: tirx.PrimFunc) -> bool:
    """Only spatial blocks, all of the same element count, the last writing the output. Not a pure
    reshape: those lower to views of their input, and a schedule would make them a copy."""
    from tvm import relax

    if relax.analysis.has_reshape_pattern(func):
        return False
    try:
        sch = s_tir.Schedule(func)
        blocks = [sch.get(b) for b in sch.get_child_blocks(sch.get_sblock("root"))]
        if not blocks or any(int(iv.iter_type) != 0 for b in blocks for iv in b.iter_vars):
            return False
        sizes = {_size(b) for b in blocks}
        return len(sizes) == 1 and sizes.pop() % LANES == 0
    except (s_tir.ScheduleError, ValueError):
        return False


def _size(block) -> int:
    n = 1
    for iv in block.iter_vars:
        n *= int(iv.dom.extent)
    return n


def schedule_elementwise(sch: s_tir.Schedule) -> s_tir.Schedule:
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    for block in blocks[:-1]:
        sch.compute_inline(block)
    loop = sch.fuse(*sch.get_loops(blocks[-1]))
    outer, lanes = sch.split(loop, [None, LANES])
    sch.parallel(outer)
    sch.vectorize(lanes)
    return sch
