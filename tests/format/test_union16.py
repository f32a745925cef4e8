import numpy as np
import pytest

from tvm_sparse.format import bsr4x1
from tvm_sparse.format.union16 import CHUNK, pack_union16, union_fraction, unpack_union16


def _w(n, k, sparsity, seed=0):
    return bsr4x1.prune(np.random.default_rng(seed).integers(-128, 128, (n, k), dtype=np.int8), sparsity)


@pytest.mark.parametrize("shape", [(16, 1), (32, 64), (48, 200), (256, 768)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("group", ["similar", "order"])
def test_round_trip(shape, sparsity, group):
    w = _w(*shape, sparsity, seed=shape[1])
    p = pack_union16(w, group)
    assert np.array_equal(unpack_union16(p), w)
    assert sorted(p.perm) == list(range(shape[0]))  # a permutation of the output channels
    assert p.kidx.min() >= 0 and p.kidx.max() < shape[1]  # padding columns stay in bounds
    assert p.values.shape == (p.n_chunks, 16, CHUNK) and p.kidx.shape == (p.n_chunks, CHUNK)
    assert (np.diff(p.chunk_ptr) >= 1).all()  # every group, even an all-zero one, has a chunk
    if group == "order":
        assert np.array_equal(p.perm, np.arange(shape[0]))


def test_padding_columns_carry_zero_weights():
    w = np.zeros((16, 100), np.int8)
    w[:4, 3] = 1  # a union of one channel: 63 padding columns repeating it
    p = pack_union16(w, "order")
    assert p.n_chunks == 1 and (p.kidx[0] == 3).all()
    assert p.values[0, :4, 0].tolist() == [1, 1, 1, 1] and not p.values[0, :, 1:].any()


def test_similar_grouping_shrinks_unions():
    """Interleaved block rows with two disjoint channel sets: grouping by similarity halves the chunks."""
    w = np.zeros((64, 256), np.int8)
    for r in range(16):
        w[4 * r: 4 * r + 4, (r % 2) * 128: (r % 2) * 128 + 64] = 1
    assert pack_union16(w, "order").n_chunks == 8
    similar = pack_union16(w, "similar")
    assert similar.n_chunks == 4 and union_fraction(similar) == 0.25


def test_refusals():
    with pytest.raises(ValueError, match="multiple of 16"):
        pack_union16(np.zeros((20, 8), np.int8))
    with pytest.raises(ValueError, match="int8"):
        pack_union16(np.zeros((16, 8), np.float32))
    with pytest.raises(ValueError, match="group"):
        pack_union16(np.zeros((16, 8), np.int8), "random")
