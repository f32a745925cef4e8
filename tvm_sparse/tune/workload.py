"""Tuning workloads: what one tuned schedule is keyed by, and the canonical instance it is tuned on.

A record serves every layer with the same (kind, M, N, K, sparsity bucket, layout) on the same
target, whatever its exact nonzero pattern and epilogue: schedules never depend on either (the tile
count is a symbolic dimension, the epilogue block keeps its name and loops). Tuning runs on a
canonical instance: a random weight pruned to the bucket's sparsity with a seed derived from the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from tvm import tirx

from ..format import bsr4x1
from ..kernels.dense_int8 import dense_int8, pack_dense
from ..kernels.epilogue import Epilogue
from ..kernels.sparse_fp32 import sparse_fp32
from ..kernels.sparse_int8 import padded_m, sparse_int8

KINDS = ("sparse_int8", "sparse_fp32", "dense_int8")
CANONICAL_EPILOGUE = Epilogue.FP32  # what the graph uses most: dequantize + bias


def sparsity_bucket(sparsity: float) -> int:
    """Sparsity in whole tens of percent, floored with one point of slack (pruning to 90% of an
    odd block count lands at 89.9%): 0.87 -> 80, 0.899 -> 90, 0.95 -> 90."""
    return min(90, int(np.floor(sparsity * 10 + 0.1)) * 10)


@dataclass(frozen=True)
class KernelKey:
    kind: str
    m: int
    k: int
    n: int
    bucket: int = 0  # percent; 0 for dense kernels
    transposed: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kernel kind {self.kind!r}; expected one of {KINDS}")
        if min(self.m, self.k, self.n) <= 0:
            raise ValueError(f"kernel shape must be positive, got m={self.m} k={self.k} n={self.n}")

    @property
    def sparse(self) -> bool:
        return self.kind.startswith("sparse")

    @property
    def name(self) -> str:
        layout = "_t" if self.transposed else ""
        sp = f"_s{self.bucket}" if self.sparse else ""
        return f"{self.kind}_m{self.m}_k{self.k}_n{self.n}{sp}{layout}"

    def seed(self) -> int:
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:4], "little")


def kernel_func(key: KernelKey, epilogue: Epilogue = CANONICAL_EPILOGUE, swizzle: bool = True) -> tirx.PrimFunc:
    """The unscheduled compute definition for ``key`` (symbolic tile count for sparse kernels).
    ``swizzle=False``: the int8 definition before swizzled token tiles, which older records name."""
    if key.kind == "sparse_int8":
        f = sparse_int8(key.m, key.k, key.n, epilogue, transposed=key.transposed, swizzle=swizzle)
    elif key.kind == "sparse_fp32":
        f = sparse_fp32(key.m, key.k, key.n, gelu=epilogue.has_gelu, transposed=key.transposed)
    else:
        f = dense_int8(key.m, key.k, key.n, epilogue)
    return f.with_attr("tvm_sparse.workload", key.name)


def canonical(key: KernelKey, swizzle: bool = True) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
    """The instance tuned for ``key``: a concrete function and the arrays to run it on."""
    rng = np.random.default_rng(key.seed())
    mp = padded_m(key.m)
    x_shape = (key.k, mp) if key.transposed else (key.m, key.k)
    y_shape = (key.n, mp) if key.transposed else (key.m, key.n)
    func = kernel_func(key, swizzle=swizzle)
    if key.kind == "sparse_fp32":
        w = bsr4x1.prune(rng.standard_normal((key.n, key.k)).astype(np.float32), key.bucket / 100)
        p = bsr4x1.pack(w)
        x = rng.standard_normal(x_shape).astype(np.float32)
        arrays = [x, p.indptr, p.indices, p.values, rng.standard_normal(key.n).astype(np.float32)]
        return _specialize(func, p.n_tiles), arrays + [np.zeros(y_shape, np.float32)]
    w = rng.integers(-127, 128, (key.n, key.k), dtype=np.int8)
    x = rng.integers(0, 256, x_shape, dtype=np.uint8)
    epi = [
        rng.uniform(1e-4, 1e-3, key.n).astype(np.float32),  # scale
        rng.integers(-1000, 1000, key.n).astype(np.int32),  # zero-point correction
        rng.standard_normal(key.n).astype(np.float32),  # bias
    ]
    out = np.zeros(y_shape, np.float32)
    if key.kind == "dense_int8":
        return func, [x, pack_dense(w), *epi, out]
    p = bsr4x1.pack(bsr4x1.prune(w, key.bucket / 100))
    return _specialize(func, p.n_tiles), [x, p.indptr, p.indices, p.values, *epi, out]


def _specialize(func: tirx.PrimFunc, n_tiles: int) -> tirx.PrimFunc:
    """Fix the symbolic tile count (MetaSchedule measures concrete shapes)."""
    params = {p.name: p for p in func.params}
    idx, val = params["Indices"].ty, params["Values"].ty
    return func.specialize({
        params["Indices"]: tirx.decl_buffer((n_tiles, 4), idx.dtype, name="Indices"),
        params["Values"]: tirx.decl_buffer((n_tiles, 4, 4), val.dtype, name="Values"),
    })
