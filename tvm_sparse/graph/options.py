"""What a compile (and the lowering, tuning and benchmarks built on it) is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tvm

from .calibrate import ActQuant
from .errors import GraphError


@dataclass
class CompileOptions:
    batch: int = 1  # the largest batch (of ``batches``)
    seq_len: int = 128  # the longest sequence (of ``seq_lens``)
    precision: str = "int8"
    target: str | dict | tvm.target.Target | None = None  # anything target.resolve takes; None: host
    trials: int = 8  # per task; or a function of the task (tune.graph.budget(heavy, light))
    work_dir: str | Path = "tuning_logs/default"
    calibration: dict[str, ActQuant] | None = None
    threshold: float | None = None  # given: the threshold alone decides sparse or dense
    choose: str = "auto"  # graph/policy.py: "auto" | "measure" | "threshold"
    allow_untuned: bool = False  # tests only: leave functions with no record as naive loops (100x slower)
    # length and batch buckets: one static-shape function per (batch, length) pair in one library (TVM's
    # frontends cannot import a symbolic length). Empty: just (batch, seq_len), one function "main".
    seq_lens: tuple[int, ...] = field(default_factory=tuple)
    batches: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.seq_lens = tuple(sorted(set(self.seq_lens))) if self.seq_lens else (self.seq_len,)
        self.batches = tuple(sorted(set(self.batches))) if self.batches else (self.batch,)
        bad = [v for v in (*self.seq_lens, *self.batches) if not isinstance(v, int) or v < 1]
        if bad:
            raise GraphError(f"batch sizes and sequence lengths must be positive integers, got {bad}")
        # the largest bucket is the one the options' batch/seq_len name (calibration, tuning, metadata)
        self.seq_len, self.batch = self.seq_lens[-1], self.batches[-1]

    def buckets(self) -> list[tuple[int, int]]:
        """Every (batch, seq_len) compiled, smallest first."""
        return [(b, n) for n in self.seq_lens for b in self.batches]

    @property
    def bucketed(self) -> bool:
        return len(self.seq_lens) * len(self.batches) > 1


def batch_buckets(largest: int) -> tuple[int, ...]:
    """The batch sizes compiled for ``--batch largest``: powers of two below it, and it. A batch of n runs
    in the smallest bucket that holds it (rows padded), and larger ones split: at most 2x the rows of
    work, and log2(largest) functions rather than one per size."""
    sizes, b = {largest}, 1
    while b < largest:
        sizes.add(b)
        b *= 2
    return tuple(sorted(sizes))
