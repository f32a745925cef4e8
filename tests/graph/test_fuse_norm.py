"""The residual add + LayerNorm fusion: where it applies, where it must not, and that it computes
what the two ops did."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from tvm_sparse.graph import importer
from tvm_sparse.graph import swap as rewrite
from tvm_sparse.graph.fuse_norm import fuse_add_layer_norm
from tvm_sparse.target import resolve

from .conftest import SEQ


def test_every_norm_of_the_tiny_bert_fuses(tiny_pruned):
    static = importer.static_model(tiny_pruned, 1, SEQ)
    mod, _ = importer.to_relax(static, 1, SEQ)
    swapped, _ = rewrite.swap_linears(mod, "fp32", resolve())
    fused, n = fuse_add_layer_norm(swapped)
    # the embeddings' sum and two residuals in each of the 2 layers
    assert n == 5
    text = fused["main"].script()
    assert "R.nn.layer_norm" not in text and text.count("add_layer_norm_r32_h64") == 5


def _graph(shared: bool, hidden: int = 64) -> tvm.IRModule:
    gamma = np.linspace(0.5, 1.5, hidden).astype(np.float32)
    beta = np.linspace(-1, 1, hidden).astype(np.float32)
    bb = relax.BlockBuilder()
    a, b = (relax.Var(n, relax.TensorType((2, 8, hidden), "float32")) for n in "ab")
    with bb.function("main", [a, b]):
        with bb.dataflow():
            s = bb.emit(relax.op.add(a, b))
            y = bb.emit(relax.op.nn.layer_norm(s, relax.const(gamma), relax.const(beta), axes=[-1], epsilon=1e-5))
            out = bb.emit_output(relax.op.add(y, s) if shared else y)  # the sum used twice: it must stay
        bb.emit_func_output(out)
    return bb.get()


def _run(mod, *arrays):
    ex = relax.build(mod, target=resolve())
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(x) for x in arrays]).numpy()


def test_fused_computes_what_the_ops_did():
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2, 8, 64)).astype(np.float32) for _ in range(2))
    mod = _graph(shared=False)
    fused, n = fuse_add_layer_norm(mod)
    assert n == 1
    np.testing.assert_allclose(_run(fused, a, b), _run(mod, a, b), atol=1e-5, rtol=1e-5)


def test_sum_used_elsewhere_is_left_alone():
    _, n = fuse_add_layer_norm(_graph(shared=True))
    assert n == 0


def test_ragged_hidden_is_left_alone():
    _, n = fuse_add_layer_norm(_graph(shared=False, hidden=40))
    assert n == 0
