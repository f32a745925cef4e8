"""Dense u8 x s8 -> s32 on AMX tiles (``kernels/amx.py``): dense int8 Linears where the target has AMX.

4.4x the tuned VNNI kernel at 128x768x3072 on a Sapphire Rapids core. The kernel is written scheduled
(tile numbers are immediates, the blocking is fixed), so it has no records and no design space.
"""

from __future__ import annotations

import numpy as np
from tvm import tirx

from ..kernels.amx import FEATURES, dense_amx, fits
from ..kernels.dense_int8 import pack_dense
from ..kernels.epilogue import Epilogue
from .base import CANONICAL_EPILOGUE, KernelKey
from .dense_int8 import DenseInt8
from .layer import LinearLayer, int8_constants
from .sparse_int8 import int8_canonical_arrays


class DenseAmx(DenseInt8):  # same contract, weight packing and constants as the VNNI kernel
    name = "dense_amx"
    needs = frozenset(FEATURES)
    tuned = False
    priority = 10

    def supports(self, layer: LinearLayer, m: int) -> bool:
        n, k = layer.weight.shape
        return super().supports(layer, m) and fits(m, k, n)

    def func(self, key: KernelKey, epilogue: Epilogue = CANONICAL_EPILOGUE) -> tirx.PrimFunc:
        return dense_amx(key.m, key.k, key.n, epilogue)

    def canonical(self, key: KernelKey) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        w, (x, *epi), out = int8_canonical_arrays(key, np.random.default_rng(key.seed()))
        return self.workload(key), [x, pack_dense(w), *epi, out]

    def space(self):
        raise NotImplementedError("dense_amx is written scheduled: nothing to tune")

    def build(self, layer: LinearLayer, m: int) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        n, k = layer.weight.shape
        c = int8_constants(layer)
        func = dense_amx(m, k, n, c.epilogue, quantize_input=True)
        return func, [c.qin, pack_dense(c.weight), c.scale, c.corr, c.bias]


KIND = DenseAmx()
