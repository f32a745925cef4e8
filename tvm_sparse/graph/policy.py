"""Which kernel each Linear gets. The one place the sparse/dense crossover lives."""

from __future__ import annotations

import numpy as np

from ..format import bsr4x1

# A Linear whose 4x1 block sparsity is at least this runs the block-sparse kernel, else the dense
# one. The crossover of the row-major kernel (what graphs use) against the tuned dense int8 kernel,
# from `tvm-sparse bench-kernel` at K=N=768, M=128 on Zen 5: 281.8 / 182.8 / 112.7 us at 70/80/90%
# against 369.5 us dense, a line that meets dense at 60% (nothing below 70% was measured directly).
SPARSE_THRESHOLD = 0.6


def use_sparse(weight_nk: np.ndarray, threshold: float | None = None) -> bool:
    return bsr4x1.block_sparsity(weight_nk) >= (SPARSE_THRESHOLD if threshold is None else threshold)
