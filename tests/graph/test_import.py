"""Import errors name what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tvm_sparse.graph import importer
from tvm_sparse.graph.errors import GraphError, UnsupportedModelError


def _model(nodes, inputs=("input_ids",), extra_inits=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"]) for n in inputs],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "s", 8])],
        [numpy_helper.from_array(np.ones((10, 8), np.float32), "emb"), *extra_inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.microsoft", 1)])


def test_unsupported_ops_are_named():
    model = _model([helper.make_node("Gather", ["emb", "input_ids"], ["h"]),
                    helper.make_node("FastGelu", ["h"], ["g"], domain="com.microsoft"),
                    helper.make_node("NotAnOp", ["g"], ["last_hidden_state"])])
    with pytest.raises(UnsupportedModelError, match=r"NotAnOp.*com\.microsoft::FastGelu|com\.microsoft"
                                                    r"::FastGelu.*NotAnOp"):
        importer.check_supported(model)


def test_not_an_encoder():
    model = _model([helper.make_node("Gather", ["emb", "tokens"], ["last_hidden_state"])], inputs=("tokens",))
    with pytest.raises(UnsupportedModelError, match="input_ids"):
        importer.check_supported(model)


def test_imports_a_minimal_encoder_with_fixed_shapes():
    model = _model([helper.make_node("Gather", ["emb", "input_ids"], ["last_hidden_state"])])
    mod, names = importer.to_relax(model, 2, 5)
    assert names == ["input_ids"]
    assert [int(d) for d in mod["main"].params[0].ty.shape] == [2, 5]
    with pytest.raises(GraphError, match="positive"):
        importer.to_relax(model, 0, 5)


def test_missing_file(tmp_path):
    with pytest.raises(GraphError, match="no ONNX model"):
        importer.load_onnx(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(GraphError, match="not a valid ONNX"):
        importer.load_onnx(bad)


def test_vocabulary_bound_found_through_a_cast(tiny_onnx):
    """An exporter's Cast to int32 before the word-embedding Gather hid the bound: id = vocab then read
    past the table (a silent wrong answer, or a SIGSEGV for larger ids)."""
    import onnx
    from onnx import TensorProto, helper

    from tvm_sparse.graph.vocab import input_limits

    model = onnx.load(str(tiny_onnx))
    direct = input_limits(model)["input_ids"]
    gathers = [n for n in model.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids"]
    assert gathers
    for n in gathers:
        n.input[1] = "input_ids_i32"
    model.graph.node.insert(0, helper.make_node("Cast", ["input_ids"], ["input_ids_i32"], to=TensorProto.INT32))
    assert input_limits(model)["input_ids"] == direct


@pytest.mark.parametrize("opset", [14, 17])
def test_a_torchscript_export_imports_and_matches_onnxruntime(opset, tmp_path):
    """The classic exporter (``dynamo=False``; Optimum's too): how most published ONNX BERTs were made. Its
    graph keeps a ConstantOfShape of an empty shape after folding, which TVM imported as a failing
    ``broadcast_to``; the importer now folds what the fixed shapes make constant."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import tvm_sparse
    from tvm_sparse.graph.compile import CompileOptions, compile_model

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=256)
    hf = transformers.BertModel(cfg).eval()  # with its pooler: a second output, dropped on import

    class Outputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.hf(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state, out.pooler_output

    names = ["input_ids", "attention_mask", "token_type_ids"]
    ids = torch.ones(1, 16, dtype=torch.long)
    path = tmp_path / f"ts{opset}.onnx"
    with torch.no_grad():
        torch.onnx.export(Outputs(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(path),
                          input_names=names, output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in names}, opset_version=opset, dynamo=False)
    model = importer.load_onnx(path)
    assert any(n.op_type == "ConstantOfShape" for n in model.graph.node)
    out = tmp_path / "ts.so"
    compile_model(model, out, CompileOptions(batch=2, seq_len=32, precision="fp32", trials=0, allow_untuned=True,
                                             work_dir=tmp_path / "db"), log=lambda *_: None)
    rng = np.random.default_rng(0)
    mask = np.ones((2, 32), np.int64)
    mask[1, 20:] = 0
    feeds = {"input_ids": rng.integers(0, 1000, (2, 32)), "attention_mask": mask,
             "token_type_ids": rng.integers(0, 2, (2, 32))}
    ort = pytest.importorskip("onnxruntime")
    # onnxruntime on the file exactly as exported (dynamic shapes, nothing folded by this project)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["last_hidden_state"], feeds)[0]
    got = tvm_sparse.load(out)(**feeds)
    assert np.abs(got - ref).max() <= 1e-4
