"""What a compile (and the lowering, tuning and benchmarks built on it) is asked for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tvm

from .calibrate import ActQuant


@dataclass
class CompileOptions:
    batch: int = 1
    seq_len: int = 128
    precision: str = "int8"
    target: str | dict | tvm.target.Target | None = None  # anything target.resolve takes; None: host
    trials: int = 8  # per task; or a function of the task (tune.graph.budget(heavy, light))
    work_dir: str | Path = "tuning_logs/default"
    calibration: dict[str, ActQuant] | None = None
    threshold: float | None = None
    allow_untuned: bool = False  # tests only: leave functions with no record as naive loops (100x slower)
