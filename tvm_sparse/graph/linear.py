"""One Linear layer of a graph -> the library's scheduled kernel and its constant arrays.

``None`` means "leave this Linear to Relax" (dense fp32: an ordinary matmul that MetaSchedule
tunes with the rest of the graph).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import tirx

from ..kernels.library import LinearLayer, build_linear

SCHEDULED_ATTRS = ("tirx.is_scheduled", "tir.is_scheduled")  # 0.27 reads the first; accept both


def is_scheduled(func: tirx.PrimFunc) -> bool:
    return any(bool(func.attrs.get(a, False)) for a in SCHEDULED_ATTRS) if func.attrs else False


def build(layer: LinearLayer, m: int, target: tvm.target.Target, database=None
          ) -> tuple[tirx.PrimFunc, list[np.ndarray]] | None:
    """The kernel and its constants for ``layer`` at ``m`` rows (tokens); None: keep the Relax ops."""
    built = build_linear(layer, m=m, target=target, database=database)
    if built is None:
        return None
    func, consts = built
    # MetaSchedule (0.27) skips functions marked "tirx.is_scheduled": never retune a library kernel
    return func.with_attr("tirx.is_scheduled", True), list(consts)
