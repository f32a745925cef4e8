"""Runs on the Xeon (torch, transformers, onnxruntime there): the onnxruntime side of the comparison.

Builds the same BERT configurations as the compiled libraries (random weights, every encoder Linear
pruned to 4x1 blocks, vocabulary 2048 as there), exports fp32 ONNX with fixed shapes and an int8 one
with onnxruntime's quantize_dynamic. Weights are random: neither engine's dense path depends on them.
Kept standalone (the bundle has no tvm_sparse package); the pruning is a 10-line numpy copy.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import BertConfig, BertModel

CONFIGS = {"bert-mini": (4, 256, 4), "bert-base": (12, 768, 12)}


def prune_4x1(w: np.ndarray, sparsity: float) -> np.ndarray:
    n, k = w.shape
    blocks = w.reshape(n // 4, 4, k)
    norms = np.sqrt((blocks ** 2).sum(axis=1))
    keep = np.ones(norms.size, bool)
    keep[np.argsort(norms, axis=None, kind="stable")[: int(round(sparsity * norms.size))]] = False
    return (blocks * keep.reshape(norms.shape)[:, None, :]).reshape(n, k)


class _Encoder(torch.nn.Module):
    """Keyword arguments only: BertModel.forward's positional order changes across versions."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


def main(bundle: Path) -> None:
    shapes = json.loads((bundle / "onnx" / "shapes.json").read_text())
    for tag, shape in shapes.items():
        name, s = tag.rsplit("_s", 1)
        layers, hidden, heads = CONFIGS[name]
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=2048, hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=heads, intermediate_size=4 * hidden)).eval()
        with torch.no_grad():
            for mod in model.encoder.modules():
                if isinstance(mod, torch.nn.Linear):
                    mod.weight.copy_(torch.from_numpy(prune_4x1(mod.weight.numpy(), int(s) / 100)))
        feeds = tuple(torch.ones(shape, dtype=torch.long) for _ in range(3))
        fp32 = bundle / "onnx" / f"{tag}_fp32.onnx"
        torch.onnx.export(_Encoder(model), feeds, str(fp32),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False)
        quantize_dynamic(str(fp32), str(bundle / "onnx" / f"{tag}_int8.onnx"), weight_type=QuantType.QInt8)
        print(f"exported {tag}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
