"""The steps before build: narrow the static tile loop to each block row's real tile count (and,
in ``finalize``, schedule the layout stages first).

The compute definitions bound the tile loop ``t`` by the most tiles a block row can hold, so that
every schedule primitive sees affine bindings. Built as is, a row would run into the next row's
tiles: wrong results. This pass rewrites ``for t in range(TMAX)`` into
``for t in range(Indptr[r + 1] - Indptr[r])``, taking ``r`` from the gather block's binding.

TVM 0.27 exposes no statement mutator to Python, so the rewrite goes through TVMScript text, which
round-trips exactly; every rewrite is checked to have happened once.
"""

from __future__ import annotations

import re

import tvm
from tvm import tirx

TILE_LOOP = "t"


class NarrowError(RuntimeError):
    """The scheduled function does not have the loop structure the narrowing relies on."""


def narrow_tile_loops(func: tirx.PrimFunc) -> tirx.PrimFunc:
    if func.attrs is None or "tvm_sparse.tile_bound" not in func.attrs:
        return func  # not a sparse kernel
    if func.attrs.get("tvm_sparse.narrowed", False):
        return func
    tmax = int(func.attrs["tvm_sparse.tile_bound"])
    nb = int(func.attrs["tvm_sparse.block_rows"])
    text = func.script()
    loops = re.findall(rf"^(\s*)for {TILE_LOOP} in range\({tmax}\):$", text, flags=re.M)
    if len(loops) != 1:
        raise NarrowError(f"expected one tile loop 'for {TILE_LOOP} in range({tmax})', found {len(loops)}")
    r = _gather_row_binding(text, nb)
    text = re.sub(
        rf"^(\s*)for {TILE_LOOP} in range\({tmax}\):$",
        lambda mt: f"{mt.group(1)}for {TILE_LOOP} in range(Indptr[{r} + 1] - Indptr[{r}]):",
        text,
        flags=re.M,
    )
    parsed = tvm.script.from_source(text, check_well_formed=False)
    if isinstance(parsed, tvm.IRModule):
        parsed = parsed["main"]
    return parsed.with_attr("tvm_sparse.narrowed", True)


def _gather_row_binding(text: str, nb: int) -> str:
    """The expression the gather block binds its block-row axis ``vr`` to."""
    at = text.find('with T.sblock("gather"):')
    if at < 0:
        raise NarrowError("no gather block in the scheduled function")
    block = text[at : at + 2000]
    spatial = re.search(rf"^\s*vr = T\.axis\.spatial\({nb}, (.+)\)$", block, flags=re.M)
    if spatial:
        return spatial.group(1)
    remap = re.search(r"^\s*vr, [\w, ]+ = T\.axis\.remap\(\"\w+\", \[(\w+),", block, flags=re.M)
    if remap:
        return remap.group(1)
    raise NarrowError("cannot find the gather block's block-row binding 'vr'")


def finalize(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """What every scheduled sparse kernel gets before build, tuned or not, candidate or final:
    its layout stages scheduled, then its tile loop narrowed."""
    if func.attrs is None or "tvm_sparse.tile_bound" not in func.attrs or func.attrs.get("tvm_sparse.narrowed"):
        return func
    from tvm import s_tir

    from .sparse import schedule_layout_stages

    sch = s_tir.Schedule(func)
    schedule_layout_stages(sch)
    return narrow_tile_loops(sch.mod["main"])


def finalize_module(mod: tvm.IRModule) -> tvm.IRModule:
    """``finalize`` every function of ``mod`` that needs it."""
    out = {}
    for gv, func in mod.functions.items():
        out[gv] = finalize(func) if isinstance(func, tirx.PrimFunc) else func
    return tvm.IRModule(out, attrs=mod.attrs)
