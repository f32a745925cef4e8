"""Which kernel each Linear gets. The one place the sparse/dense crossover lives."""

from __future__ import annotations

import numpy as np

from ..format import bsr4x1

# A Linear whose 4x1 block sparsity is at least this runs the block-sparse kernel, else the dense
# one. The crossover of the row-major kernel (what graphs use) against the tuned dense int8 kernel,
# from `tvm-sparse bench-kernel` at K=N=768, M=128 on Zen 5: 281.8 / 182.8 / 112.7 us at 70/80/90%
# against 369.5 us dense, a line that meets dense at 60% (nothing below 70% was measured directly).
SPARSE_THRESHOLD = 0.6
# Where the target has AMX, dense int8 Linears run on the tiles and the crossover moves up. Measured end to
# end on the Sapphire Rapids-class machine, 1 thread, one run (bench-e2e, sparse layers on VNNI): bert-base
# 80% 17.09 ms against 20.63 all dense on AMX, MiniLM 80% 2.72 against 2.82, at 90% 10.75 and 2.05: sparse
# still wins at 80%, by 4% on MiniLM, so below it dense AMX does. 0.78: uniform 80% pruning lands at 79.9%.
AMX_SPARSE_THRESHOLD = 0.78


def sparse_threshold(target) -> float:
    """The crossover for ``target``: higher where dense Linears run on AMX."""
    from .. import kinds

    return AMX_SPARSE_THRESHOLD if kinds.get("dense_amx").available(target) else SPARSE_THRESHOLD


def use_sparse(weight_nk: np.ndarray, threshold: float) -> bool:
    return bsr4x1.block_sparsity(weight_nk) >= threshold
