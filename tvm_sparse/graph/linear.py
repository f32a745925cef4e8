"""One Linear layer of a graph -> the scheduled kernel its kind builds, and its constant arrays.

The kind is the registry's choice (``kinds.for_layer``: what the target can run, fastest first); its
schedule comes from tuning records (``tune.apply``). ``None`` means "leave this Linear to Relax"
(dense fp32: an ordinary matmul that MetaSchedule tunes with the rest of the graph).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tvm
from tvm import tirx

from .. import kinds
from ..kinds import LinearLayer
from ..schedule.scheduled import mark_scheduled
from ..tune.apply import database_roots, schedule


def kind_of(layer: LinearLayer, m: int, target: tvm.target.Target) -> kinds.KernelKind | None:
    return kinds.for_layer(layer, m, target)


def build(layer: LinearLayer, m: int, target: tvm.target.Target, database: str | Path | None = None
          ) -> tuple[tirx.PrimFunc, list[np.ndarray]] | None:
    """A scheduled kernel ``func(X, *consts, Y)`` for ``layer`` at ``m`` tokens (X fp32 [m, K], Y fp32
    [m, N] in the row-major layout) and its constants; None: keep the Relax ops.

    Schedules come from ``database`` (if given), ``tuning_logs/`` and the shipped ``schedules/``.
    """
    kind = kind_of(layer, m, target)
    if kind is None:
        return None
    func, consts = kind.build(layer, m)
    roots = database_roots([database] if database else [])
    scheduled, _source = schedule(func, kind.key(layer, m), target, roots)
    # MetaSchedule (0.27) skips functions marked scheduled: never retune a library kernel
    return mark_scheduled(scheduled), list(consts)
