"""4x1 block-sparse weights packed for AMX: 16-channel groups over the union of their nonzero input channels.

AMX multiplies whole 16 x 64 tiles, so a 4x1 block row (4 channels) is too thin for it. Four block rows
make a 16-channel *group*; the input channels where any of them has a nonzero block form the group's
*union*, padded with zero weights to a multiple of 64 (one ``tdpbsud`` step). Each 64-wide *chunk* of a
union is one s8 A tile, ``values[c, r, j] = W[perm[16 g + r], kidx[c, j]]``, stored whole (1 KiB) so a
tile load streams. The kernel gathers the activation rows ``kidx[c, :]`` for each chunk.

Which block rows share a group is free (the output channel order is restored through ``perm`` when the
kernel stores): ``group="similar"`` puts block rows with overlapping nonzero input channels together, so
unions, and with them both the tile products and the activation gathers, shrink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bsr4x1 import BLOCK, block_mask

GROUP_ROWS = 4  # block rows per group
GROUP = GROUP_ROWS * BLOCK  # output channels per group: the rows of an AMX tile
CHUNK = 64  # union input channels per chunk: the bytes of a tile row (one tdpbsud's reduction)


@dataclass(frozen=True)
class PackedUnion16:
    """A 4x1 block-sparse ``W[N, K]`` as 16-channel groups of dense 16 x 64 s8 tiles.

    chunk_ptr: int32 [G+1]           chunks of group g are ``chunk_ptr[g]:chunk_ptr[g+1]``
    kidx:      int32 [C, 64]         input channel of each column of a chunk (padding: a real channel
                                     with zero weights, so the gather stays in bounds)
    values:    int8  [C, 16, 64]     ``values[c, r, j] = W[perm[16 g + r], kidx[c, j]]``: the A tile
    perm:      int32 [G*16]          original output channel of group row ``16 g + r``
    shape:     (N, K)
    """

    chunk_ptr: np.ndarray
    kidx: np.ndarray
    values: np.ndarray
    perm: np.ndarray
    shape: tuple[int, int]

    @property
    def n_groups(self) -> int:
        return len(self.chunk_ptr) - 1

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_ptr[-1])

    def arrays(self) -> list[np.ndarray]:
        """The kernel's weight arguments, in its parameter order (ChunkPtr, Kidx, Values, Perm)."""
        return [self.chunk_ptr, self.kidx, self.values, self.perm]


def _groups_in_order(mask: np.ndarray) -> list[list[int]]:
    nb = mask.shape[0]
    return [list(range(s, min(s + GROUP_ROWS, nb))) for s in range(0, nb, GROUP_ROWS)]


def _groups_by_similarity(mask: np.ndarray) -> list[list[int]]:
    """Greedy: seed each group with the densest block row left, then add, one at a time, the row that
    grows the union least (ties: the denser row, whose blocks then ride in a union already paid for)."""
    left = np.ones(mask.shape[0], bool)
    density = mask.sum(axis=1)
    maskf = mask.astype(np.float32)
    groups = []
    while left.any():
        seed = int(np.flatnonzero(left)[np.argmax(density[left])])
        left[seed] = False
        group, union = [seed], mask[seed].copy()
        while len(group) < GROUP_ROWS and left.any():
            cand = np.flatnonzero(left)
            growth = maskf[cand] @ (~union).astype(np.float32)  # new union channels each candidate adds
            best = cand[np.lexsort((-density[cand], growth))[0]]
            group.append(int(best))
            union |= mask[best]
            left[best] = False
        groups.append(sorted(group))
    return groups


def pack_union16(weight: np.ndarray, group: str = "similar") -> PackedUnion16:
    """Pack a (4x1-pruned) s8 ``weight[N, K]`` for ``kernels.sparse_amx``. ``N`` must be a multiple of 16.

    ``group``: ``"similar"`` (block rows with overlapping nonzero input channels share a group; output
    channels are permuted, undone at the store) or ``"order"`` (consecutive block rows, ``perm`` is the
    identity)."""
    weight = np.asarray(weight)
    if weight.ndim != 2 or weight.dtype != np.int8:
        raise ValueError(f"an int8 [N, K] weight is needed, got {weight.dtype} {weight.shape}")
    n, k = weight.shape
    if n % GROUP:
        raise ValueError(f"N must be a multiple of {GROUP} output channels, got {n}")
    mask = block_mask(weight)  # [N/4, K]
    if group == "similar":
        groups = _groups_by_similarity(mask)
    elif group == "order":
        groups = _groups_in_order(mask)
    else:
        raise ValueError(f"group must be 'similar' or 'order', got {group!r}")
    chunk_ptr, kidx, values, perm = [0], [], [], []
    for rows in groups:
        channels = np.concatenate([np.arange(BLOCK * r, BLOCK * r + BLOCK) for r in rows])
        perm.append(channels)
        cols = np.flatnonzero(mask[rows].any(axis=0))
        n_chunks = max(1, -(-len(cols) // CHUNK))  # an empty group keeps one zero chunk: no special case
        padded = np.full(n_chunks * CHUNK, cols[-1] if len(cols) else 0, np.int64)
        padded[: len(cols)] = cols
        vals = weight[channels][:, padded]  # [16, n_chunks * 64]
        vals[:, len(cols):] = 0  # padding columns repeat a real channel: their weights must be zero
        kidx.append(padded.reshape(n_chunks, CHUNK))
        values.append(vals.reshape(GROUP, n_chunks, CHUNK).transpose(1, 0, 2))
        chunk_ptr.append(chunk_ptr[-1] + n_chunks)
    return PackedUnion16(
        chunk_ptr=np.asarray(chunk_ptr, np.int32),
        kidx=np.ascontiguousarray(np.concatenate(kidx).reshape(-1, CHUNK).astype(np.int32)),
        values=np.ascontiguousarray(np.concatenate(values).reshape(-1, GROUP, CHUNK).astype(np.int8)),
        perm=np.concatenate(perm).astype(np.int32),
        shape=(n, k),
    )


def unpack_union16(packed: PackedUnion16) -> np.ndarray:
    """The dense ``[N, K]`` weight back (exact)."""
    n, k = packed.shape
    out = np.zeros((n, k), np.int8)
    for g in range(packed.n_groups):
        rows = packed.perm[GROUP * g: GROUP * g + GROUP]
        for c in range(packed.chunk_ptr[g], packed.chunk_ptr[g + 1]):
            # add: a padding column repeats a real one with zero weight and must not erase it
            for j in range(CHUNK):
                out[rows, packed.kidx[c, j]] += packed.values[c, :, j]
    return out


def union_fraction(packed: PackedUnion16) -> float:
    """Tile products done (padded unions) over those of the dense weight: the AMX work left."""
    n, k = packed.shape
    return packed.n_chunks * CHUNK / (packed.n_groups * -(-k // CHUNK) * CHUNK)
