"""Pruning: orientation of ONNX weights, per-layer report numbers, and the written files."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tvm_sparse.format import bsr4x1
from tvm_sparse.graph.errors import GraphError
from tvm_sparse.graph.linears import find_linears
from tvm_sparse.graph.prune import prune_file, prune_model, report_path


def _linear_model(k: int = 16, n: int = 8, seed: int = 0) -> tuple[onnx.ModelProto, np.ndarray]:
    """x[1, k] @ B[k, n] + b: B is ONNX's [K, N] layout."""
    b_kn = np.random.default_rng(seed).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "B"], ["y0"], name="mm"),
         helper.make_node("Add", ["y0", "bias"], ["y"], name="add")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(b_kn, "B"), numpy_helper.from_array(np.zeros(n, np.float32), "bias")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), b_kn


def test_prunes_4x1_blocks_along_output_channels():
    model, b_kn = _linear_model()
    pruned, report = prune_model(model, 0.5)
    out = numpy_helper.to_array(pruned.graph.initializer[0])  # still [K, N]
    assert out.shape == b_kn.shape
    w_nk = out.T
    # 4 consecutive *output* channels (columns of B) share one zero pattern
    blocks = (w_nk.reshape(-1, 4, w_nk.shape[1]) != 0)
    assert (blocks.all(axis=1) | ~blocks.any(axis=1)).all()
    assert report[0]["block_sparsity"] == pytest.approx(0.5)
    assert report[0]["shape"] == [8, 16]
    # survivors are the strongest blocks, untouched
    np.testing.assert_array_equal(out[out != 0], b_kn[out != 0])
    assert np.allclose(w_nk, bsr4x1.prune(b_kn.T, 0.5))


def test_report_matches_the_written_model(tiny_onnx, tmp_path):
    out = tmp_path / "p.onnx"
    report = prune_file(tiny_onnx, out, 0.8)
    assert len(report) == 12  # 2 layers x (q, k, v, attention out, intermediate, output)
    written = json.loads(report_path(out).read_text())
    assert written["target_sparsity"] == 0.8 and len(written["layers"]) == 12
    model = onnx.load(str(out))
    inits = {i.name: i for i in model.graph.initializer}
    by_name = {r["layer"]: r for r in report}
    assert "encoder.layer.0.intermediate.dense" in by_name
    assert by_name["encoder.layer.0.intermediate.dense"]["shape"] == [256, 64]  # [N_out, K_in]
    for lin in find_linears(model):
        w = lin.read(inits)
        r = by_name[lin.name]
        assert r["block_sparsity"] == pytest.approx(bsr4x1.block_sparsity(w))
        assert r["block_sparsity"] == pytest.approx(0.8, abs=1.0 / (w.size / 4))
        assert r["element_sparsity"] == pytest.approx(float((w == 0).mean()))
        assert r["block_sparsity_before"] == 0.0


def test_bad_sparsity_and_no_linear():
    model, _ = _linear_model()
    with pytest.raises(GraphError, match="sparsity"):
        prune_model(model, 1.5)
    model.graph.initializer[0].dims[:] = [16, 8]
    del model.graph.node[0].input[:]
    model.graph.node[0].input.extend(["x", "x"])
    with pytest.raises(GraphError, match="no Linear"):
        prune_model(model, 0.5)
