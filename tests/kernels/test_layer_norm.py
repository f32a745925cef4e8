import numpy as np
import pytest
import tvm

from tvm_sparse import pipeline
from tvm_sparse.kernels.layer_norm import add_layer_norm, reference


@pytest.mark.parametrize("rows,hidden", [(128, 768), (7, 64)])
def test_matches_numpy(rows, hidden, target):
    rng = np.random.default_rng(rows)
    # an offset mean much larger than the spread: one-pass E[x^2] - E[x]^2 would lose digits here
    a = (rng.standard_normal((rows, hidden)) * 2 + 30).astype(np.float32)
    b = rng.standard_normal((rows, hidden)).astype(np.float32)
    g, bt = rng.standard_normal(hidden).astype(np.float32), rng.standard_normal(hidden).astype(np.float32)
    lib = pipeline.build(add_layer_norm(rows, hidden, 1e-12), target)
    args = [tvm.runtime.tensor(x) for x in (a, b, g, bt, np.zeros((rows, hidden), np.float32))]
    lib(*args)
    np.testing.assert_allclose(args[-1].numpy(), reference(a, b, g, bt, 1e-12), atol=2e-5, rtol=1e-5)


def test_refuses_ragged_hidden():
    with pytest.raises(ValueError, match="divisible by 16"):
        add_layer_norm(4, 100, 1e-5)
