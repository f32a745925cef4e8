"""Dense u8 x s8 -> s32 on AMX tiles (``kernels/amx.py``): dense int8 Linears where the target has AMX.

4.4x the tuned VNNI kernel at 128x768x3072 on a Sapphire Rapids core. The kernel is written scheduled
(tile numbers are immediates, the blocking is fixed), so it has no records and no design space.
"""

from __future__ import annotations

from tvm import tirx

from ..kernels.amx import FEATURES, dense_amx, fits
from ..kernels.epilogue import Epilogue
from .dense_int8 import DenseInt8
from .layer import LinearLayer


class DenseAmx(DenseInt8):  # same contract, weight packing and constants as the VNNI kernel
    name = "dense_amx"
    needs = frozenset(FEATURES)
    tuned = False
    priority = 10

    def supports(self, layer: LinearLayer, m: int) -> bool:
        n, k = layer.weight.shape
        return super().supports(layer, m) and fits(m, k, n)

    def kernel(self, m: int, k: int, n: int, epilogue: Epilogue, quantize_input: bool = False) -> tirx.PrimFunc:
        return dense_amx(m, k, n, epilogue, quantize_input=quantize_input)

    def space(self):
        raise NotImplementedError("dense_amx is written scheduled: nothing to tune")


KIND = DenseAmx()
