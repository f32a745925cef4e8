"""The Intel engine of the paper (Intel Extension for Transformers 1.4.2, its int8 "neural engine" with
SparseLib's 4x1 VNNI kernels), for ``bench-e2e --engines ...,itrex --itrex-python PY``.

Runs under its own Python 3.11 environment, never imported by tvm_sparse (its pins conflict with ours):

    python3.11 -m venv .itrex && P=.itrex/bin/pip
    $P install intel-extension-for-transformers==1.4.2 neural-compressor==2.5.1 onnx==1.16.1 \\
        transformers==4.40.2 six torch==2.13.0 onnxruntime==1.31.1 numpy==1.26.4 ml_dtypes==0.5.1

``build ONNX WORKDIR`` prints the engine's model directory as JSON; ``time IR THREADS RUNS`` prints the
latencies. Building: the fp32 ONNX is rebuilt as a Hugging Face BertModel (zeros kept) and re-exported
with the TorchScript exporter (the engine's ONNX reader rejects dynamo exports), quantized statically
by onnxruntime (QDQ, u8 activations, s8 per-channel weights, MinMax on 8 random inputs), compiled, and
every InnerProduct with >= 70% zero 1x4 blocks switched to the sparse kernels (``transpose_mode_int8``,
as the engine's own bert_mini sparse example does); the log says how many were.
"""

import json
import os
import sys
import time
import types

# run as a script, this file's directory comes first on sys.path, where our own peers/onnxruntime.py would
# stand in for the onnxruntime package (a fresh build quantizes with it; cached builds never noticed)
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import numpy as np  # noqa: E402

SEQ = 128


def _engine():
    """compile and Graph, without running the package's transformers/__init__ (it imports torch for
    unrelated LLM code)."""
    import intel_extension_for_transformers as itrex

    pkg = "intel_extension_for_transformers.transformers"
    if pkg not in sys.modules:
        mod = types.ModuleType(pkg)
        mod.__path__ = [os.path.join(os.path.dirname(itrex.__file__), "transformers")]
        sys.modules[pkg] = mod
    from intel_extension_for_transformers.transformers.runtime.compile import compile as ne_compile
    from intel_extension_for_transformers.transformers.runtime.compile.graph import Graph

    return ne_compile, Graph


def _inputs(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(1000, 30000, (1, SEQ)).astype(np.int64),
            "attention_mask": np.ones((1, SEQ), np.int64), "token_type_ids": np.zeros((1, SEQ), np.int64)}


def reexport(src: str, dst: str) -> None:
    import onnx
    import torch
    import transformers
    from onnx import numpy_helper

    m = onnx.load(src)
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    consts = {n.output[0]: numpy_helper.to_array(a.t) for n in m.graph.node if n.op_type == "Constant"
              for a in n.attribute if a.name == "value"}
    weights = {**consts, **init}
    sd = {k[3:]: v for k, v in init.items() if k.startswith("hf.")}
    producer = {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:  # a Linear is MatMul(x, W^T) + hf.<name>.bias
        bias = [i for i in n.input if i.startswith("hf.") and i.endswith(".bias")]
        other = [i for i in n.input if i not in bias]
        if n.op_type == "Add" and bias and other and getattr(producer.get(other[0]), "op_type", "") == "MatMul":
            sd[bias[0][3:-5] + ".weight"] = weights[producer[other[0]].input[1]].T.copy()
    hidden = sd["embeddings.word_embeddings.weight"].shape[1]
    cfg = transformers.BertConfig(
        vocab_size=sd["embeddings.word_embeddings.weight"].shape[0], hidden_size=hidden,
        num_hidden_layers=1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layer.")),
        num_attention_heads={256: 4, 384: 12, 768: 12}[hidden],
        intermediate_size=sd["encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=sd["embeddings.position_embeddings.weight"].shape[0], attn_implementation="eager")
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
                                                strict=False)
    if [k for k in missing + unexpected if "position_ids" not in k]:
        raise RuntimeError(f"weights do not map onto a BertModel: {missing} {unexpected}")

    class Hidden(torch.nn.Module):
        def __init__(self, hf):
            super().__init__()
            self.hf = hf

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.hf(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state

    feeds = _inputs()
    args = tuple(torch.from_numpy(feeds[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    dynamic = {name: {0: "batch", 1: "seq"} for name in feeds}  # its pattern matcher expects dynamic reshapes
    with torch.no_grad():
        torch.onnx.export(Hidden(model), args, dst, input_names=list(feeds), output_names=["last_hidden_state"],
                          dynamic_axes=dynamic, opset_version=14, do_constant_folding=True, dynamo=False)


def quantize(src: str, dst: str) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Random(CalibrationDataReader):
        def __init__(self):
            self.data = iter([_inputs(seed) for seed in range(8)])

        def get_next(self):
            return next(self.data, None)

    quantize_static(src, dst, Random(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})


def sparse_layers(graph, threshold: float = 0.7) -> list[str]:
    """The engine's own rule (get_sparse_nodes_name), vectorized: int8 InnerProducts with >= 70% zero
    1x4 blocks."""
    names = []
    for node in graph.nodes:
        if node.op_type != "InnerProduct" or (node.attr and node.attr.get("append_op") == "tanh"):
            continue
        w = node.input_tensors[1].data
        if isinstance(w, np.ndarray) and w.dtype in (np.int8, np.uint8) and w.ndim == 2 and w.shape[1] % 4 == 0:
            if 1.0 - (w.reshape(w.shape[0], -1, 4) != 0).any(-1).mean() >= threshold:
                names.append(node.name)
    return names


def _has_amx() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return "amx_tile" in f.read().split()
    except OSError:
        return False


# On a CPU with AMX the engine fuses attention into MultiHeadAttention (sub_graph/multi_head_attention.py
# checks for amx_tile), and its 4x1 sparse rewrite (transpose_mode_int8) then dies in
# _reorder_recover_fusion ('NoneType' object has no attribute 'op_type'). Sparse models compile without it.
NO_MHA = {"pattern_switch": {"MultiHeadAttention": False}}


def _compiled(ne_compile, graph_cls, qdq: str, out: str, config: dict | None):
    ne_compile(qdq, config=config).save(out)
    g = graph_cls()
    g.graph_init(os.path.join(out, "conf.yaml"), os.path.join(out, "model.bin"), load_weight=True)
    return g


def build(src: str, workdir: str) -> str:
    """Compile ``src`` for the engine; logs (stderr) which path attention and every InnerProduct took, and
    writes the per-layer list to ``workdir/layers.txt``."""
    os.makedirs(workdir, exist_ok=True)
    legacy, qdq, ir = (os.path.join(workdir, n) for n in ("legacy.onnx", "qdq.onnx", "ir"))
    if not os.path.isfile(os.path.join(ir, "conf.yaml")):
        ne_compile, graph_cls = _engine()
        reexport(src, legacy)
        quantize(legacy, qdq)
        g = _compiled(ne_compile, graph_cls, qdq, ir + "_plain", None)
        names = sparse_layers(g)
        mha = sum(n.op_type == "MultiHeadAttention" for n in g.nodes)
        if names and mha:
            g = _compiled(ne_compile, graph_cls, qdq, ir + "_nomha", NO_MHA)
            names, mha = sparse_layers(g), 0
        inner = [n.name for n in g.nodes if n.op_type == "InnerProduct"]
        with open(os.path.join(workdir, "layers.txt"), "w") as f:
            f.writelines(f"{n}: {'sparse 4x1' if n in names else 'dense'} int8\n" for n in inner)
        attention = (f"MultiHeadAttention fused ({mha} layers)" if mha else
                     "MultiHeadAttention fusion off (AMX CPU, sparse layers)" if names and _has_amx() else
                     "attention unfused")
        print(f"{src}: {len(names)} of {len(inner)} int8 InnerProducts on the sparse kernels, the rest dense; "
              f"{attention}; per layer: {os.path.join(workdir, 'layers.txt')}", file=sys.stderr)
        if names:
            g.transpose_mode_int8(names)
        g.save(ir)
    return ir


def time_ir(ir: str, runs: int, warmup: int = 5) -> list[float]:
    """Seconds per inference (threads: OMP_NUM_THREADS, set by the caller before this process starts)."""
    _, graph_cls = _engine()
    g = graph_cls()
    g.graph_init(os.path.join(ir, "conf.yaml"), os.path.join(ir, "model.bin"))
    f = _inputs(1)
    feed = [f["input_ids"].astype(np.int32), f["token_type_ids"].astype(np.int32), f["attention_mask"].astype(np.int32)]
    for _ in range(warmup):
        g.inference(feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        g.inference(feed)
        times.append(time.perf_counter() - t)
    return times


if __name__ == "__main__":
    if sys.argv[1] == "build":
        print(json.dumps({"ir": build(sys.argv[2], sys.argv[3])}))
    elif sys.argv[1] == "time":
        print(json.dumps({"times": time_ir(sys.argv[2], int(sys.argv[4]))}))
    else:
        sys.exit(f"usage: {sys.argv[0]} build ONNX WORKDIR | time IR THREADS RUNS")
