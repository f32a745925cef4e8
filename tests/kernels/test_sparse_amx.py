"""4x1-sparse int8 on AMX tiles: exact (s32) against numpy at several sparsities and shapes (ragged unions,
all-zero groups, permuted channels, swizzled token orders), the fused epilogues, ``tdpbsud`` in the
assembly. Skipped, with the reason, without AMX."""

from __future__ import annotations

import numpy as np
import pytest
import tvm

from tvm_sparse import pipeline
from tvm_sparse.format import bsr4x1
from tvm_sparse.format.union16 import pack_union16
from tvm_sparse.kernels.amx import FEATURES
from tvm_sparse.kernels.epilogue import Epilogue
from tvm_sparse.kernels.intrin import swizzled_position
from tvm_sparse.kernels.sparse_amx import sparse_amx
from tvm_sparse.runtime import cpu

HAS_AMX = not cpu.missing(list(FEATURES))
pytestmark = pytest.mark.skipif(not HAS_AMX, reason="this CPU has no AMX (amx_tile, amx_int8 in /proc/cpuinfo)")


@pytest.fixture(scope="module")
def target():
    from tvm_sparse.runtime.amx import request_permission
    from tvm_sparse.target import resolve

    request_permission()
    return resolve("host", 1)


_LIBS: dict = {}


def _lib(target, *key, **kw):
    """One build per kernel variant for the whole module (a build takes about a second)."""
    k = (key, tuple(sorted(kw.items())))
    if k not in _LIBS:
        _LIBS[k] = pipeline.build(tvm.IRModule({"main": sparse_amx(*key, **kw)}), target)
    return _LIBS[k]


def _run(lib, *arrays):
    args = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in arrays]
    lib(*args)
    return args[-1].numpy()


def _case(m, k, n, sparsity, seed=0):
    rng = np.random.default_rng(seed)
    w = bsr4x1.prune(rng.integers(-128, 128, (n, k), dtype=np.int8), sparsity)  # -128 included
    xt = rng.integers(0, 256, (k, m), dtype=np.uint8)  # [K, M]: tokens contiguous
    return xt, w


def _ref(xt, w):
    return w.astype(np.int32) @ xt.astype(np.int32)  # [N, M]


@pytest.mark.parametrize("m,k,n,sparsity", [
    (128, 768, 768, 0.9), (128, 768, 256, 0.5), (64, 256, 64, 0.0), (64, 200, 48, 0.7),
    (192, 96, 32, 0.95), (128, 3072, 32, 0.8), (64, 37, 16, 0.6), (64, 64, 192, 0.8),
])
@pytest.mark.parametrize("group", ["similar", "order"])
def test_exact_int32(m, k, n, sparsity, group, target):
    """Both ways to bring the accumulators to the output's token order: K <= N swizzles X first, K > N
    reorders the rows in the epilogue."""
    xt, w = _case(m, k, n, sparsity, seed=k + n)
    p = pack_union16(w, group)
    out = _run(_lib(target, m, k, n), xt, *p.arrays(), np.zeros((n, m), np.int32))
    np.testing.assert_array_equal(out, _ref(xt, w))


@pytest.mark.parametrize("union", [1, 4, 63, 64, 65, 128, 129])
def test_ragged_unions_and_all_zero_groups(union, target):
    """Unions of every remainder mod 64 (zero-weight padding), beside an all-zero group and a group with
    one nonzero block, in one weight."""
    m, k, n = 64, 192, 64
    rng = np.random.default_rng(union)
    w = np.zeros((n, k), np.int8)
    cols = rng.choice(k, union, replace=False)
    for r in range(4):  # group 0: the union is `cols`, split unevenly over its 4 block rows
        mine = cols[r::4] if union >= 4 else cols
        w[4 * r: 4 * r + 4, mine] = rng.integers(-128, 128, (4, len(mine)), dtype=np.int8)
    # group 1 stays all zero; group 2 has one block; group 3 is dense
    w[36:40, 5] = rng.integers(1, 128, 4, dtype=np.int8)
    w[48:64] = rng.integers(-128, 128, (16, k), dtype=np.int8)
    xt = rng.integers(0, 256, (k, m), dtype=np.uint8)
    for group in ("order", "similar"):
        p = pack_union16(w, group)
        if group == "order":  # the all-zero group keeps one zero chunk
            assert np.diff(p.chunk_ptr).tolist() == [-(-union // 64), 1, 1, 3]
        out = _run(_lib(target, m, k, n), xt, *p.arrays(), np.zeros((n, m), np.int32))
        np.testing.assert_array_equal(out, _ref(xt, w))


def test_all_zero_weight(target):
    m, k, n = 64, 64, 32
    xt = np.full((k, m), 255, np.uint8)
    p = pack_union16(np.zeros((n, k), np.int8))
    out = _run(_lib(target, m, k, n), xt, *p.arrays(), np.full((n, m), 7, np.int32))
    np.testing.assert_array_equal(out, np.zeros((n, m), np.int32))


def test_permuted_channels_land_in_place(target):
    """Block rows that share input channels are grouped across the weight: outputs go back through perm."""
    m, k, n = 64, 128, 32
    rng = np.random.default_rng(3)
    w = np.zeros((n, k), np.int8)
    for r in range(8):  # even block rows use channels 0..63, odd ones 64..127
        cols = np.arange(64) + (64 if r % 2 else 0)
        w[4 * r: 4 * r + 4, cols] = rng.integers(-128, 128, (4, 64), dtype=np.int8)
    p = pack_union16(w, "similar")
    assert p.n_chunks == 2 and not np.array_equal(p.perm, np.arange(n))  # "order" needs 4
    xt = rng.integers(0, 256, (k, m), dtype=np.uint8)
    out = _run(_lib(target, m, k, n), xt, *p.arrays(), np.zeros((n, m), np.int32))
    np.testing.assert_array_equal(out, _ref(xt, w))


@pytest.mark.parametrize("x_swizzled,y_swizzled", [(True, False), (False, True), (True, True)])
def test_swizzled_token_orders(x_swizzled, y_swizzled, target):
    """The VNNI kernel's swizzled 64-token order on either side (a chain hands it over for free)."""
    m, k, n = 128, 192, 48
    xt, w = _case(m, k, n, 0.8, seed=5)
    sw = np.array([swizzled_position(i) for i in range(m)])
    x_in = xt[:, sw] if x_swizzled else xt  # position i holds token sw[i]
    p = pack_union16(w)
    out = _run(_lib(target, m, k, n, x_swizzled=x_swizzled, y_swizzled=y_swizzled),
               x_in, *p.arrays(), np.zeros((n, m), np.int32))
    ref = _ref(xt, w)
    np.testing.assert_array_equal(out, ref[:, sw] if y_swizzled else ref)


def _erf(v):  # Abramowitz-Stegun 7.1.26, 1.5e-7 accurate
    t = 1.0 / (1.0 + 0.3275911 * np.abs(v))
    poly = (((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592
    return np.sign(v) * (1.0 - poly * t * np.exp(-v * v))


@pytest.mark.parametrize("epilogue", [Epilogue.FP32, Epilogue.GELU, Epilogue.U8, Epilogue.GELU_U8])
def test_fused_epilogues(epilogue, target):
    """sparse_int8's epilogue contract, parameters indexed by the original channel (the pack permutes)."""
    m, k, n = 64, 160, 64
    rng = np.random.default_rng(1)
    xt, w = _case(m, k, n, 0.8, seed=1)
    acc = _ref(xt, w)
    zp, sx = 7, 0.02
    scale = (sx * rng.uniform(0.001, 0.01, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    corr = (zp * w.astype(np.int32).sum(axis=1)).astype(np.int32)
    ref = (acc - corr[:, None]).astype(np.float32) * scale[:, None] + bias[:, None]
    if epilogue.has_gelu:
        ref = 0.5 * ref * (1 + _erf(ref / np.sqrt(2)))
    args = [scale, corr, bias]
    if epilogue.requantizes:
        s_out, zp_out = 0.05, 10
        args.append(np.array([1 / s_out, zp_out], np.float32))
        ref = np.clip(np.round(ref / s_out) + zp_out, 0, 255)
    p = pack_union16(w)
    assert not np.array_equal(p.perm, np.arange(n))  # the parameters really go through perm
    func = sparse_amx(m, k, n, epilogue)
    assert [q.name for q in func.params] == ["X", "ChunkPtr", "Kidx", "Values", "Perm", *epilogue.param_names(), "Y"]
    out = _run(_lib(target, m, k, n, epilogue=epilogue), xt, *p.arrays(), *args, np.zeros((n, m), epilogue.out_dtype))
    if epilogue.requantizes:
        assert np.abs(out.astype(np.int32) - ref).max() <= 1  # exact .5 ties may round either way
    else:
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def test_tdpbsud_in_assembly(target):
    asm = _lib(target, 128, 768, 768).inspect_source("asm")
    assert "tdpbsud" in asm and "ldtilecfg" in asm and "tilerelease" in asm
    assert "vpdpbusd" not in asm  # the products are all on the tile unit
    # the interleave is in-lane unpacks, not byte-by-byte extraction (the notes' silent slowdown)
    assert "vpunpcklbw" in asm and "vpunpckhwd" in asm and "vpextrb" not in asm


def test_shapes_that_do_not_tile_are_refused():
    with pytest.raises(ValueError, match="m % 64"):
        sparse_amx(100, 64, 32)
    with pytest.raises(ValueError, match="n % 16"):
        sparse_amx(64, 64, 40)


@pytest.mark.parametrize("tasks", [1, 2, 3, 6])
def test_any_split_into_tasks(tasks, target):
    """Tasks run consecutive groups as one software-pipelined stream: every split must give the same."""
    m, k, n = 128, 256, 96
    xt, w = _case(m, k, n, 0.85, seed=tasks)
    p = pack_union16(w)
    out = _run(_lib(target, m, k, n, tasks=tasks), xt, *p.arrays(), np.zeros((n, m), np.int32))
    np.testing.assert_array_equal(out, _ref(xt, w))


def test_exact_on_several_threads(tmp_path):
    """Each thread configures its own tiles: two threads, in a fresh process (the pool's size is fixed)."""
    code = """
import numpy as np, tvm
from tvm_sparse import pipeline
from tvm_sparse.format import bsr4x1
from tvm_sparse.format.union16 import pack_union16
from tvm_sparse.kernels.sparse_amx import sparse_amx
from tvm_sparse.runtime.amx import request_permission
from tvm_sparse.target import resolve
request_permission()
rng = np.random.default_rng(0)
w = bsr4x1.prune(rng.integers(-128, 128, (256, 384), dtype=np.int8), 0.9)
xt = rng.integers(0, 256, (384, 128), dtype=np.uint8)
lib = pipeline.build(tvm.IRModule({"main": sparse_amx(128, 384, 256, tasks=4)}), resolve("host", 2))
args = [tvm.runtime.tensor(a) for a in [xt, *pack_union16(w).arrays(), np.zeros((256, 128), np.int32)]]
for _ in range(20):
    lib(*args)
    assert np.array_equal(args[-1].numpy(), w.astype(np.int32) @ xt.astype(np.int32))
print("ok")
"""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TVM_NUM_THREADS": "2"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-800:]
