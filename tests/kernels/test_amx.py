"""AMX tiles: the dense kernel is exact (s32) and computes dense_int8's epilogues, holds tdpbusd, needs
Linux's permission, and a graph's dense Linears run on it. Skipped, with the reason, without AMX."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tvm

from tvm_sparse import pipeline
from tvm_sparse.kernels.amx import FEATURES, dense_amx
from tvm_sparse.kernels.dense_int8 import dense_int8, pack_dense
from tvm_sparse.kernels.epilogue import Epilogue
from tvm_sparse.runtime import cpu

HAS_AMX = not cpu.missing(list(FEATURES))
pytestmark = pytest.mark.skipif(not HAS_AMX, reason="this CPU has no AMX (amx_tile, amx_int8 in /proc/cpuinfo)")


@pytest.fixture(scope="module")
def target():
    from tvm_sparse.runtime.amx import request_permission
    from tvm_sparse.target import resolve

    request_permission()
    return resolve()


def _build(func, target):
    return pipeline.build(tvm.IRModule({"main": func}), target)


@pytest.mark.parametrize("m, k, n, tasks", [(32, 64, 32, None), (128, 768, 768, None), (64, 256, 96, None),
                                           (64, 256, 192, 1), (64, 256, 192, 2), (64, 256, 192, 6)])
def test_dense_amx_is_exact(m, k, n, tasks, target):
    """Every task count covers every output block once: one task (all blocks), a few, one per block."""
    rng = np.random.default_rng(m + k + n)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    w = rng.integers(-128, 128, (n, k), dtype=np.int8)  # the full s8 range, -128 included
    lib = _build(dense_amx(m, k, n, tasks=tasks), target)
    args = [tvm.runtime.tensor(a) for a in (x, pack_dense(w), np.zeros((m, n), np.int32))]
    lib(*args)
    np.testing.assert_array_equal(args[-1].numpy(), x.astype(np.int32) @ w.astype(np.int32).T)
    asm = lib.inspect_source("asm")
    assert "tdpbusd" in asm and "ldtilecfg" in asm and "vpdpbusd" not in asm
    # the next output-channel block's weights are prefetched into L2 while this one runs
    assert ("prefetcht1" in asm) == (n > 32)


@pytest.mark.parametrize("epilogue", [Epilogue.FP32, Epilogue.GELU])
def test_dense_amx_epilogues_match_the_vnni_kernel(epilogue, target):
    """Same parameters, same quantization and epilogue code as dense_int8: a drop-in for a dense Linear."""
    m, k, n = 32, 128, 64
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((m, k)).astype(np.float32), np.array([20.0, 128.0], np.float32),
              pack_dense(rng.integers(-127, 128, (n, k), dtype=np.int8)),
              rng.uniform(1e-4, 1e-3, n).astype(np.float32), rng.integers(-999, 999, n).astype(np.int32),
              rng.standard_normal(n).astype(np.float32)]
    outs = []
    for func in (dense_amx(m, k, n, epilogue, quantize_input=True), dense_int8(m, k, n, epilogue, quantize_input=True)):
        assert [p.name for p in func.params] == ["X", "Qin", "Wp", "Scale", "Corr", "Bias", "Y"]
        lib = tvm.tirx.build(func, target=target)
        args = [tvm.runtime.tensor(a) for a in arrays] + [tvm.runtime.tensor(np.zeros((m, n), np.float32))]
        lib(*args)
        outs.append(args[-1].numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-6)


def test_task_count_divides_the_blocks():
    from tvm_sparse.kernels.amx import task_count

    assert task_count(96) == 16 and task_count(24) == 12 and task_count(7) == 7 and task_count(96, 1) == 1
    assert task_count(6, 4) == 3  # never more than asked, always a divisor


def test_shapes_that_do_not_tile_are_refused():
    with pytest.raises(ValueError, match="m % 32"):
        dense_amx(48, 64, 32)


def test_without_the_permission_the_first_tile_instruction_faults(tmp_path, target):
    """Why load() and every benchmark ask first: a fresh process that skips it dies (SIGILL)."""
    lib_path = tmp_path / "amx.so"
    _build(dense_amx(32, 64, 32), target).export_library(str(lib_path))
    code = f"""
import sys, numpy as np, tvm
if sys.argv[1] == "ask":
    from tvm_sparse.runtime.amx import request_permission
    request_permission()
lib = tvm.runtime.load_module({str(lib_path)!r})
args = [tvm.runtime.tensor(a) for a in (np.ones((32, 64), np.uint8), np.ones((2, 16, 16, 4), np.int8),
                                        np.zeros((32, 32), np.int32))]
lib["main"](*args)
print(int(args[-1].numpy()[0, 0]))
"""
    asked = subprocess.run([sys.executable, "-c", code, "ask"], capture_output=True, text=True)
    assert asked.returncode == 0 and asked.stdout.strip() == "64", asked.stderr[-500:]
    skipped = subprocess.run([sys.executable, "-c", code, "skip"], capture_output=True, text=True)
    assert skipped.returncode != 0  # killed by the CPU, not a wrong answer
