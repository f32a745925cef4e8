"""Which kernel each Linear gets. The one place the sparse/dense crossover lives."""

from __future__ import annotations

import numpy as np

from ..format import bsr4x1

# A Linear whose 4x1 block sparsity is at least this runs the block-sparse kernel, else the dense
# one. Set from the measured kernel crossover (tvm_sparse/bench/kernel*); placeholder until then.
SPARSE_THRESHOLD = 0.6


def use_sparse(weight_nk: np.ndarray, threshold: float | None = None) -> bool:
    return bsr4x1.block_sparsity(weight_nk) >= (SPARSE_THRESHOLD if threshold is None else threshold)
