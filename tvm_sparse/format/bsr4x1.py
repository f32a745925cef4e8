"""The 4x1 block-sparse weight format: pruning, detection, packing, unpacking.

A weight ``W[N, K]`` (N output channels, K input channels) is cut into 4x1 blocks: 4 consecutive
output channels x 1 input channel. Block row ``r`` covers channels ``4r .. 4r+3``. The nonzero blocks
of a block row are grouped 4 at a time along K into 4x4 *tiles*, which is what one VNNI step eats:
4 input channels (the 4 bytes ``vpdpbusd`` sums) x 4 output channels (4 accumulators that reuse one
gathered activation vector). The last tile of a row is zero-padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 4  # output channels per block
TILE_K = 4  # blocks grouped along K per tile (the 4 bytes of one vpdpbusd lane)


class FormatError(ValueError):
    """A weight that this format cannot represent as asked."""


def _check_weight(weight: np.ndarray) -> np.ndarray:
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise FormatError(f"a weight must be 2-D [out_channels, in_channels], got shape {weight.shape}")
    if weight.size == 0:
        raise FormatError(f"a weight must not be empty, got shape {weight.shape}")
    return weight


def _pad_rows(weight: np.ndarray) -> np.ndarray:
    """Zero-pad output channels up to a multiple of the block height."""
    pad = (-weight.shape[0]) % BLOCK
    return np.pad(weight, ((0, pad), (0, 0))) if pad else weight


def block_mask(weight: np.ndarray) -> np.ndarray:
    """``[ceil(N/4), K]`` bool: which 4x1 blocks hold a nonzero."""
    weight = _pad_rows(_check_weight(weight))
    return (weight.reshape(-1, BLOCK, weight.shape[1]) != 0).any(axis=1)


def block_sparsity(weight: np.ndarray) -> float:
    """Fraction of 4x1 blocks that are all zero (the sparsity the kernel can exploit)."""
    return float(1.0 - block_mask(weight).mean())


def prune(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """Magnitude-prune ``weight`` to ``sparsity`` in 4x1 blocks (L2 norm of each block ranks it).

    Returns a copy with the weakest ``round(sparsity * n_blocks)`` blocks zeroed. Padding channels
    (when N is not a multiple of 4) are never returned.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise FormatError(f"sparsity must be within [0, 1], got {sparsity}")
    weight = _check_weight(weight)
    padded = _pad_rows(weight).astype(np.float64)
    blocks = padded.reshape(-1, BLOCK, padded.shape[1])
    norms = np.sqrt((blocks**2).sum(axis=1))  # [NB, K]
    n_prune = int(round(sparsity * norms.size))
    keep = np.ones(norms.size, dtype=bool)
    if n_prune:
        # stable sort: ties prune the lower index first, so results are reproducible
        keep[np.argsort(norms, axis=None, kind="stable")[:n_prune]] = False
    mask = np.repeat(keep.reshape(norms.shape)[:, None, :], BLOCK, axis=1).reshape(padded.shape)
    return np.where(mask[: weight.shape[0]], weight, np.zeros_like(weight))


@dataclass(frozen=True)
class PackedWeight:
    """A 4x1 block-sparse weight in the kernel's layout.

    indptr:  int32 [NB+1]       tiles of block row r are ``indptr[r]:indptr[r+1]``
    indices: int32 [T, 4]       input channel of each of a tile's 4 block columns
    values:  [T, 4, 4]          ``values[t, o, j] = W[4r+o, indices[t, j]]``: the 4 bytes of output
                                channel o that one ``vpdpbusd`` lane sums, contiguous
    shape:   (N, K)             the unpadded dense shape
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    @property
    def n_block_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_tiles(self) -> int:
        return int(self.indptr[-1])

    @property
    def max_tiles_per_row(self) -> int:
        return int(np.diff(self.indptr).max(initial=0))

    @property
    def nnz_blocks(self) -> int:
        """Nonzero 4x1 blocks (excluding tile padding)."""
        return int(block_mask(unpack(self)).sum())


def pack(weight: np.ndarray) -> PackedWeight:
    """Pack a (pruned) weight into 4x4 tiles of 4x1 blocks. Any N and K; zero blocks are skipped."""
    weight = _check_weight(weight)
    n, k = weight.shape
    padded = _pad_rows(weight)
    mask = block_mask(weight)
    blocks = padded.reshape(-1, BLOCK, k)  # [NB, 4, K]
    indptr = [0]
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for r in range(mask.shape[0]):
        cols = np.flatnonzero(mask[r]).astype(np.int32)
        n_tiles = -(-len(cols) // TILE_K)
        pad = n_tiles * TILE_K - len(cols)
        # a padding column repeats a real (in-range) column with zero weight: loads stay in bounds
        cols_p = np.concatenate([cols, np.full(pad, cols[-1] if len(cols) else 0, np.int32)])
        vals = blocks[r][:, cols_p]  # [4, n_tiles*4]
        if pad:
            vals[:, len(cols):] = 0
        indices.append(cols_p.reshape(n_tiles, TILE_K))
        values.append(vals.reshape(BLOCK, n_tiles, TILE_K).transpose(1, 0, 2))
        indptr.append(indptr[-1] + n_tiles)
    return PackedWeight(
        indptr=np.asarray(indptr, dtype=np.int32),
        indices=np.concatenate(indices).astype(np.int32).reshape(-1, TILE_K),
        values=np.ascontiguousarray(np.concatenate(values).reshape(-1, BLOCK, TILE_K)).astype(weight.dtype),
        shape=(n, k),
    )


def unpack(packed: PackedWeight) -> np.ndarray:
    """The dense ``[N, K]`` weight back from its packed form (exact)."""
    n, k = packed.shape
    out = np.zeros((packed.n_block_rows * BLOCK, k), dtype=packed.values.dtype)
    for r in range(packed.n_block_rows):
        for t in range(packed.indptr[r], packed.indptr[r + 1]):
            for j in range(TILE_K):
                # padding slots carry zeros: add so a repeated column cannot erase a real block
                out[4 * r : 4 * r + 4, packed.indices[t, j]] += packed.values[t, :, j]
    return out[:n]


def stats(weight: np.ndarray) -> dict:
    """Sparsity statistics of a weight, for reports and for choosing sparse vs dense."""
    weight = _check_weight(weight)
    mask = block_mask(weight)
    per_row = mask.sum(axis=1)
    tiles = -(-per_row // TILE_K)
    return {
        "shape": list(weight.shape),
        "element_sparsity": float((weight == 0).mean()),
        "block_sparsity": float(1.0 - mask.mean()),
        "nnz_blocks": int(mask.sum()),
        "n_tiles": int(tiles.sum()),
        "tile_fill": float(mask.sum() / max(1, tiles.sum() * TILE_K)),
        "empty_block_rows": int((per_row == 0).sum()),
        "max_tiles_per_row": int(tiles.max(initial=0)),
    }
