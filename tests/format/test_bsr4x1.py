import numpy as np
import pytest

from tvm_sparse.format import bsr4x1


def _rand(n, k, seed=0):
    return np.random.default_rng(seed).integers(-127, 128, (n, k), dtype=np.int8)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.7, 0.9, 0.99, 1.0])
def test_prune_hits_block_sparsity(sparsity):
    w = bsr4x1.prune(_rand(64, 96), sparsity)
    assert abs(bsr4x1.block_sparsity(w) - sparsity) <= 1 / (16 * 96)


def test_prune_keeps_strongest_blocks():
    w = np.ones((8, 4), np.float32)
    w[4:8, 2] = 10.0  # the one strong block
    pruned = bsr4x1.prune(w, 7 / 8)
    assert np.array_equal(bsr4x1.block_mask(pruned), np.array([[0, 0, 0, 0], [0, 0, 1, 0]], bool))


@pytest.mark.parametrize("shape", [(64, 96), (13, 7), (4, 1), (1, 5), (100, 30)])
@pytest.mark.parametrize("sparsity", [0.0, 0.8, 0.99])
def test_pack_unpack_round_trip(shape, sparsity):
    w = bsr4x1.prune(_rand(*shape, seed=shape[0]), sparsity)
    p = bsr4x1.pack(w)
    assert np.array_equal(bsr4x1.unpack(p), w)
    assert p.indices.max(initial=0) < shape[1]  # padding slots stay in bounds
    assert p.values.shape == (p.n_tiles, 4, 4) and p.indptr[-1] == p.n_tiles


def test_pack_layout_is_what_the_kernel_reads():
    w = np.zeros((8, 16), np.int8)
    w[0:4, [1, 5, 9]] = np.arange(12, dtype=np.int8).reshape(4, 3) + 1
    p = bsr4x1.pack(w)
    assert list(p.indptr) == [0, 1, 1]  # row 1 is empty
    assert list(p.indices[0][:3]) == [1, 5, 9]
    assert np.array_equal(p.values[0, :, :3], w[0:4, [1, 5, 9]])
    assert not p.values[0, :, 3].any()  # zero padding


def test_detects_sparsity_of_existing_weight():
    w = _rand(32, 32)
    w[:, ::2] = 0
    assert bsr4x1.block_sparsity(w) == 0.5
    s = bsr4x1.stats(w)
    assert s["nnz_blocks"] == 8 * 16 and s["empty_block_rows"] == 0


def test_bad_input_is_refused():
    with pytest.raises(bsr4x1.FormatError, match="2-D"):
        bsr4x1.pack(np.zeros(5))
    with pytest.raises(bsr4x1.FormatError, match="within"):
        bsr4x1.prune(np.zeros((4, 4)), 1.5)
    with pytest.raises(bsr4x1.FormatError, match="empty"):
        bsr4x1.pack(np.zeros((0, 4)))
