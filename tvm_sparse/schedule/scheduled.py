"""Whether a TIR function is already scheduled (MetaSchedule 0.27 skips functions so marked)."""

from __future__ import annotations

from tvm import tirx

SCHEDULED_ATTRS = ("tirx.is_scheduled", "tir.is_scheduled")  # 0.27 reads the first; accept both


def is_scheduled(func: tirx.PrimFunc) -> bool:
    return any(bool(func.attrs.get(a, False)) for a in SCHEDULED_ATTRS) if func.attrs else False


def mark_scheduled(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """``func`` marked scheduled: MetaSchedule never retunes it, compile never reschedules it."""
    return func.with_attr("tirx.is_scheduled", True)
