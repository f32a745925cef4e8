"""Design spaces: which schedule family MetaSchedule searches for each kernel kind."""

from __future__ import annotations

from tvm.s_tir import meta_schedule as ms

from ..kernels.intrin import DENSE_VNNI_INTRIN
from .sparse import SKETCHES


def sparse_space() -> ms.space_generator.ScheduleFn:
    """One sketch per loop order; the unroll depth is the knob the search mutates.

    MetaSchedule's post-order-apply space cannot tensorize the gathered access and would split the
    tile loop, so the sparse kernels use our own schedule function (its postprocessors reject
    nothing: every loop is static until ``schedule.narrow.finalize`` runs at build time).
    """

    def sketches(sch):
        return [sketch(sch.copy()) for sketch in SKETCHES]

    return ms.space_generator.ScheduleFn(
        sketches,
        sch_rules=[],
        postprocs=[],
        mutator_probs={ms.mutator.MutateUnroll(): 1.0},
    )


def dense_space() -> ms.space_generator.PostOrderApply:
    """MetaSchedule's x86 VNNI rules (as TVM's ``DefaultX86("vnni")``), naming our repaired dense
    intrinsic, without the untensorized fallback tiling: every candidate is a VNNI kernel."""
    sr, pp, mu = ms.schedule_rule, ms.postproc, ms.mutator
    return ms.space_generator.PostOrderApply(
        sch_rules=[
            sr.InlineConstantScalars(),
            sr.AutoInline(into_producer=False, into_consumer=True, inline_const_tensor=True,
                          disallow_if_then_else=True, require_injective=True, require_ordered=True,
                          disallow_op=["tirx.exp"]),
            sr.MultiLevelTilingWithIntrin(
                DENSE_VNNI_INTRIN, structure="SSRSRS", tile_binds=None, max_innermost_factor=64,
                vector_load_lens=None, reuse_read=None,
                reuse_write=sr.ReuseType(req="may", levels=[1, 2], scope="global"),
            ),
            sr.ParallelizeVectorizeUnroll(max_jobs_per_core=16, max_vectorize_extent=64,
                                          unroll_max_steps=[0, 16, 64, 512], unroll_explicit=True),
            sr.RandomComputeLocation(),
        ],
        postprocs=[pp.DisallowDynamicLoop(), pp.RewriteParallelVectorizeUnroll(),
                   pp.RewriteReductionBlock(), pp.RewriteTensorize(vectorize_init_loop=True)],
        mutator_probs={mu.MutateTileSize(): 0.9, mu.MutateComputeLocation(): 0.05,
                       mu.MutateUnroll(): 0.03, mu.MutateParallel(max_jobs_per_core=16): 0.02},
    )
