"""The kernel-kind registry: the one way the project picks, tunes and builds kernels."""

import numpy as np
import pytest

from tvm_sparse import kinds
from tvm_sparse.format import bsr4x1
from tvm_sparse.kinds import KernelKey, KernelKind, LinearLayer
from tvm_sparse.kinds.base import for_layer
from tvm_sparse.target import resolve


def _layer(sparse: bool, precision: str = "int8", n: int = 64, k: int = 128) -> LinearLayer:
    w = np.random.default_rng(0).standard_normal((n, k)).astype(np.float32)
    return LinearLayer(bsr4x1.prune(w, 0.9) if sparse else w, None, False, precision, sparse)


def test_each_layer_gets_the_kind_its_target_can_run():
    spr, zen = resolve("sapphirerapids"), resolve("znver4")
    assert kinds.for_layer(_layer(False), 128, spr).name == "dense_amx"  # AMX where the target has it
    assert kinds.for_layer(_layer(False), 128, zen).name == "dense_int8"  # never on a CPU without
    assert kinds.for_layer(_layer(False), 100, spr).name == "dense_int8"  # 100 tokens do not tile whole
    assert kinds.for_layer(_layer(True), 128, spr).name == "sparse_int8"
    assert kinds.for_layer(_layer(True, "fp32"), 128, zen).name == "sparse_fp32"
    assert kinds.for_layer(_layer(False, "fp32"), 128, zen) is None  # stays a Relax matmul


def test_unknown_and_duplicate_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown kernel kind 'sparse_int4'.*sparse_int8"):
        KernelKey("sparse_int4", 8, 8, 8)
    with pytest.raises(ValueError, match="registered twice"):
        kinds.register(kinds.get("dense_int8"))
    assert "dense_amx" not in kinds.tunable() and "sparse_int8" in kinds.tunable()


def test_a_new_kind_is_one_registration(monkeypatch):
    """A kind registered from outside is found by name and preferred by priority where it applies."""
    from tvm_sparse.kinds import base as registry

    class Faster(KernelKind):
        name, sparse, precision, priority = "dense_test", False, "int8", 99
        needs = frozenset({"avx512vnni"})

    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    kinds.register(Faster())
    assert KernelKey("dense_test", 8, 8, 8).name == "dense_test_m8_k8_n8"
    assert for_layer(_layer(False), 128, resolve("znver4")).name == "dense_test"


@pytest.mark.parametrize("name", ["sparse_int8", "sparse_fp32", "dense_int8", "dense_amx"])
def test_every_kind_has_a_canonical_instance(name):
    kind = kinds.get(name)
    key = KernelKey(name, 32, 64, 64, 80 if kind.sparse else 0)
    func, arrays = kind.canonical(key)
    assert func.attrs["tvm_sparse.workload"] == key.name
    assert len(arrays) == len(func.params)


def test_sparse_amx_is_one_registration_and_agrees_with_the_vnni_kind(target):
    """A chained layer ([K, M] u8 in, [N, M] u8 out) on an AMX target takes the sparse AMX kind; its kernel
    and constants give what the VNNI kind's give, on the same swizzled input."""
    import tvm
    from tvm import s_tir

    from tvm_sparse import pipeline
    from tvm_sparse.kernels.amx import FEATURES
    from tvm_sparse.runtime import cpu
    from tvm_sparse.runtime.amx import request_permission
    from tvm_sparse.schedule.narrow import finalize

    if not kinds.get("sparse_amx").available(target) or cpu.missing(list(FEATURES)):
        pytest.skip("this CPU or target has no AMX")
    rng = np.random.default_rng(3)
    w = bsr4x1.prune(rng.standard_normal((64, 128)).astype(np.float32), 0.85)
    layer = LinearLayer(w, rng.standard_normal(64).astype(np.float32), False, "int8", True, act_scale=0.02,
                        act_zero_point=100, in_transposed=True, out_quant=(0.05, 120))
    assert kinds.for_layer(layer, 64, target).name == "sparse_amx"
    request_permission()
    x = rng.integers(0, 256, (128, 64), dtype=np.uint8)
    outs = []
    for name in ("sparse_amx", "sparse_int8"):
        kind = kinds.get(name)
        func, consts = kind.build(layer, 64)
        if kind.tuned:
            sch = s_tir.Schedule(func)
            kind.default_schedule(sch)
            func = finalize(sch.mod["main"])
        lib = pipeline.build(tvm.IRModule({"main": func}), target)
        dev = tvm.cpu()
        args = [tvm.runtime.tensor(a, dev) for a in (x, *consts, np.zeros((64, 64), np.uint8))]
        lib["main"](*args)
        outs.append(args[-1].numpy().astype(int))
    assert np.abs(outs[0] - outs[1]).max() <= 1 and (outs[0] == outs[1]).mean() > 0.99
