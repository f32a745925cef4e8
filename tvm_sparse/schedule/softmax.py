"""A hand schedule for the fused softmax of attention (TOPI's fast softmax, optionally followed by
the exporter's ``where(isnan(p), 0, p)`` guard), seeded into the graph's tuning database.

Per row of scores: max and sum reduce 16 lanes at a time (``rfactor``), the exponentials stay in a
row-sized scratch, the normalization is one vectorized pass. MetaSchedule, given 256 trials, found
schedules 3x slower than this one on BERT's [heads, 128, 128] scores; as a database record it is
also the evolutionary search's starting point.
"""

from __future__ import annotations

from tvm import s_tir, tirx

LANES = 16
REDUCTIONS = ("T_softmax_maxelem", "T_softmax_expsum")
INLINED = ("compute", "T_softmax_norm", "T_softmax_delta")  # isnan, divide, x - max


def matches(func: tirx.PrimFunc) -> bool:
    """A fused softmax over a last axis that 16 lanes divide into 2 chunks or more (with one, the
    rfactor'd loops are not a chain and the reorder below is refused)."""
    try:
        sch = s_tir.Schedule(func)
        names = {sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))}
        if not {*REDUCTIONS, "T_fast_exp", "T_softmax_norm"} <= names:
            return False
        extent = int(sch.get(sch.get_loops(sch.get_sblock("T_softmax_maxelem"))[-1]).extent)
        return extent % LANES == 0 and extent >= 2 * LANES
    except (s_tir.ScheduleError, ValueError, KeyError):
        return False


def schedule_softmax(sch: s_tir.Schedule) -> s_tir.Schedule:
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    for name in INLINED:
        if name in names[:-1]:
            sch.compute_inline(sch.get_sblock(name))
    partial = {}
    for name in REDUCTIONS:  # before compute_at: rfactor wants the reduction at the loop nest's top
        block = sch.get_sblock(name)
        _, lanes = sch.split(sch.get_loops(block)[-1], [None, LANES])
        partial[name] = sch.rfactor(lanes, 0)
    out = sch.get_sblock(names[-1])
    loops = sch.get_loops(out)
    row = sch.fuse(*loops[:-1])
    sch.vectorize(sch.split(loops[-1], [None, LANES])[1])
    for block in (sch.get_sblock("T_softmax_expsum"), partial["T_softmax_expsum"], sch.get_sblock("T_fast_exp"),
                  sch.get_sblock("T_softmax_maxelem"), partial["T_softmax_maxelem"]):
        sch.compute_at(block, row)
    sch.parallel(row)  # before decompose_reduction, which parallel's dataflow check refuses
    for rf in partial.values():
        lanes, chunks = sch.get_loops(rf)[-2:]
        sch.reorder(chunks, lanes)
        sch.vectorize(lanes)
        sch.decompose_reduction(rf, chunks)
    exp = sch.get_sblock("T_fast_exp")
    sch.vectorize(sch.split(sch.get_loops(exp)[-1], [None, LANES])[1])
    return sch
