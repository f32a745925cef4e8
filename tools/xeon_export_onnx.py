"""Runs on the Xeon (torch, transformers, onnxruntime there): the onnxruntime side of the comparison.

Rebuilds, from ``onnx/models.json`` written by ``xeon_prepare``, the same BERTs the libraries were
compiled from: the same seed, configuration and parameter randomization as ``graph.export.build_bert``
and the same 4x1 magnitude pruning of every encoder Linear as ``format.bsr4x1.prune`` (a numpy copy:
the bundle has no tvm_sparse package). Exports fp32 ONNX with fixed shapes and an int8 one with
onnxruntime's ``quantize_dynamic``. Whether the rebuilt weights are really the same is checked later,
by ``xeon_remote``, against the reference output computed here at prepare time.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
import transformers
from onnxruntime.quantization import QuantType, quantize_dynamic

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
# any batch (the throughput search runs onnxruntime at several); the sequence length stays fixed
DYNAMIC = {**{n: {0: "batch"} for n in INPUTS}, "last_hidden_state": {0: "batch"}}


def prune_4x1(w: np.ndarray, sparsity: float) -> np.ndarray:
    """``bsr4x1.prune``: zero the weakest round(sparsity * blocks) 4x1 blocks by L2 norm (float64,
    stable ties), N a multiple of 4 here."""
    n, k = w.shape
    blocks = w.astype(np.float64).reshape(n // 4, 4, k)
    norms = np.sqrt((blocks ** 2).sum(axis=1))
    keep = np.ones(norms.size, bool)
    n_prune = int(round(sparsity * norms.size))
    if n_prune:
        keep[np.argsort(norms, axis=None, kind="stable")[:n_prune]] = False
    mask = np.repeat(keep.reshape(norms.shape)[:, None, :], 4, axis=1).reshape(n, k)
    return np.where(mask, w, np.zeros_like(w))


def build_bert(c: dict):
    """``graph.export.build_bert``, step for step (the draws must come in the same order)."""
    torch.manual_seed(c["seed"])
    cfg = transformers.BertConfig(
        vocab_size=c["vocab"], hidden_size=c["hidden"], num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"], intermediate_size=c["intermediate"],
        max_position_embeddings=max(512, c["shape"][1]),
    )
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
            elif "LayerNorm.weight" in name:
                p.uniform_(0.8, 1.2)
        for mod in model.encoder.modules():
            if isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(torch.from_numpy(prune_4x1(mod.weight.numpy(), c["sparsity"])))
    return model


class _Encoder(torch.nn.Module):
    """Keyword arguments only: BertModel.forward's positional order changes across versions."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


def export(model, shape: list[int], path: Path) -> str:
    """fp32 ONNX, any batch, the sequence fixed; the dynamo exporter first (as the project exports), TorchScript's if
    that fails. Returns which one wrote the file."""
    # batch 2 in the example: torch.export specializes a dimension of size 1 (torch 2.11 kept batch 1 fixed)
    example = [2, *shape[1:]]
    feeds = (torch.ones(example, dtype=torch.long), torch.ones(example, dtype=torch.long),
             torch.zeros(example, dtype=torch.long))
    with torch.no_grad():
        try:
            batch = torch.export.Dim("batch", min=1, max=64)
            program = torch.onnx.export(_Encoder(model), feeds, input_names=INPUTS,
                                        output_names=["last_hidden_state"], opset_version=20, dynamo=True,
                                        dynamic_shapes={n: {0: batch} for n in INPUTS})
            program.save(str(path), external_data=False)
            return "dynamo"
        except Exception as e:  # noqa: BLE001  (any exporter failure: try the other one)
            print(f"dynamo export failed ({type(e).__name__}: {str(e)[:200]}); TorchScript exporter", flush=True)
            torch.onnx.export(_Encoder(model), feeds, str(path), input_names=INPUTS,
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes=DYNAMIC)
            return "torchscript"


def main(bundle: Path) -> None:
    configs = json.loads((bundle / "onnx" / "models.json").read_text())
    info = {"torch": torch.__version__, "transformers": transformers.__version__, "models": {}}
    for tag, c in configs.items():
        model = build_bert(c)
        fp32 = bundle / "onnx" / f"{tag}_fp32.onnx"
        int8 = bundle / "onnx" / f"{tag}_int8.onnx"
        how = export(model, c["shape"], fp32)
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        ops = [n.op_type for n in onnx.load(str(int8)).graph.node]
        info["models"][tag] = {"exporter": how, "fp32_matmuls": sum(
            n.op_type in ("MatMul", "Gemm") for n in onnx.load(str(fp32)).graph.node),
            "int8_quantized_matmuls": sum(op in ("MatMulInteger", "DynamicQuantizeMatMul") for op in ops),
            "int8_float_matmuls": sum(op in ("MatMul", "Gemm") for op in ops)}
        print(f"exported {tag}: {info['models'][tag]}", flush=True)
    (bundle / "onnx" / "export.json").write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
