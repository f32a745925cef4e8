"""Dense u8 x s8 -> s32 on AVX512-VNNI (``kernels/dense_int8.py``): dense int8 Linears where nothing faster runs."""

from __future__ import annotations

import numpy as np
from tvm import tirx

from ..kernels.dense_int8 import dense_int8, pack_dense
from ..kernels.epilogue import Epilogue
from ..schedule.space import dense_space
from .base import CANONICAL_EPILOGUE, KernelKey, KernelKind
from .layer import LinearLayer, int8_constants
from .sparse_int8 import int8_canonical_arrays


class DenseInt8(KernelKind):
    name = "dense_int8"
    sparse = False
    precision = "int8"
    needs = frozenset({"avx512vnni"})

    def supports(self, layer: LinearLayer, m: int) -> bool:
        # row-major only: fp32 or u8 (a chain's hand-over) in, fp32 or u8 out
        return super().supports(layer, m) and not (layer.in_transposed or layer.out_transposed)

    def func(self, key: KernelKey, epilogue: Epilogue = CANONICAL_EPILOGUE) -> tirx.PrimFunc:
        return self.kernel(key.m, key.k, key.n, epilogue)

    def canonical(self, key: KernelKey) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        w, (x, *epi), out = int8_canonical_arrays(key, np.random.default_rng(key.seed()))
        return self.workload(key), [x, pack_dense(w), *epi, out]

    def space(self):
        return dense_space()

    def kernel(self, m: int, k: int, n: int, epilogue: Epilogue, quantize_input: bool = False) -> tirx.PrimFunc:
        return dense_int8(m, k, n, epilogue, quantize_input=quantize_input)

    def build(self, layer: LinearLayer, m: int) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        n, k = layer.weight.shape
        c = int8_constants(layer)
        func = self.kernel(m, k, n, c.epilogue, quantize_input=layer.quantizes_input)
        consts = [c.qin] if layer.quantizes_input else []
        consts += [pack_dense(c.weight), c.scale, c.corr, c.bias]
        return func, consts + ([c.qout] if c.qout is not None else [])


KIND = DenseInt8()
