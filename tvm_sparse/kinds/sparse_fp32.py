"""4x1 block-sparse fp32 (``kernels/sparse_fp32.py``): sparse Linears of models compiled without quantization."""

from __future__ import annotations

import numpy as np
from tvm import tirx

from ..format import bsr4x1
from ..kernels.epilogue import Epilogue
from ..kernels.sparse_fp32 import sparse_fp32
from ..kernels.sparse_int8 import padded_m
from .base import CANONICAL_EPILOGUE, KernelKey, specialize_tiles
from .layer import LinearLayer
from .sparse_int8 import SparseInt8


class SparseFp32(SparseInt8):  # the same design space, default knobs and record application
    name = "sparse_fp32"
    precision = "fp32"
    needs = frozenset({"avx512f"})

    def func(self, key: KernelKey, epilogue: Epilogue = CANONICAL_EPILOGUE, swizzle: bool = True) -> tirx.PrimFunc:
        return sparse_fp32(key.m, key.k, key.n, gelu=epilogue.has_gelu, transposed=key.transposed)

    def canonical(self, key: KernelKey, swizzle: bool = True) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        rng = np.random.default_rng(key.seed())
        mp = padded_m(key.m)
        x_shape = (key.k, mp) if key.transposed else (key.m, key.k)
        y_shape = (key.n, mp) if key.transposed else (key.m, key.n)
        w = bsr4x1.prune(rng.standard_normal((key.n, key.k)).astype(np.float32), key.bucket / 100)
        p = bsr4x1.pack(w)
        x = rng.standard_normal(x_shape).astype(np.float32)
        arrays = [x, p.indptr, p.indices, p.values, rng.standard_normal(key.n).astype(np.float32)]
        func = self.workload(key)
        return specialize_tiles(func, p.n_tiles), arrays + [np.zeros(y_shape, np.float32)]

    def record_funcs(self, key: KernelKey) -> list[tirx.PrimFunc]:
        return [self.canonical(key)[0]]

    def build(self, layer: LinearLayer, m: int) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        n, k = layer.weight.shape
        bias = np.zeros(n, np.float32) if layer.bias is None else layer.bias.astype(np.float32)
        p = bsr4x1.pack(layer.weight.astype(np.float32))
        return sparse_fp32(m, k, n, gelu=layer.gelu), [p.indptr, p.indices, p.values, bias]


KIND = SparseFp32()
