"""Which kernel each Linear gets. The one place the sparse/dense crossover lives.

First choice: what was measured on the target's own CPU (``tune/choices.py``: every kind that can run a
Linear of that shape and sparsity, timed; the fastest wins). Where no measurement exists for the target,
a threshold on the block sparsity decides, higher where dense Linears run on AMX. ``mode="measure"``
times what is missing (when this machine can run the target's code) and keeps it in the user's records.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm

from ..format import bsr4x1

# A Linear whose 4x1 block sparsity is at least this runs the block-sparse kernel, else the dense
# one. The crossover of the row-major kernel (what graphs use) against the tuned dense int8 kernel,
# from `tvm-sparse bench-kernel` at K=N=768, M=128 on Zen 5: 281.8 / 182.8 / 112.7 us at 70/80/90%
# against 369.5 us dense, a line that meets dense at 60% (nothing below 70% was measured directly).
SPARSE_THRESHOLD = 0.6
# Where a Linear's dense kernel runs on AMX (the target has it, the shape tiles whole) the crossover moves up.
# Measured end to end on the Sapphire Rapids-class machine, 1 thread, one run each (bench-e2e --engines
# tvm_int8,tvm_dense, dense with u8 hand-overs and prefetched weights): bert-base sparse / all dense 20.23 /
# 18.28 ms at 80%, 16.68 / 18.3-23.2 at 85%, 13.70 / 18.69 at 90%; MiniLM 2.94 / 2.56, 2.67 / 2.57, 2.32 /
# 2.74. Dense wins at 80%, sparse at 85% on bert-base (MiniLM's crossover is near 86%), both at 90%.
# 0.84: uniform 85% pruning lands at 84.9%.
AMX_SPARSE_THRESHOLD = 0.84
# Below this no sparse kernel is measured or taken: none came near dense on any CPU measured
MIN_SPARSE = 0.5
MODES = ("auto", "measure", "threshold")
# a measured kind overrules the threshold's sparse/dense choice only when this much faster (repeated
# measurements of one kernel spread by 2-3% on the 2-core machines)
MARGIN = 0.05


def sparse_threshold(target, m: int | None = None, k: int | None = None, n: int | None = None) -> float:
    """The crossover for ``target`` where nothing was measured: higher where dense Linears run on AMX. Given
    a Linear's shape (``m`` tokens, ``k`` in, ``n`` out), only where its dense kernel would: 16 tokens do not
    fill AMX's 32-token blocks, and there dense means VNNI, which the sparse kernel beats from 60%."""
    from .. import kinds
    from ..kernels.amx import fits

    amx = kinds.get("dense_amx").available(target) and (m is None or fits(m, k, n))
    return AMX_SPARSE_THRESHOLD if amx else SPARSE_THRESHOLD


def use_sparse(weight_nk: np.ndarray, threshold: float) -> bool:
    return bsr4x1.block_sparsity(weight_nk) >= threshold


@dataclass(frozen=True)
class Decision:
    sparse: bool
    kind: str | None  # the kind measured fastest; None: the registry's priority picks among those that fit
    reason: str  # for the report: what decided


class KernelPolicy:
    """Decides each Linear: ``auto`` (measurements where the records have them, else the threshold),
    ``measure`` (also time what is missing), ``threshold`` (the threshold alone; an explicit
    ``threshold`` forces this mode)."""

    def __init__(self, target: tvm.target.Target, mode: str = "auto", threshold: float | None = None,
                 roots: list[Path] | None = None, log=None) -> None:
        if mode not in MODES:
            raise ValueError(f"kernel choice mode must be one of {MODES}, got {mode!r}")
        self.target = target
        self.mode = "threshold" if threshold is not None else mode
        self.fixed = threshold  # given: one threshold for every Linear
        self.threshold = sparse_threshold(target) if threshold is None else threshold
        self.roots = roots
        self.log = log or (lambda s: None)
        self._no_measure: str | None = None
        self._found: dict = {}  # ChoiceKey -> _lookup_or_measure's answer

    def _roots(self) -> list[Path]:
        from ..tune.apply import database_roots

        return database_roots() if self.roots is None else self.roots

    def _times(self, m: int, k: int, n: int, bucket: int) -> tuple[dict[str, float], str] | None:
        """What was measured for this shape (once per compile: every layer of a shape asks)."""
        from ..tune import choices

        key = choices.ChoiceKey(m, k, n, bucket)
        if key not in self._found:
            self._found[key] = self._lookup_or_measure(key)
        return self._found[key]

    def _lookup_or_measure(self, key) -> tuple[dict[str, float], str] | None:
        from ..tune import choices

        found = choices.lookup(key, self.target, self._roots())
        if found:
            return found[0], f"measured ({found[1].parent.name})"
        if self.mode != "measure":
            return None
        if self._no_measure is None:
            self._no_measure = choices.cannot_measure(self.target) or ""
            if self._no_measure:
                warnings.warn(f"cannot measure kernel choices here ({self._no_measure}): the threshold "
                              f"{self.threshold:.2f} decides", stacklevel=4)
        if self._no_measure:
            return None
        self.log(f"measuring kernel choices for {key.name} ...")
        times = choices.measure(key, self.target, self._roots(), log=self.log)
        try:
            return times, f"measured now ({choices.store(self._roots()[0], self.target, key, times)})"
        except choices.ChoicesError as err:  # a table there that is not ours to overwrite: use, do not keep
            warnings.warn(f"{err}; this measurement is used but not kept", stacklevel=4)
            return times, "measured now (not kept)"

    def by_threshold(self, weight_nk: np.ndarray, m: int | None = None) -> Decision:
        """Sparse or dense by the block sparsity: the given threshold, else the target's for this shape."""
        n, k = weight_nk.shape
        t = self.fixed if self.fixed is not None else sparse_threshold(self.target, m, k, n)
        return Decision(use_sparse(weight_nk, t), None, f"threshold {t:.2f}")

    def decide(self, weight_nk: np.ndarray, m: int) -> Decision:
        """The kind measured fastest for this Linear (row-major fp32 in and out), else the threshold's
        choice (``kind`` None)."""
        from .. import kinds

        default = self.by_threshold(weight_nk, m)
        sparsity = bsr4x1.block_sparsity(weight_nk)
        if self.mode == "threshold" or sparsity < MIN_SPARSE:
            return default
        n, k = weight_nk.shape
        found = self._times(m, k, n, kinds.sparsity_bucket(sparsity))
        # only kinds this target can run count: a table never brings AMX to a CPU without it
        usable = {name: t for name, t in (found[0].items() if found else ())
                  if name in kinds.names() and kinds.get(name).available(self.target)}
        if len({kinds.get(x).sparse for x in usable}) < 2:  # sparse and dense not both measured
            return default
        best = min(usable, key=usable.get)
        timing = ", ".join(f"{x} {t:.0f} us" for x, t in sorted(usable.items(), key=lambda kv: kv[1]))
        if kinds.get(best).sparse != default.sparse:
            # overrule the threshold only by a margin larger than the measurement's noise
            side = min((x for x in usable if kinds.get(x).sparse == default.sparse), key=usable.get)
            if usable[best] > (1.0 - MARGIN) * usable[side]:
                best = side
                timing += f" (within {MARGIN:.0%}: the threshold's choice stays)"
        return Decision(kinds.get(best).sparse, best, f"{found[1]}: {timing}")
