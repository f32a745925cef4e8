"""Dense u8 x s8 -> s32 on AMX tiles (``kernels/amx.py``): dense int8 Linears where the target has AMX.

4.4x the tuned VNNI kernel at 128x768x3072 on a Sapphire Rapids core. The kernel is written scheduled
(tile numbers are immediates), so it has no records and no design space. Its would-be knobs were measured
instead (1 thread, 128 tokens, alternately; README "AMX"): 1 x 2 blocks 0.95-1.01x the 2 x 2 ones at K = 768
and 0.79x at 3072x768, K split into chunks 0.44-0.87x; the task count, the one that paid (up to 10%), follows
from the block count (``task_count``).
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
