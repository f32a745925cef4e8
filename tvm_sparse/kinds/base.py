"""What a kernel kind is: the extension point every layer above the kernels goes through.

A kind bundles, for one family of kernels: its compute definition (``kernels/``), the workload key a
tuned record is filed under and the canonical instance it is tuned on, its design space and how a
record is applied, the layouts and shapes it supports, and the instruction sets it executes. Tuning
(``tune/``), building a Linear (``graph/linear.py``) and the swap policy (``graph/policy.py``) go through
the registry at the end of this file. A new kind is one file in this package plus one entry in ``kinds/__init__.py``'s
``BUILTIN``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import s_tir, tirx
from tvm.s_tir import meta_schedule as ms

from ..kernels.epilogue import Epilogue
from ..target import isa
from .layer import LinearLayer

CANONICAL_EPILOGUE = Epilogue.FP32  # what the graph uses most: dequantize + bias


def sparsity_bucket(sparsity: float) -> int:
    """Sparsity in whole tens of percent, floored with one point of slack (pruning to 90% of an
    odd block count lands at 89.9%): 0.87 -> 80, 0.899 -> 90, 0.95 -> 90."""
    return min(90, int(np.floor(sparsity * 10 + 0.1)) * 10)


@dataclass(frozen=True)
class KernelKey:
    """What one tuned schedule is keyed by. A record serves every layer with the same (kind, M, N, K,
    sparsity bucket, layout) on the same target, whatever its exact nonzero pattern and epilogue:
    schedules never depend on either (the tile count is a symbolic dimension, the epilogue block keeps
    its name and loops)."""

    kind: str
    m: int
    k: int
    n: int
    bucket: int = 0  # percent; 0 for dense kernels
    transposed: bool = False

    def __post_init__(self) -> None:
        if self.kind not in names():
            raise ValueError(f"unknown kernel kind {self.kind!r}; expected one of {names()}")
        if min(self.m, self.k, self.n) <= 0:
            raise ValueError(f"kernel shape must be positive, got m={self.m} k={self.k} n={self.n}")

    @property
    def sparse(self) -> bool:
        return get(self.kind).sparse

    @property
    def name(self) -> str:
        layout = "_t" if self.transposed else ""
        sp = f"_s{self.bucket}" if self.sparse else ""
        return f"{self.kind}_m{self.m}_k{self.k}_n{self.n}{sp}{layout}"

    def seed(self) -> int:
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:4], "little")


class KernelKind:
    """One kernel family. Subclasses set the class attributes and implement ``func``, ``canonical``,
    ``build``; tunable kinds also ``space`` (and ``apply``/``default_schedule`` where replaying a trace
    or tuning briefly is not right)."""

    name: str = ""
    sparse: bool = False
    precision: str = "int8"  # the LinearLayer precision it serves: "int8" | "fp32"
    needs: frozenset[str] = frozenset()  # LLVM features it executes beyond target.REQUIRED
    tuned: bool = True  # False: the kernel is written scheduled; no records, no design space
    priority: int = 0  # among kinds that can run a layer, the higher is taken (faster where it applies)

    # --- where it applies
    def available(self, target: tvm.target.Target) -> bool:
        """``target`` has every instruction this kind executes."""
        return self.needs <= isa(target)

    def supports(self, layer: LinearLayer, m: int) -> bool:
        """This kind can run ``layer`` at ``m`` tokens (its precision, layouts and shape)."""
        return layer.sparse == self.sparse and layer.precision == self.precision

    # --- tuning
    def key(self, layer: LinearLayer, m: int) -> KernelKey:
        n, k = layer.weight.shape
        return KernelKey(self.name, m, k, n, 0, transposed=layer.in_transposed)

    def func(self, key: KernelKey, epilogue: Epilogue = CANONICAL_EPILOGUE) -> tirx.PrimFunc:
        """The unscheduled compute definition for ``key``."""
        raise NotImplementedError

    def workload(self, key: KernelKey, epilogue: Epilogue = CANONICAL_EPILOGUE) -> tirx.PrimFunc:
        return self.func(key, epilogue).with_attr("tvm_sparse.workload", key.name)

    def canonical(self, key: KernelKey) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        """The instance tuned for ``key``: a concrete function and the arrays to run it on."""
        raise NotImplementedError

    def record_funcs(self, key: KernelKey) -> list[tirx.PrimFunc]:
        """The functions whose records serve ``key``: the canonical one, then older definitions whose
        records still apply."""
        return [self.canonical(key)[0]]

    def space(self) -> ms.space_generator.SpaceGenerator:
        raise NotImplementedError(f"{self.name} has no design space (it is written scheduled)")

    def apply(self, sch: s_tir.Schedule, record) -> None:
        """Apply a tuned record to ``sch`` (the actual function): replay its trace."""
        record.trace.apply_to_schedule(sch, remove_postproc=False)

    def default_schedule(self, sch: s_tir.Schedule) -> bool:
        """Schedule ``sch`` with no record; False where this kind has no default (a short tuning run
        is done instead)."""
        return False

    # --- building a Linear
    def build(self, layer: LinearLayer, m: int) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        """The kernel for ``layer`` at ``m`` tokens, unscheduled unless ``tuned`` is False, and its
        constant arrays: ``func(X, *consts, Y)``."""
        raise NotImplementedError


def specialize_tiles(func: tirx.PrimFunc, n_tiles: int) -> tirx.PrimFunc:
    """Fix a sparse kernel's symbolic tile count (MetaSchedule measures concrete shapes)."""
    params = {p.name: p for p in func.params}
    idx, val = params["Indices"].ty, params["Values"].ty
    return func.specialize({
        params["Indices"]: tirx.decl_buffer((n_tiles, 4), idx.dtype, name="Indices"),
        params["Values"]: tirx.decl_buffer((n_tiles, 4, 4), val.dtype, name="Values"),
    })


# ------------------------------------------------------------------ the registry: kinds by name

_KINDS: dict[str, KernelKind] = {}


def register(kind: KernelKind) -> KernelKind:
    if not kind.name or kind.name in _KINDS:
        raise ValueError(f"kernel kind {kind.name!r} is unnamed or registered twice")
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> KernelKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kernel kind {name!r}; expected one of {names()}") from None


def names() -> tuple[str, ...]:
    return tuple(_KINDS)


def tunable() -> tuple[str, ...]:
    """The kinds with a design space (what ``tune-kernel --kind`` takes)."""
    return tuple(n for n, k in _KINDS.items() if k.tuned)


def for_layer(layer: LinearLayer, m: int, target: tvm.target.Target) -> KernelKind | None:
    """The kind that runs ``layer`` at ``m`` tokens on ``target``: of those the target can run that support
    the layer, the one measured fastest (``layer.kind``) or else the highest priority. None: no kernel
    (dense fp32 stays a Relax matmul, tuned with the rest of the graph)."""
    fit = [k for k in _KINDS.values() if k.supports(layer, m) and k.available(target)]
    preferred = [k for k in fit if k.name == layer.kind]
    return preferred[0] if preferred else max(fit, key=lambda k: k.priority) if fit else None
