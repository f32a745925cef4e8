"""The rewrite's folds, on a hand-built attention score graph (no exporter needed)."""

import numpy as np
import tvm
from tvm import relax

from tvm_sparse.format import bsr4x1
from tvm_sparse.graph import swap as rewrite
from tvm_sparse.graph.calibrate import ActQuant, weight_key
from tvm_sparse.graph.compile import build
from tvm_sparse.target import resolve

M, H, HEADS = 32, 64, 2
D = H // HEADS


def _scores_graph(wq, bq, wk, bk, scale):
    """Q @ K^T the way torch exports it: head split, K transposed, 1/sqrt(d) on both sides."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((M, H), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            def linear(w, b):
                return bb.emit(relax.op.add(relax.op.matmul(x, relax.op.permute_dims(relax.const(w))), relax.const(b)))

            q, k = linear(wq, bq), linear(wk, bk)
            q = bb.emit(relax.op.permute_dims(relax.op.reshape(q, (1, M, HEADS, D)), [0, 2, 1, 3]))
            q = bb.emit(relax.op.multiply(q, relax.const(scale, "float32")))
            k = bb.emit(relax.op.permute_dims(relax.op.reshape(k, (1, M, HEADS, D)), [0, 2, 1, 3]))
            k = bb.emit(relax.op.permute_dims(relax.op.reshape(k, (HEADS, M, D)), [0, 2, 1]))
            k = bb.emit(relax.op.multiply(relax.op.reshape(k, (1, HEADS, D, M)), relax.const(scale, "float32")))
            out = bb.emit_output(relax.op.matmul(q, k))
        bb.emit_func_output(out)
    return bb.get()


def test_attention_scale_and_k_transpose_fold_into_the_kernels():
    rng = np.random.default_rng(0)
    wq, wk = (bsr4x1.prune(rng.standard_normal((H, H)).astype(np.float32) * 0.3, 0.9) for _ in range(2))
    bq, bk = (rng.standard_normal(H).astype(np.float32) for _ in range(2))
    scale = 1 / np.sqrt(D)
    calib = {weight_key(w): ActQuant.from_range(-2.0, 2.0) for w in (wq, wk)}
    target = resolve()
    mod, layers = rewrite.swap_linears(_scores_graph(wq, bq, wk, bk, scale), "int8", target, calib=calib)
    kernels = sorted(x.kernel for x in layers)
    assert kernels[1].endswith("_to_nm") and not kernels[0].endswith("_to_nm"), kernels
    text = mod["main"].script()
    assert "R.multiply" not in text and "permute_dims(lv" in text  # Q keeps its head split, K has none

    x = rng.uniform(-2, 2, (M, H)).astype(np.float32)
    vm = relax.VirtualMachine(build(mod, target, None, allow_untuned=True), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    q = (x @ wq.T + bq).reshape(M, HEADS, D).transpose(1, 0, 2) * scale
    k = (x @ wk.T + bk).reshape(M, HEADS, D).transpose(1, 2, 0) * scale
    ref = (q @ k)[None]
    assert np.abs(got - ref).max() < 0.03 * np.abs(ref).max()  # int8 error, not a factor of 1/sqrt(d)
