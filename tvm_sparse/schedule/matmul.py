"""A hand schedule for attention's batched fp32 matmuls (``Q @ K^T`` + mask, ``P @ V``), seeded into
the graph's tuning database and applied at compile to any such matmul left without a record.

Per (batch, head) and block of 8 query rows: output tiles of 8 rows x 16 lanes are accumulated in
registers over the whole reduction (each step: 8 broadcasts of the left operand, one vector load of
the right, 8 FMAs), then written once through a small scratch with the fused epilogue (the mask add)
applied on the way out. Shape-generic: a batch of 2 or 4 gets the same code as batch 1, where
MetaSchedule's records are per shape (untuned at batch 2, bert-mini's matmuls ran 4-6x slower).
Measured on Zen 5, bert-base [12, 128, 128] x [12, 128, 64]: about 225 us, against 250-300 us for
MetaSchedule's best after 256 trials.
"""

from __future__ import annotations

from tvm import s_tir, tirx

ROWS, LANES = 8, 16


def matches(func: tirx.PrimFunc) -> bool:
    """A batched fp32 matmul block (spatial loops, one reduction last) whose rows 8 divide and whose
    columns 16 lanes divide, optionally followed by one elementwise block."""
    try:
        sch = s_tir.Schedule(func)
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
        if not 1 <= len(blocks) <= 2 or sch.get(blocks[0]).name_hint != "matmul":
            return False
        block = sch.get(blocks[0])
        kinds = [int(iv.iter_type) for iv in block.iter_vars]
        if len(kinds) < 3 or kinds[-1] != 2 or any(k != 0 for k in kinds[:-1]):
            return False
        if any(b.source.dtype != "float32" for b in [*block.reads, *block.writes]):
            return False
        extents = [int(sch.get(lp).extent) for lp in sch.get_loops(blocks[0])]
        return extents[-3] % ROWS == 0 and extents[-2] % LANES == 0
    except (s_tir.ScheduleError, ValueError, KeyError, TypeError):
        return False


def schedule_matmul(sch: s_tir.Schedule) -> s_tir.Schedule:
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    mm = sch.get_sblock("matmul")
    *batch, i, j, k = sch.get_loops(mm)
    io, ii = sch.split(i, [None, ROWS])
    jo, j16 = sch.split(j, [None, LANES])
    sch.reorder(*batch, io, jo, k, ii, j16)
    tile = sch.cache_write(mm, 0, "global")  # the 8x16 accumulators: registers, one store per tile
    sch.reverse_compute_at(tile, jo)
    sch.vectorize(sch.split(sch.get_loops(tile)[-1], [None, LANES])[1])
    if len(names) > 1:  # the epilogue reads the tile while it is hot
        epilogue = sch.get_sblock(names[-1])
        sch.reverse_compute_at(epilogue, jo)
        sch.vectorize(sch.split(sch.get_loops(epilogue)[-1], [None, LANES])[1])
    sch.parallel(sch.fuse(*batch, io))
    sch.vectorize(j16)
    sch.unroll(ii)
    sch.decompose_reduction(mm, k)
    return sch
