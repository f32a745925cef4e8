"""Hand schedules of graph functions, found by what the function computes: attention's softmax and
batched matmuls, and elementwise functions. A new one is a module with ``matches(func)`` and
``schedule_...(sch)`` plus one entry in ``HAND_SCHEDULES``."""

from __future__ import annotations

import logging

import tvm
from tvm import s_tir

from . import elementwise, matmul, softmax
from .scheduled import is_scheduled, mark_scheduled

# name -> (applies to the function?, schedule it)
HAND_SCHEDULES = {"softmax": (softmax.matches, softmax.schedule_softmax),
                  "matmul": (matmul.matches, matmul.schedule_matmul),
                  "elementwise": (elementwise.matches, elementwise.schedule_elementwise)}


def hand_schedule_name(mod: tvm.IRModule) -> str | None:
    """Which hand schedule ``mod["main"]`` has, if any."""
    return next((name for name, (matches, _) in HAND_SCHEDULES.items() if matches(mod["main"])), None)


def hand_schedule(mod: tvm.IRModule) -> s_tir.Schedule | None:
    """Our hand schedule of ``mod["main"]``, if it is a function we have one for (and it applies:
    a shape ``matches`` did not foresee leaves the function to MetaSchedule, not a crash)."""
    name = hand_schedule_name(mod)
    if name is None:
        return None
    try:
        return HAND_SCHEDULES[name][1](s_tir.Schedule(mod))
    except (s_tir.ScheduleError, tvm.TVMError) as err:
        logging.getLogger(__name__).warning("%s hand schedule does not apply: %s", name, str(err).splitlines()[-1])
        return None


def apply_hand_schedules(mod: tvm.IRModule) -> tvm.IRModule:
    """Schedule by hand every function still unscheduled that has a hand schedule (a batch size or
    sequence length nothing was tuned for): shape-generic code instead of a refusal to compile."""
    done = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tvm.tirx.PrimFunc) and not is_scheduled(func):
            sch = hand_schedule(tvm.IRModule({"main": func}))
            if sch is not None:
                done[gv] = mark_scheduled(sch.mod["main"])
    for gv, func in done.items():
        mod[gv] = func
    return mod
