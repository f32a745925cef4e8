"""4x1 block-sparse u8 x s8 -> s32 on AMX tiles (``kernels/sparse_amx.py``), ``[K, M] -> [N, M]`` only.

Four block rows make a 16-channel group packed over the union of their nonzero input channels
(``format/union16.py``). Measured on one Sapphire Rapids core (``python -m tvm_sparse.bench.sparse_amx``,
thread CPU time, M=128): against the tuned sparse VNNI kernel 1.33x (768x768), 1.15x (768x3072) and 1.22x
(3072x768) at 90%, 1.06-1.88x from 50 to 80%, and slower at 95% where K is 768 (0.84-0.93x: a group's 2-3
chunks cannot amortize a pass's fixed costs). So it takes layers from 50% to under 95%, where the target
has AMX. No graph layer has both of its layouts yet: the chains' up projections read row-major fp32, the
down projections write it.
"""

from __future__ import annotations

import numpy as np
from tvm import tirx

from ..format import bsr4x1
from ..format.union16 import pack_union16
from ..kernels.amx import FEATURES
from ..kernels.epilogue import Epilogue
from ..kernels.sparse_amx import fits, sparse_amx
from ..kernels.sparse_int8 import swizzles
from .base import CANONICAL_EPILOGUE, KernelKey, KernelKind, sparsity_bucket
from .layer import LinearLayer, int8_constants
from .sparse_int8 import int8_canonical_arrays

SPARSITY_RANGE = (0.5, 0.95)  # where it beat the VNNI kernel on every measured shape


class SparseAmx(KernelKind):
    name = "sparse_amx"
    sparse = True
    precision = "int8"
    needs = frozenset(FEATURES)
    tuned = False  # written scheduled; its one knob (tasks) is the thread count
    priority = 10

    def supports(self, layer: LinearLayer, m: int) -> bool:
        n, k = layer.weight.shape
        low, high = SPARSITY_RANGE
        return (super().supports(layer, m) and layer.in_transposed
                and (layer.out_quant is not None or layer.out_transposed) and fits(m, k, n)
                and low <= bsr4x1.block_sparsity(layer.weight) < high)

    def key(self, layer: LinearLayer, m: int) -> KernelKey:
        n, k = layer.weight.shape
        return KernelKey(self.name, m, k, n, sparsity_bucket(bsr4x1.block_sparsity(layer.weight)), transposed=True)

    def func(self, key: KernelKey, epilogue: Epilogue = CANONICAL_EPILOGUE) -> tirx.PrimFunc:
        return sparse_amx(key.m, key.k, key.n, epilogue)

    def canonical(self, key: KernelKey) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        w, (x, *epi), out = int8_canonical_arrays(KernelKey(key.kind, key.m, key.k, key.n, key.bucket, True),
                                                  np.random.default_rng(key.seed()))
        packed = pack_union16(bsr4x1.prune(w, key.bucket / 100))
        return self.workload(key), [x, *packed.arrays(), *epi, out]

    def build(self, layer: LinearLayer, m: int) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
        n, k = layer.weight.shape
        c = int8_constants(layer)
        func = sparse_amx(m, k, n, c.epilogue, x_swizzled=swizzles(m),
                          y_swizzled=layer.out_quant is not None and layer.out_swizzled and swizzles(m))
        consts = [*pack_union16(c.weight).arrays(), c.scale, c.corr, c.bias]
        if c.qout is not None:
            consts.append(c.qout)
        return func, consts


KIND = SparseAmx()
