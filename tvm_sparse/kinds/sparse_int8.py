"""4x1 block-sparse u8 x s8 -> s32 on AVX512-VNNI (``kernels/sparse_int8.py``): every sparse int8 Linear."""

from __future__ import annotations

import numpy as np
from tvm import s_tir, tirx

from ..format import bsr4x1
from ..kernels.epilogue import Epilogue
from ..kernels.sparse_int8 import padded_m, sparse_int8, swizzles
from ..schedule import sparse as sparse_schedules
from ..schedule.space import sparse_space
from .base import CANONICAL_EPILOGUE, KernelKey, KernelKind, sparsity_bucket, specialize_tiles
from .layer import LinearLayer, int8_constants

# with no record: the loop order and unroll depth most shapes tune to
DEFAULT_KNOBS = {"sketch": "rows_outer", "unroll": 0}


def int8_canonical_arrays(key: KernelKey, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """A random s8 weight, u8 input and epilogue parameters for ``key``; also the fp32 output buffer."""
    mp = padded_m(key.m)
    x_shape = (key.k, mp) if key.transposed else (key.m, key.k)
    y_shape = (key.n, mp) if key.transposed else (key.m, key.n)
    w = rng.integers(-127, 128, (key.n, key.k), dtype=np.int8)
    x = rng.integers(0, 256, x_shape, dtype=np.uint8)
    epi = [
        rng.uniform(1e-4, 1e-3, key.n).astype(np.float32),  # scale
        rng.integers(-1000, 1000, key.n).astype(np.int32),  # zero-point correction
        rng.standard_normal(key.n).astype(np.float32),  # bias
    ]
    return w, [x, *epi], np.zeros(y_shape, np.float32)


class SparseInt8(KernelKind):
    name = "sparse_int8"
    sparse = True
    precision = "int8"
    needs = frozenset({"avx512vnni"})

    def key(self, layer: LinearLayer, m: int) -> KernelKey:
        n, k = layer.weight.shape
        # the spmm's loop nest reads its input in the input's layout: that layout's records serve
        return KernelKey(self.name, m, k, n, sparsity_bucket(bsr4x1.block_sparsity(layer.weight)),
                         transposed=layer.in_transposed)

    def func(self, key: KernelKey, epilogue: Epilogue = CANONICAL_EPILOGUE, swizzle: bool = True) -> tirx.PrimFunc:
        """``swizzle=False``: the definition before swizzled token tiles, which older records name."""
        return sparse_int8(key.m, key.k, key.n, epilogue, transposed=key.transposed, swizzle=swizzle)

    def canonical(self, key: KernelKey, swizzle: bool = True) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        rng = np.random.default_rng(key.seed())
        w, (x, *epi), out = int8_canonical_arrays(key, rng)
        p = bsr4x1.pack(bsr4x1.prune(w, key.bucket / 100))
        func = self.func(key, swizzle=swizzle).with_attr("tvm_sparse.workload", key.name)
        return specialize_tiles(func, p.n_tiles), [x, p.indptr, p.indices, p.values, *epi, out]

    def record_funcs(self, key: KernelKey) -> list[tirx.PrimFunc]:
        # records from before swizzled tiles: their knobs apply as well
        return [self.canonical(key)[0], self.canonical(key, swizzle=False)[0]]

    def space(self):
        return sparse_space()

    def apply(self, sch: s_tir.Schedule, record) -> None:
        # by its knobs (sketch, unroll) through today's schedule code: records outlive schedule changes
        knobs = sparse_schedules.knobs_of(record.trace)
        getattr(sparse_schedules, sparse_schedules.sketch_for(sch, knobs["sketch"]))(sch, knobs)

    def default_schedule(self, sch: s_tir.Schedule) -> bool:
        getattr(sparse_schedules, sparse_schedules.sketch_for(sch, DEFAULT_KNOBS["sketch"]))(sch, DEFAULT_KNOBS)
        return True

    def build(self, layer: LinearLayer, m: int) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        n, k = layer.weight.shape
        c = int8_constants(layer)
        p = bsr4x1.pack(c.weight)
        # a chain's u8 [n, mp] hand-over is in swizzled tiles: both of its kernels then take the
        # 4x64x4 intrinsic (the first accumulates swizzled, the second reads swizzled)
        func = sparse_int8(m, k, n, c.epilogue, quantize_input=layer.quantizes_input,
                           x_transposed=layer.in_transposed,
                           y_transposed=layer.out_quant is not None or layer.out_transposed,
                           x_swizzled=layer.in_transposed and swizzles(m),
                           y_swizzled=layer.out_quant is not None and layer.out_swizzled and swizzles(m))
        consts = [c.qin] if layer.quantizes_input else []
        consts += [p.indptr, p.indices, p.values, c.scale, c.corr, c.bias]
        if c.qout is not None:
            consts.append(c.qout)
        return func, consts


KIND = SparseInt8()
